"""Claims from the add-on, against a real farm whose renderer cheats unnoticed: the job watcher keeps following a
job while a claim on it is open and brings home the frames a confirmed claim replaced, and the Claim Bad Frames
operator, in a real Blender, files claims through the API.

The farm: mallory-box, a trusted node (trusted nodes are never checked) that tampers with every frame it renders
(tests/adversary.py, strategy "tamper": a rectangle filled with its mean colour), is the only renderer;
tess-box, a trusted verify-only node, re-renders claimed frames. A claim on one of mallory's frames is therefore
confirmed, and the frame replaced by tess's honest render. One three-frame job is rendered for the module
before any claim (a second confirmed claim suspends mallory); each test claims a frame of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from framehive.addon.client import sha256_file
from framehive.addon.job_watch import JobWatcher

from tests.addon.following import clients, saved_jobs, shas, stamp
from tests.addon.sessions import run_session
from tests.farm import reference_render, wait_for
from tests.images import same_pixels
from tests.live import Site, running_site

RENDER_TIMEOUT = 150
CLAIM_TIMEOUT = 120  # tess opens the scene and renders the whole frame
FRAMES = (1, 2, 3)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("claims-farm"), artist=("user", "artist"),
                      mallory=("worker", "mallory"), tess=("worker", "tess")) as site:
        site.farm.start_adversary("tamper", site.tokens["mallory"], "mallory-box", "--roles", "render")
        site.farm.start_worker("tess-box", site.tokens["tess"], "--roles", "verify")
        admin = site.client("site_admin")
        wait_for(lambda: {w["name"] for w in admin.workers() if w["online"]} == {"mallory-box", "tess-box"}, 90,
                 "mallory-box and tess-box to come online")
        yield site


@pytest.fixture(scope="module")
def tampered(site: Site, sample_scene: Path) -> dict[str, Any]:
    """The artist's completed job of frames 1-3, every one tampered with by mallory and delivered unchecked."""
    api = site.client()
    job = api.submit(sample_scene, frames="1-3", chunk=3, name="tampered")
    final = api.wait(job["id"], poll=0.1, timeout=RENDER_TIMEOUT)
    assert final["state"] == "completed", final
    assert {entry["worker"] for entry in final["frame_states"]} == {"mallory-box"}, final
    return final


def frame_paths(folder: Path) -> dict[int, Path]:
    return {frame: folder / f"{frame:04d}.png" for frame in FRAMES}


def claim_state(site: Site, job_id: int, claim_id: int) -> dict[str, Any]:
    return next(claim for claim in site.client().claims(job_id) if claim["id"] == claim_id)


# ---------------------------------------------------------------------- the job watcher


def test_a_claim_keeps_a_followed_job_followed_until_the_replaced_frame_is_home(site: Site, tampered: dict[str, Any],
                                                                                 tmp_path: Path) -> None:
    """The artist claims frame 1 (from the command line, say) while Blender still follows the job."""
    job_id, paths = tampered["id"], frame_paths(tmp_path / "out")
    watcher = JobWatcher(tmp_path / "jobs.json", clients(site), interval=0.2)
    watcher.follow(job_id, site.url, {frame: str(path) for frame, path in paths.items()})
    claim = site.client().claim(job_id, "1", "a grey block on the floor")

    [first] = watcher.poll_once()  # long before tess has rendered the frame again

    assert (first.state, first.pending, first.downloaded, first.open_claims) == ("completed", 0, 3, 1), first
    assert not first.finished and watcher.followed() == [job_id], "every frame is home, but the claim is open"
    kept = {frame: stamp(paths[frame]) for frame in (2, 3)}

    status = watcher.wait(job_id, timeout=CLAIM_TIMEOUT)

    assert status.finished and (status.open_claims, status.error) == (0, ""), status
    assert claim_state(site, job_id, claim["id"])["state"] == "confirmed"
    now = shas(site.client().job(job_id))
    assert now[1] != shas(tampered)[1] and sha256_file(paths[1]) == now[1], "the replacement is home"
    assert {frame: stamp(paths[frame]) for frame in (2, 3)} == kept, "the other frames are not fetched again"
    assert watcher.followed() == []


def test_a_forgotten_job_followed_again_after_a_claim_fetches_only_the_replaced_frame(
        site: Site, tampered: dict[str, Any], tmp_path: Path) -> None:
    """The job was home and forgotten; Blender restarted; the artist claims frame 2 and the add-on follows the
    job again with the same paths (as the Claim Bad Frames operator does)."""
    job_id, paths = tampered["id"], frame_paths(tmp_path / "out")
    state_file = tmp_path / "jobs.json"
    first = JobWatcher(state_file, clients(site), interval=0.2)
    first.follow(job_id, site.url, {frame: str(path) for frame, path in paths.items()})
    assert first.wait(job_id, timeout=60).finished and saved_jobs(state_file) == [], "home and forgotten"
    kept = {frame: stamp(paths[frame]) for frame in (1, 3)}
    claim = site.client().claim(job_id, "2", "a grey block on the floor")

    again = JobWatcher(state_file, clients(site), interval=0.2)
    again.follow(job_id, site.url, {frame: str(path) for frame, path in paths.items()})
    status = again.wait(job_id, timeout=CLAIM_TIMEOUT)

    assert status.finished and status.error == "", status
    assert claim_state(site, job_id, claim["id"])["state"] == "confirmed"
    now = shas(site.client().job(job_id))
    assert now[2] != shas(tampered)[2] and sha256_file(paths[2]) == now[2], "the replacement is home"
    assert {frame: stamp(paths[frame]) for frame in (1, 3)} == kept, "frames already home are not fetched again"
    assert again.followed() == [] and saved_jobs(state_file) == []


# ---------------------------------------------------------------------- the operator, in Blender


def test_the_claim_operator_files_the_claim_and_brings_the_honest_frame_home(
        site: Site, tampered: dict[str, Any], sample_scene: Path, extension_zip: Path, tmp_path: Path) -> None:
    job_id, out = tampered["id"], tmp_path / "render"
    scene = {"op": "claim", "url": site.url, "token": site.tokens["artist"], "output": str(out / "frame_"),
             "frame_end": 3, "job_id": job_id}
    steps = [
        {**scene, "frames": "3", "reason": "  "},
        {**scene, "frames": "7", "reason": "a grey block"},
        {**scene, "job_id": 99_999, "frames": "3", "reason": "a grey block"},
        {**scene, "frames": "3", "reason": "a grey block on the floor", "wait": True},
    ]

    no_reason, not_delivered, no_job, filed = run_session(extension_zip, sample_scene, steps, tmp_path)

    assert (no_reason["result"], no_reason["error"]) == (["CANCELLED"], "give the frames and a reason")
    assert (not_delivered["result"], not_delivered["error"]) == (["CANCELLED"], (
        "claim refused: not_delivered: frames 7 were not delivered as verified; only delivered frames can be "
        "claimed (HTTP 400)"))
    assert (no_job["result"], no_job["error"]) == (["CANCELLED"], "claim refused: not_found: no job 99999 (HTTP 404)")
    assert (filed["result"], filed["error"]) == (["FINISHED"], ""), filed

    # The API holds exactly the claim the operator filed on frame 3, decided.
    [claim] = [claim for claim in site.client().claims(job_id) if claim["frames"] == "3"]
    assert (claim["reason"], claim["state"]) == ("a grey block on the floor", "confirmed"), claim
    assert [check["frame"] for check in claim["checks"]] == [3]
    # The watcher brought the job's frames to the scene's output path, frame 3 as the trusted node rendered it.
    now = shas(site.client().job(job_id))
    paths = {int(frame): Path(path) for frame, path in filed["paths"].items()}
    assert paths == {frame: out / f"frame_{frame:04d}.png" for frame in FRAMES}
    assert {frame: sha256_file(path) for frame, path in paths.items()} == now
    assert now[3] != shas(tampered)[3]
    reference = reference_render(sample_scene, [3], tmp_path / "reference")
    assert same_pixels(paths[3], reference[3]), "the replacement is the honest frame"
