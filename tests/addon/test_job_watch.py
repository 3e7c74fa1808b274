"""The add-on's job watcher against a real coordinator and two real worker agents rendering with Blender.

One six-frame job is rendered for the whole module (two-frame tasks, so both workers take part); the tests
follow it with fresh watchers and fresh output paths. Failures are real too: a port nobody listens on, a
token the coordinator refuses, another artist's token, a path that cannot be written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from framehive.addon.client import Client, sha256_file
from framehive.addon.job_watch import JobStatus, JobWatcher, _eta

from tests.addon.following import clients, files_under, saved_jobs, shas, stamp
from tests.farm import wait_for
from tests.live import Site, free_port, running_site

RENDER_TIMEOUT = 150
FRAMES = range(1, 7)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("watch-farm"), workers=2, artist=("user", "artist"),
                      other=("user", "other-artist")) as site:
        yield site


@pytest.fixture(scope="module")
def job(site: Site, sample_scene: Path) -> dict[str, Any]:
    """The module's job, just submitted (the first test follows it while it renders)."""
    return site.client().submit(sample_scene, frames="1-6", chunk=2, name="watched")


@pytest.fixture(scope="module")
def completed(site: Site, job: dict[str, Any]) -> dict[str, Any]:
    """The module's job once completed, with its frame list."""
    final = site.client().wait(job["id"], poll=0.1, timeout=RENDER_TIMEOUT)
    assert final["state"] == "completed", final
    return final



# ---------------------------------------------------------------------- following a job to the end


def test_wait_brings_every_verified_frame_to_its_own_path(site: Site, job: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "shots"
    # Any file name in any folder: the add-on computes them from the scene's output path. Frame 6 has none.
    paths = {1: out / "a" / "one.png", 2: out / "a" / "frame_0002.png", 3: out / "b" / "c" / "3.png",
             4: out / "b" / "four.png", 5: out / "a" / "shot.0005.png"}
    state_file = tmp_path / "state" / "jobs.json"
    watcher = JobWatcher(state_file, clients(site), interval=0.2)
    watcher.follow(job["id"], site.url, {frame: str(path) for frame, path in paths.items()})
    assert saved_jobs(state_file) == [job["id"]]

    status = watcher.wait(job["id"], timeout=RENDER_TIMEOUT)

    assert status.state == "completed" and status.finished, status
    assert (status.total, status.verified, status.rendered, status.failed) == (6, 6, 0, 0)
    assert (status.downloaded, status.pending, status.error, status.eta_seconds) == (5, 0, "", None)
    assert status.fraction == 1.0 and not status.retrying and not status.dropped and status.open_claims == 0
    assert status.output_dir == str(out / "a")
    final = site.client().job(job["id"])
    assert {entry["worker"] for entry in final["frame_states"]} == {"w1", "w2"}, "both workers rendered"
    assert files_under(out) == set(paths.values()), "exactly the given paths: no frame 6, no leftovers"
    reference = tmp_path / "reference"
    for frame, path in paths.items():
        expected = site.client().download_frame(job["id"], frame, reference / f"{frame}.png")
        assert path.read_bytes() == expected.read_bytes(), f"frame {frame}"
        assert sha256_file(path) == shas(final)[frame]
    # Over and home: the job left the state file, and a new watcher (Blender restarted) follows nothing.
    assert watcher.followed() == [] and saved_jobs(state_file) == []
    assert JobWatcher(state_file, clients(site)).followed() == []

    posted = watcher.drain()
    assert posted and all(s.job_id == job["id"] for s in posted) and posted[-1] == status
    counts = [s.verified for s in posted]
    assert counts == sorted(counts), "verified frames never go down in a normal job"
    assert all(0.0 <= s.fraction <= 1.0 and s.downloaded <= 5 and s.total == 6 for s in posted)
    assert watcher.drain() == []


def test_a_restarted_watcher_resumes_and_finishes_the_downloads(site: Site, completed: dict[str, Any],
                                                                tmp_path: Path) -> None:
    out = tmp_path / "out"
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where frame 4's folder should be")
    paths = {frame: out / f"f{frame}.png" for frame in FRAMES}
    paths[4] = blocker / "f4.png"
    state_file = tmp_path / "jobs.json"
    first = JobWatcher(state_file, clients(site), interval=0.05)
    first.follow(completed["id"], site.url, {frame: str(path) for frame, path in paths.items()})

    [status] = first.poll_once()
    assert status.error.startswith(f"frame 4 -> {paths[4]}: "), status
    assert not status.retrying and not status.finished and status.state == "completed"
    assert (status.downloaded, status.pending) == (5, 1), "one frame failing holds back no other"
    assert first.followed() == [completed["id"]] and saved_jobs(state_file) == [completed["id"]]
    # A path that cannot be written will not fix itself: wait() says so instead of polling for ever.
    assert first.wait(completed["id"], timeout=60).error == status.error
    before = {frame: stamp(path) for frame, path in paths.items() if frame != 4}

    # Blender quits; the artist fixes the folder; Blender starts again with a new watcher on the same file.
    blocker.unlink()
    second = JobWatcher(state_file, clients(site), interval=0.05)
    assert second.followed() == [completed["id"]]
    final = second.wait(completed["id"], timeout=60)

    assert final.finished and (final.downloaded, final.pending, final.error) == (6, 0, ""), final
    assert sha256_file(paths[4]) == shas(completed)[4]
    assert {frame: stamp(paths[frame]) for frame in before} == before, "frames already home are not fetched again"
    assert second.followed() == [] and saved_jobs(state_file) == []


def test_a_replaced_frame_is_fetched_again_and_one_already_on_disk_is_not(site: Site, completed: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    """The state file says frame 1 was downloaded with other bytes (the coordinator re-rendered it since: its
    renderer was caught later); frame 2 is on disk and recorded; frame 3 is on disk but not recorded (Blender
    died between the download and the save)."""
    paths = {frame: tmp_path / "out" / f"{frame}.png" for frame in (1, 2, 3)}
    reference = Client.download_frame
    for frame in (2, 3):
        reference(site.client(), completed["id"], frame, paths[frame])
    paths[1].write_bytes(b"the frame as it was before the coordinator replaced it")
    state_file = tmp_path / "jobs.json"
    state_file.write_text(json.dumps({"jobs": [{
        "job_id": completed["id"], "base_url": site.url,
        "frame_paths": {str(frame): str(path) for frame, path in paths.items()},
        "downloaded": {"1": sha256_file(paths[1]), "2": shas(completed)[2]}}]}))
    kept = {frame: stamp(paths[frame]) for frame in (2, 3)}

    status = JobWatcher(state_file, clients(site)).wait(completed["id"], timeout=60)

    assert status.finished and (status.downloaded, status.error) == (3, ""), status
    assert {frame: sha256_file(path) for frame, path in paths.items()} == {f: shas(completed)[f] for f in paths}
    assert {frame: stamp(paths[frame]) for frame in (2, 3)} == kept


def test_the_background_thread_posts_statuses(site: Site, completed: dict[str, Any], tmp_path: Path) -> None:
    paths = {frame: str(tmp_path / "out" / f"{frame:04d}.png") for frame in FRAMES}
    # A long interval: a status soon after follow() proves that following wakes the thread.
    watcher = JobWatcher(tmp_path / "jobs.json", clients(site), interval=60)
    seen: list[JobStatus] = []

    def finished() -> bool:
        seen.extend(watcher.drain())
        return any(status.finished for status in seen)

    watcher.start()
    try:
        watcher.start()  # a second start keeps the one thread
        watcher.follow(completed["id"], site.url, paths)
        wait_for(finished, 60, "the watcher thread to bring the frames home")
    finally:
        watcher.stop()
    assert watcher._thread is None
    last = seen[-1]
    assert (last.job_id, last.state, last.downloaded, last.error) == (completed["id"], "completed", 6, "")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{frame:04d}.png" for frame in FRAMES]
    assert watcher.followed() == []
    watcher.stop()  # stopping twice is harmless


# ---------------------------------------------------------------------- when polling fails


def test_an_unreachable_coordinator_gives_an_error_and_keeps_the_job(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    state_file = tmp_path / "jobs.json"
    watcher = JobWatcher(state_file, lambda base: Client(base, "fhu_x", timeout=5), interval=0.05,
                         reconnect_grace=0.5)
    watcher.follow(7, url, {1: str(tmp_path / "1.png")})

    [status] = watcher.poll_once()
    assert status.error.startswith(f"coordinator unreachable, retrying: cannot reach the coordinator at {url}/")
    assert status.retrying and not status.dropped and not status.finished
    assert (status.state, status.total, status.verified, status.eta_seconds) == ("unknown", 1, 0, None)
    assert watcher.followed() == [7] and saved_jobs(state_file) == [7]

    started = time.monotonic()
    after_grace = watcher.wait(7, timeout=60)
    assert time.monotonic() - started >= 0.5, "an unreachable coordinator is retried for the grace period"
    assert after_grace.retrying and "unreachable" in after_grace.error
    assert watcher.followed() == [7] and saved_jobs(state_file) == [7]
    assert JobWatcher(state_file, lambda base: None).followed() == [7], "still there after a restart"


def test_losing_the_coordinator_keeps_the_last_known_numbers(site: Site, completed: dict[str, Any],
                                                             tmp_path: Path) -> None:
    target = {"url": site.url}
    watcher = JobWatcher(tmp_path / "jobs.json", lambda base: Client(target["url"], site.tokens["artist"], timeout=5))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    watcher.follow(completed["id"], site.url, {1: str(tmp_path / "1.png"), 2: str(blocker / "2.png")})
    [known] = watcher.poll_once()
    assert (known.state, known.verified, known.downloaded, known.pending) == ("completed", 6, 1, 1)

    target["url"] = f"http://127.0.0.1:{free_port()}"  # the coordinator goes away
    [lost] = watcher.poll_once()
    assert lost.retrying and "unreachable" in lost.error
    assert (lost.state, lost.total, lost.verified, lost.downloaded, lost.pending) == ("completed", 6, 6, 1, 1)
    assert watcher.followed() == [completed["id"]]


@pytest.mark.parametrize("whose", ["someone else's", "no such"])
def test_a_job_the_token_cannot_see_is_dropped(site: Site, completed: dict[str, Any], tmp_path: Path,
                                               whose: str) -> None:
    job_id = completed["id"] if whose == "someone else's" else 99_999
    state_file = tmp_path / "jobs.json"
    watcher = JobWatcher(state_file, clients(site, "other"), interval=0.05)
    watcher.follow(job_id, site.url, {1: str(tmp_path / "1.png")})

    status = watcher.wait(job_id, timeout=30)

    assert status.dropped and not status.retrying, status
    assert status.error == (f"job {job_id} is not on {site.url} for this token (no job {job_id}); "
                            "no longer following it")
    assert watcher.followed() == [] and saved_jobs(state_file) == []
    assert not (tmp_path / "1.png").exists()


def test_a_worker_token_keeps_the_job_and_says_why(site: Site, completed: dict[str, Any], tmp_path: Path) -> None:
    """403: the preferences hold a worker token. That is fixed in the preferences, so the job is kept."""
    state_file = tmp_path / "jobs.json"
    watcher = JobWatcher(state_file, clients(site, "owner1"), interval=0.05)
    watcher.follow(completed["id"], site.url, {1: str(tmp_path / "1.png")})

    status = watcher.wait(completed["id"], timeout=30)  # returns at once: no use polling with this token

    assert status.error.startswith("this token may not see jobs (a user token is needed): ")
    assert status.error.endswith("; change it in the add-on's preferences")
    assert not status.dropped and not status.retrying and not status.finished
    assert watcher.followed() == [completed["id"]] and saved_jobs(state_file) == [completed["id"]]
    # The artist puts the user token back: the same watcher brings the frame home.
    watcher.client_for = clients(site)
    assert watcher.wait(completed["id"], timeout=30).finished
    assert sha256_file(tmp_path / "1.png") == shas(completed)[1]


def test_a_refused_token_keeps_the_job(site: Site, tmp_path: Path) -> None:
    watcher = JobWatcher(tmp_path / "jobs.json", lambda base: Client(base, "fhu_wrong"))
    watcher.follow(1, site.url, {1: str(tmp_path / "1.png")})
    status = watcher.wait(1, timeout=30)
    assert status.error.startswith("the coordinator refused the token (wrong, expired or revoked): ")
    assert status.error.endswith("; change it in the add-on's preferences")
    assert not status.dropped and watcher.followed() == [1]


def test_a_job_of_another_coordinator_is_left_alone(site: Site, tmp_path: Path) -> None:
    watcher = JobWatcher(tmp_path / "jobs.json", clients(site))
    watcher.follow(3, "http://render.elsewhere:8400", {1: str(tmp_path / "1.png")})
    status = watcher.wait(3, timeout=30)
    assert status.error == ("the add-on now points at another coordinator than http://render.elsewhere:8400; "
                            "job 3 is left alone until it points there again")
    assert watcher.followed() == [3]


def test_waiting_for_a_job_that_is_not_followed(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="job 5 is not followed"):
        JobWatcher(tmp_path / "jobs.json", lambda base: None).wait(5, timeout=1)


# ---------------------------------------------------------------------- the state file


@pytest.mark.parametrize("content", [
    b"\x00\xff\xfe not even text",
    b"{\"jobs\": [",
    b"[1, 2, 3]",
    b"{\"jobs\": 5}",
    b"{\"jobs\": {\"7\": {}}}",
    b"{\"jobs\": [5, \"x\", null, {\"job_id\": \"seven\"}, {\"job_id\": 3},"
    b" {\"job_id\": 4, \"base_url\": \"http://h\", \"frame_paths\": [1]},"
    b" {\"job_id\": 6, \"base_url\": \"http://h\", \"frame_paths\": {\"one\": \"/x.png\"}}]}",
])
def test_a_corrupt_state_file_is_ignored(tmp_path: Path, content: bytes) -> None:
    state_file = tmp_path / "jobs.json"
    state_file.write_bytes(content)
    watcher = JobWatcher(state_file, lambda base: None)
    assert watcher.followed() == []
    assert watcher.poll_once() == []
    watcher.follow(8, "http://h", {1: "/tmp/x.png"})  # the next save writes a good file
    assert JobWatcher(state_file, lambda base: None).followed() == [8]


def test_good_entries_survive_next_to_bad_ones(tmp_path: Path) -> None:
    state_file = tmp_path / "jobs.json"
    good = {"job_id": 9, "base_url": "http://h", "frame_paths": {"1": "/tmp/1.png"}, "downloaded": ["old form"]}
    state_file.write_text(json.dumps({"jobs": [{"job_id": "nine"}, good]}))
    watcher = JobWatcher(state_file, lambda base: None)
    assert watcher.followed() == [9]
    [status] = watcher.poll_once()
    assert (status.total, status.downloaded, status.output_dir) == (1, 0, "/tmp")


def test_a_state_file_that_cannot_be_read_or_written(tmp_path: Path) -> None:
    state_file = tmp_path / "jobs.json"
    state_file.mkdir()  # a folder where the file should be
    watcher = JobWatcher(state_file, lambda base: None)
    assert watcher.followed() == []
    watcher.follow(2, "http://h", {1: "/tmp/x.png"})  # logged, not raised: following goes on in memory
    assert watcher.followed() == [2]
    assert not list(tmp_path.glob("*.tmp"))


def test_follow_again_keeps_what_is_already_home(tmp_path: Path) -> None:
    state_file = tmp_path / "jobs.json"
    state_file.write_text(json.dumps({"jobs": [{
        "job_id": 4, "base_url": "http://h", "frame_paths": {"1": "/o/1.png", "2": "/o/2.png"},
        "downloaded": {"1": "a" * 64, "2": "b" * 64}}]}))
    watcher = JobWatcher(state_file, lambda base: None)
    watcher.follow(4, "http://h", {1: "/o/1.png", 2: "/elsewhere/2.png"})
    [entry] = json.loads(state_file.read_text())["jobs"]
    assert entry["downloaded"] == {"1": "a" * 64}, "frame 2 now goes elsewhere: it is fetched again"


# ---------------------------------------------------------------------- numbers


def test_eta() -> None:
    assert _eta((100.0, 0), 5, 10, now=110.0) == pytest.approx(10.0)  # 5 frames in 10 s, 5 left
    assert _eta((100.0, 2), 6, 10, now=120.0) == pytest.approx(20.0)  # counted from the first sight, 4 left
    assert _eta((100.0, 0), 1, 1000, now=101.0) == pytest.approx(999.0)
    assert _eta((100.0, 3), 3, 10, now=200.0) is None  # no progress yet: unknown, not infinite
    assert _eta((100.0, 5), 4, 10, now=200.0) is None  # fewer verified than before (frames re-rendered)
    assert _eta((100.0, 0), 10, 10, now=150.0) is None  # done
    assert _eta((100.0, 0), 5, 10, now=100.0) is None  # no time passed
    assert _eta((time.monotonic() - 10, 0), 5, 10) == pytest.approx(10.0, abs=1.0)  # now defaults to the clock


def test_status_numbers() -> None:
    def status(**changes: Any) -> JobStatus:
        base = {"job_id": 1, "state": "running", "total": 8, "verified": 2, "rendered": 1, "failed": 0,
                "downloaded": 2, "eta_seconds": None, "output_dir": "/o"}
        return JobStatus(**{**base, **changes})

    assert status().fraction == 0.25 and status(total=0, verified=0).fraction == 0.0
    assert not status().finished
    assert status(state="completed", verified=8, downloaded=8).finished
    assert not status(state="completed", verified=8, downloaded=7, pending=1).finished
    assert status(state="cancelled", verified=3, downloaded=0, pending=0).finished, "frames without a path"
    assert status(state="failed").finished
    assert not status(state="completed", verified=8, downloaded=8, open_claims=1).finished, "a claim may replace frames"


def test_paths_are_written_as_given(tmp_path: Path) -> None:
    """Frame numbers survive the JSON round trip as integers, paths as strings."""
    state_file = tmp_path / "jobs.json"
    JobWatcher(state_file, lambda base: None).follow(12, "http://h", {10: os.path.join("/a", "b.png")})
    again = JobWatcher(state_file, lambda base: None)
    assert again._jobs[12].frame_paths == {10: "/a/b.png"}
