"""A young network end to end (issue 13, point 1): a real coordinator, real agents rendering with Blender.

- One GPU owner: nobody may check its frames. The artist reads why at once (``framehive status``), may take the
  frames marked UNVERIFIED, and the job completes once a second owner's agent comes online.
- Same class first: a verifier of another device class (an agent whose hello says OptiX) is given a check of a
  CPU render only once the check has waited FRAMEHIVE_FALLBACK_WAIT, and meanwhile the artist reads why.
- Two honest owners and one cheater, no trusted node, no veteran: nobody is eligible to arbitrate a dispute at
  first, so after FRAMEHIVE_FALLBACK_WAIT (a few seconds here, set in the coordinator's environment) the third
  owner's render decides. The job completes within a bound, every delivered frame equals a local render, the
  cheater is caught and no honest owner is blamed.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from framehive.addon.cli import main as framehive
from framehive.addon.client import Client
from framehive.protocol import messages as m
from framehive.worker_agent.test_only import SEED_VARIABLE

from tests.dashboard.browser import Dashboard, chromium
from tests.farm import Farm, reference_render, wait_for
from tests.images import same_pixels
from tests.protocol_worker import ProtocolWorker

FALLBACK_WAIT = 3  # seconds: the coordinator's FRAMEHIVE_FALLBACK_WAIT in the cheater test
FRAMES = 4


@pytest.fixture
def young_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Farm]:
    """A farm whose coordinator waits FALLBACK_WAIT for a same-class verifier or a trusted arbiter."""
    monkeypatch.setenv("FRAMEHIVE_FALLBACK_WAIT", str(FALLBACK_WAIT))
    farm = Farm(tmp_path / "farm")
    farm.start_coordinator()
    yield farm
    farm.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(farm.logs())


@pytest.fixture(scope="module")
def refs(sample_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    return reference_render(sample_scene, list(range(1, FRAMES + 1)), tmp_path_factory.mktemp("reference"))


def workers(admin: Client) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in admin.workers()}


def stats(farm: Farm, token: str) -> dict[str, Any]:
    response = requests.get(f"{farm.url}/api/v1/stats", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def cli(capsys: pytest.CaptureFixture[str], farm: Farm, token: str, *argv: str) -> str:
    capsys.readouterr()
    assert framehive([*argv, "--coordinator", farm.url, "--token", token]) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err


def assert_delivered_frames_are_honest(user: Client, job_id: int, refs: dict[int, Path], out: Path) -> None:
    user.download_job(job_id, out)
    faked = [f for f, ref in refs.items() if not same_pixels(out / f"frame_{f:04d}.png", ref)]
    assert faked == [], f"frames {faked} differ from the local honest render"


def test_a_single_owner_is_told_why_frames_wait_and_the_job_completes_once_a_second_owner_joins(
        farm: Farm, sample_scene: Path, refs: dict[int, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    admin_token, user_token = farm.token("admin", "root"), farm.token("user", "artist")
    admin, user = Client(farm.url, admin_token), Client(farm.url, user_token)
    farm.start_worker("olga-box", farm.token("worker", "olga"))
    job = user.submit(sample_scene, frames=f"1-{FRAMES}", chunk=1)

    reason = f"frames 1-{FRAMES} wait for a verifier of another owner: none online"
    waiting = wait_for(lambda: (j := user.job(job["id"]))["waiting"] == reason and j, 120,
                       "every frame rendered and the job saying why it waits")
    assert waiting["state"] == "running" and waiting["counts"]["rendered"] == FRAMES
    status = cli(capsys, farm, user_token, "status", str(job["id"]))
    assert f"waiting   {reason}" in status, status
    assert "--unverified` gets them now, marked UNVERIFIED" in status
    with chromium() as browser:  # the dashboard's job page says it too, for the artist signed in
        dash = Dashboard(browser, farm.url)
        dash.login(user_token, f"/jobs/{job['id']}")
        said = dash.until(lambda _d: dash.text("#job-waiting"), "the waiting reason on the job page")
        assert said.startswith(f"Waiting: {reason}. {FRAMES} frame(s) await checks"), said
        dash.open("/")  # the overview counts the checks that wait (of the artist's jobs)
        dash.until(lambda _d: dash.text('[data-stat="checks"] .value') == str(FRAMES), "the waiting checks tile")
    network = stats(farm, admin_token)
    assert network["checks_waiting"]["total"] >= FRAMES and network["checks_waiting"]["by_kind"]["verify"] == FRAMES
    assert network["jobs_waiting"] == 1 and network["queue_depth"] == 0

    # The artist asks for the frames nobody could check: marked in their bytes, their name and their folder.
    out = tmp_path / "out"
    said = cli(capsys, farm, user_token, "download", str(job["id"]), "--out", str(out), "--unverified")
    assert "UNVERIFIED" in said
    assert not list(out.glob("*.png")), "nothing unverified lands where verified frames go"
    hashes = {f["frame"]: f["sha256"] for f in user.job(job["id"])["frame_states"]}
    for frame, ref in refs.items():
        copy = out / "unverified" / f"frame_{frame:04d}.UNVERIFIED.png"
        data = copy.read_bytes()
        assert b"tEXtFramehive\0UNVERIFIED: frame" in data[:200], "the mark is in the file itself"
        assert same_pixels(copy, ref), "the pixels as rendered"
        assert hashlib.sha256(data).hexdigest() != hashes[frame], "never the hash of the frame once verified"

    farm.start_worker("vera-box", farm.token("worker", "vera"))
    final = user.wait(job["id"], poll=0.2, timeout=180)
    assert final["state"] == "completed" and final["waiting"] is None, json.dumps(final)[:2000]
    assert {c["verifier"] for c in final["checks"] if c["kind"] == "verify"} == {"vera-box"}
    assert_delivered_frames_are_honest(user, job["id"], refs, out)
    assert not list((out / "unverified").glob("*.png")), "verified frames replace the unverified copies"
    assert all(w["times_caught"] == 0 for w in workers(admin).values())


def test_two_honest_owners_and_a_cheater_without_a_trusted_node_finish_in_bounded_time(
        young_farm: Farm, sample_scene: Path, refs: dict[int, Path], tmp_path: Path) -> None:
    farm = young_farm
    admin, user = Client(farm.url, farm.token("admin", "root")), Client(farm.url, farm.token("user", "artist"))
    farm.start_adversary("low-samples", farm.token("worker", "mallory"), "mallory-box", "--roles", "render")
    job = user.submit(sample_scene, frames=f"1-{FRAMES}", chunk=1)
    # The cheater renders first, alone, so that some of its frames are checked whatever the timing.
    wait_for(lambda: any(f["worker"] == "mallory-box" and f["state"] == "rendered"
                         for f in user.job(job["id"])["frame_states"]), 120, "a frame rendered by the cheater")
    farm.start_worker("olga-box", farm.token("worker", "olga"))
    farm.start_worker("vera-box", farm.token("worker", "vera"))

    final = user.wait(job["id"], poll=0.2, timeout=240)  # the bound: renders, checks, waits and re-renders

    assert final["state"] == "completed", json.dumps(final)[:3000]
    assert_delivered_frames_are_honest(user, job["id"], refs, tmp_path / "out")
    by_name = workers(admin)
    assert by_name["mallory-box"]["times_caught"] >= 1, "the cheater is caught"
    blamed = {n: by_name[n] for n in ("olga-box", "vera-box")
              if by_name[n]["times_caught"] or by_name[n]["checks_failed"] or by_name[n]["suspended"]}
    assert blamed == {}, f"honest owners were blamed: {blamed}"
    assert {f["worker"] for f in final["frame_states"]} <= {"olga-box", "vera-box"}
    # Nobody could arbitrate at first (no trusted node, no veteran): a fresh third owner's render decided.
    decided = [c for c in final["checks"] if c["kind"] == "arbitration" and c["renderer"] == "mallory-box"
               and c["verdict"] == "fail"]
    assert decided and all(c["verifier"] in ("olga-box", "vera-box") for c in decided), final["checks"]


def test_a_check_waits_for_the_renderers_device_class_before_another_class_gets_it(
        young_farm: Farm, sample_scene: Path) -> None:
    farm = young_farm
    user = Client(farm.url, farm.token("user", "artist"))
    other_class = ProtocolWorker(farm.url, farm.token("worker", "gina"), "gina-optix", device="OPTIX",
                                 roles=("verify",))
    try:
        farm.start_worker("olga-box", farm.token("worker", "olga"), "--roles", "render")
        job = user.submit(sample_scene, frames="1", chunk=1)
        wait_for(lambda: (other_class.send(m.Heartbeat()), user.job(job["id"]))[1]["checks"], 120, "the check")
        queued_at = time.monotonic()  # no earlier than the check's creation
        said = re.compile(r"frame 1 wait for a verifier of the renderer's device class: none online; one of "
                          r"another class checks them from \d\d:\d\d UTC")
        wait_for(lambda: said.fullmatch(user.job(job["id"])["waiting"] or ""), FALLBACK_WAIT, "the waiting reason")
        message = other_class.receive_alive(timeout=60)
        waited = time.monotonic() - queued_at
        assert isinstance(message, m.Verify) and message.frame == 1, message
        assert waited >= FALLBACK_WAIT - 0.5, f"another class got the check after {waited:.1f} s"
    finally:
        other_class.close()



def test_checks_go_to_a_verifier_of_the_renderers_class_while_one_of_another_class_waits(
        farm: Farm, sample_scene: Path, refs: dict[int, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Real agents of two simulated device classes (FRAMEHIVE_TEST_ONLY_RENDER_SEED: another seed, another class)
    and the default wait: the other class's verifier gets nothing; the job says why until a verifier of the
    renderer's class comes online, which then checks every frame bit-exactly."""
    user = Client(farm.url, farm.token("user", "artist"))
    tokens = {owner: farm.token("worker", owner) for owner in ("olga", "bob", "cat")}
    farm.start_worker("olga-box", tokens["olga"], "--roles", "render")
    with monkeypatch.context() as patch:
        patch.setenv(SEED_VARIABLE, "7")
        farm.start_worker("bob-seed7", tokens["bob"], "--roles", "verify")
    job = user.submit(sample_scene, frames=f"1-{FRAMES}", chunk=1)
    said = f"frames 1-{FRAMES} wait for a verifier of the renderer's device class: none online; one of another " \
           "class checks them from "
    wait_for(lambda: (user.job(job["id"])["waiting"] or "").startswith(said), 120, "the waiting reason")
    farm.start_worker("cat-box", tokens["cat"], "--roles", "verify")

    final = user.wait(job["id"], poll=0.2, timeout=180)

    assert final["state"] == "completed", json.dumps(final)[:3000]
    checks = [c for c in final["checks"] if c["state"] == "done"]
    assert {(c["verifier"], c["mode"], c["verdict"]) for c in checks} == {("cat-box", "strict", "pass")}, checks
    assert_delivered_frames_are_honest(user, job["id"], refs, tmp_path / "out")


def test_a_lying_verifier_without_a_trusted_node_is_outvoted_and_the_honest_renderer_never_blamed(
        young_farm: Farm, sample_scene: Path, refs: dict[int, Path], tmp_path: Path) -> None:
    """The liar answers every check with a black image (tests/adversary.py collude, no partner). Nobody may
    arbitrate until a third owner joins, and that one is no veteran: after the wait its render sides with the
    renderer, two renders against one."""
    farm = young_farm
    admin, user = Client(farm.url, farm.token("admin", "root")), Client(farm.url, farm.token("user", "artist"))
    farm.start_adversary("collude", farm.token("worker", "mallory"), "mallory-box", "--shared-dir",
                         str(tmp_path / "nobody"))
    farm.start_worker("olga-box", farm.token("worker", "olga"), "--roles", "render")
    job = user.submit(sample_scene, frames=f"1-{FRAMES}", chunk=1)
    said = re.compile(r"frames? [\d,-]+ disputed: wait for a third owner to re-render the region: none online")
    wait_for(lambda: said.search(user.job(job["id"])["waiting"] or ""), 120, "a dispute waiting for a third owner")
    farm.start_worker("vera-box", farm.token("worker", "vera"))

    final = user.wait(job["id"], poll=0.2, timeout=180)

    assert final["state"] == "completed", json.dumps(final)[:3000]
    assert_delivered_frames_are_honest(user, job["id"], refs, tmp_path / "out")
    by_name = workers(admin)
    assert by_name["mallory-box"]["times_caught"] >= 1, "the lying verifier is caught"
    assert (by_name["olga-box"]["times_caught"], by_name["olga-box"]["checks_failed"]) == (0, 0)
    assert by_name["vera-box"]["times_caught"] == 0
    assert {f["worker"] for f in final["frame_states"]} == {"olga-box"}, "its frames were never thrown out"
    outvoted = [c for c in final["checks"] if c["kind"] == "arbitration" and c["verdict"] == "pass"]
    assert outvoted and {c["verifier"] for c in outvoted} == {"vera-box"}, final["checks"]
