"""Adversaries end to end: a real coordinator, real Blender, and agents that cheat (tests/adversary.py).

Every cheat must be caught by blind verifiers of other owners, and nothing it faked may reach the artist:
the delivered frames are compared pixel for pixel with a local honest render. Honest workers are never
blamed.

Topology of the renderer tests, chosen so that the outcome does not depend on timing: the cheater (its own
owner, ``--roles render``) is the only renderer; two honest verify-only agents of two other owners are
online: a fresh one (vera) and one of the network's trusted nodes (tess), the only kind of third owner a new
network has that may arbitrate. Either takes a check: a failed check of vera's goes to tess's arbitration, a
failed check of tess's is final. Once the cheater is caught, an honest renderer of a fourth owner joins and
finishes the job.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from framehive.addon.client import Client
from framehive.coordinator import frame_analysis as fa

from tests.farm import REPO, Farm, Proc, make_scene, wait_for
from tests.images import same_pixels

SAMPLE_FRAMES = 12  # tests/conftest.py sample_scene
# tamper: a check catches it only if its secret 1/16 region overlaps the tampered 1/16 rectangle. With the
# coordinator's region draw (frame_analysis.draw_region: 16x9 at 64x36, corners favoured) and the adversary's
# rectangle uniform over the frame, they overlap with probability 0.2021 (exact enumeration over both position
# distributions; in this noisy 8-spp scene a mean-colour fill moves nearly every pixel by more than the
# strict tolerance of 4 levels: measured on frames 1, 16, 32, 48 and 64, detection is 0.2021 too). With
# chunk=1 and every task checked, the cheater escapes only if every check misses: (1 - 0.2021)^64 = 5.3e-7.
# "Every task checked" holds while its trust is below the burn-in (10 passes) when each task is committed,
# so in that test the verifiers come online only once all 64 tasks are committed (every key used at trust 0).
TAMPER_FRAMES = 64
# adjacent: frame f+1 (f-1 for the last) differs from frame f by more than 4 levels somewhere in the check
# region with probability 0.53-0.75 per frame (exact enumeration on the sample scene: the floor and sky far
# from the cube do not change); with each of the 12 tasks checked it escapes with probability 4.3e-6.
# blank, other-job, low-samples, half-res: every region of every frame differs (measured): the first check
# catches them.

VERIFIERS = {"vera-box": "vera", "tess-box": "network"}
TRUSTED = {"tess-box"}
HONEST, HONEST_OWNER = "olga-box", "olga"
RENDER_STRATEGIES = ["blank", "adjacent", "other-job", "low-samples", "half-res", "tamper"]


# ---------------------------------------------------------------------------------------------- fixtures


@dataclass
class Network:
    """A farm and its clients. Tokens come from the admin API: a CLI call costs a second of start-up."""

    farm: Farm
    admin_token: str

    @classmethod
    def on(cls, farm: Farm) -> Network:
        return cls(farm, farm.token("admin", "root"))

    def __post_init__(self) -> None:
        self.admin = Client(self.farm.url, self.admin_token)
        self.user = Client(self.farm.url, self.token("user", "artist"))

    def token(self, kind: str, name: str) -> str:
        response = requests.post(f"{self.farm.url}/api/v1/admin/tokens", json={"kind": kind, "name": name},
                                 headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def start_verifiers(self) -> list[Proc]:
        tokens = {name: self.farm.token("worker", name, owner, trusted=True) if name in TRUSTED
                  else self.token("worker", owner) for name, owner in VERIFIERS.items()}
        return [self.farm.start_worker(name, token, "--roles", "verify") for name, token in tokens.items()]

    def start_honest_renderer(self) -> Proc:
        return self.farm.start_worker(HONEST, self.token("worker", HONEST_OWNER), "--roles", "render")


@pytest.fixture(scope="module")
def long_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scene(tmp_path_factory.mktemp("scenes") / f"long{TAMPER_FRAMES}.blend", frames=TAMPER_FRAMES)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path, int], dict[int, Path]]:
    """``reference(scene, frames)``: honest local renders of frames 1..frames, made once per scene."""
    made: dict[Path, dict[int, Path]] = {}

    def render(scene: Path, frames: int) -> dict[int, Path]:
        if scene not in made:
            out = tmp_path_factory.mktemp("reference")
            subprocess.run([sys.executable, str(REPO / "tests" / "reference_render.py"), str(scene), str(out),
                            *map(str, range(1, frames + 1))], check=True, capture_output=True, timeout=600)
            made[scene] = {f: out / f"ref_{f:04d}.png" for f in range(1, frames + 1)}
        return made[scene]

    return render


@pytest.fixture(scope="module")
def shared_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """One coordinator and its two honest verifiers for the renderer tests: starting them is most of a test's
    cost on a 2-core machine. Each test brings a cheater of a new owner (trust 0, no history), starts the
    honest renderer only once its cheater is caught, and stops both (cancelling its job if unfinished)."""
    root = tmp_path_factory.mktemp("adversaries")
    # No check floor: a veteran's region checks are then as rare as its trust makes them (BURN_IN / trust), so
    # only spot checks can catch the veteran below (at the 5 % floor one of its 3 tasks has a region check with
    # 14 %, which may decide first). The other renderers here are new (every task checked): no floor applies.
    settings = root / "coordinator.toml"
    settings.write_text("check_floor = 0.0\n")
    farm = Farm(root / "farm", coordinator_args=["--config", str(settings)])
    farm.start_coordinator()
    try:
        network = Network.on(farm)
        network.start_verifiers()
        wait_online(network.admin, *VERIFIERS)
        yield network
    finally:
        farm.stop()


@pytest.fixture
def network(request: pytest.FixtureRequest) -> Iterator[Network]:
    """The shared network; for ``tamper`` a farm of its own, whose verifiers the test starts late (see
    TAMPER_FRAMES). Prints the shared farm's logs when the test fails (``farm`` prints its own)."""
    own = request.node.callspec.params["strategy"] == "tamper"
    network = Network.on(request.getfixturevalue("farm")) if own else request.getfixturevalue("shared_network")
    yield network
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and not own:
        print(network.farm.logs())


# ---------------------------------------------------------------------------------------------- helpers


def start_adversary(farm: Farm, strategy: str, token: str, name: str, *extra: str, label: str = "") -> Proc:
    """Run tests/adversary.py as Farm.start_worker runs the real agent (its log: adversary-<label>.log)."""
    return farm.start_adversary(strategy, token, name, *extra, label=label)


def workers(admin: Client) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in admin.workers()}


def wait_online(admin: Client, *names: str) -> None:
    wait_for(lambda: all(workers(admin).get(n, {}).get("online") for n in names), 90, f"{', '.join(names)} online")


def wait_caught(admin: Client, name: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(lambda: (w := workers(admin).get(name)) and w["times_caught"] >= 1 and w, timeout,
                    f"{name} to be caught")


def assert_all_verified(final: dict[str, Any], frames: int, renderers: set[str]) -> None:
    assert final["state"] == "completed", final["state"]
    states = final["frame_states"]
    assert [f["frame"] for f in states] == list(range(1, frames + 1))
    assert all(f["state"] == "verified" for f in states), states
    assert {f["worker"] for f in states} <= renderers, "a caught cheater's frames are all rendered again"


def assert_caught_by_a_failed_check(final: dict[str, Any], renderer: str) -> None:
    """Checks failed on ``renderer``'s frames; one was final (a trusted node's) or confirmed by a third owner's
    arbitration."""
    checks = final["checks"]
    failed = {c["id"]: c for c in checks if c["renderer"] == renderer and c["verdict"] == "fail"
              and c["kind"] in ("verify", "spot", "audit", "ringer")}
    assert failed, f"no failed check of {renderer}: {checks}"  # a verify, or an audit of a forged pass
    for check in failed.values():
        assert check["verifier"] in VERIFIERS and check["mode"] == "strict", check
        assert check["metrics"]["maxabs"] > 4 and check["metrics"]["psnr"] < 100, check
    confirmed = [c for c in checks if c["kind"] == "arbitration" and c["parent"] in failed and c["verdict"] == "fail"]
    final_by_trusted = [c for c in failed.values() if c["verifier"] in TRUSTED]
    assert confirmed or final_by_trusted, f"no arbitration confirmed a failed check: {checks}"
    for arbitration in confirmed:
        disputed = failed[arbitration["parent"]]
        assert arbitration["verifier"] in TRUSTED and arbitration["verifier"] != disputed["verifier"], arbitration
        assert arbitration["renderer"] == renderer and arbitration["frame"] == disputed["frame"]
        assert arbitration["region"] == disputed["region"] and arbitration["metrics"]["maxabs"] > 4, arbitration


def assert_never_blamed(admin: Client, *names: str) -> None:
    by_name = workers(admin)
    blamed = {n: {k: by_name[n][k] for k in ("times_caught", "checks_failed", "suspended")} for n in names
              if by_name[n]["times_caught"] or by_name[n]["checks_failed"] or by_name[n]["suspended"]}
    assert blamed == {}, f"honest workers were blamed: {blamed}"


def assert_delivered_frames_are_honest(user: Client, job_id: int, refs: dict[int, Path], out: Path) -> None:
    files = user.download_job(job_id, out)
    assert len(files) == len(refs)
    faked = [f for f, ref in refs.items() if not same_pixels(out / f"frame_{f:04d}.png", ref)]
    assert faked == [], f"frames {faked} differ from the local honest render"


# ---------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("strategy", RENDER_STRATEGIES)
def test_a_cheating_renderer_is_caught_and_none_of_its_pixels_are_delivered(
        strategy: str, network: Network, sample_scene: Path, reference, request: pytest.FixtureRequest,
        tmp_path: Path):
    farm, user, admin = network.farm, network.user, network.admin
    tamper = strategy == "tamper"
    scene, frames = (request.getfixturevalue("long_scene"), TAMPER_FRAMES) if tamper else (sample_scene, SAMPLE_FRAMES)
    cheater = f"mallory-{strategy}"
    procs = [start_adversary(farm, strategy, network.token("worker", cheater), cheater, "--roles", "render")]
    wait_online(admin, cheater)
    job = user.submit(scene, frames=f"1-{frames}", chunk=1)
    try:
        if tamper:  # see TAMPER_FRAMES: every task is committed, so every key is used, before anyone verifies
            wait_for(lambda: all(t["state"] == "verifying" for t in user.job(job["id"])["tasks"]), 180,
                     "every tampered task to be committed")
            procs += network.start_verifiers()
            # Nothing is left to render until the cheater is caught, so the honest renderer may start now.
            procs.append(network.start_honest_renderer())
        caught = wait_caught(admin, cheater)
        assert not caught["suspended"], "one offence resets trust; the second suspends"
        if not tamper:
            procs.append(network.start_honest_renderer())
        final = user.wait(job["id"], poll=0.2, timeout=120)
    finally:
        if user.job(job["id"])["state"] not in ("completed", "failed", "cancelled"):
            user.cancel(job["id"])  # the next test's honest renderer must not inherit this job
        for proc in procs:
            proc.stop()

    assert_all_verified(final, frames, {HONEST})
    assert_caught_by_a_failed_check(final, cheater)
    assert_never_blamed(admin, HONEST, *VERIFIERS)
    assert_delivered_frames_are_honest(user, job["id"], reference(scene, frames), tmp_path / "out")


@pytest.fixture(scope="module")
def veteran_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample scene at 16 samples: the veteran's 2-sample frames are then copies of no frame uploaded
    before. The low-samples cheater of another test uploads the sample scene's 1-sample frames; were one of
    them still stored (its job cancelled before an honest re-render replaced it), tier 0 would flag the
    veteran's identical frame as a copy, and a region check would cover that frame instead of a spot."""
    return make_scene(tmp_path_factory.mktemp("scenes") / "veteran.blend", frames=SAMPLE_FRAMES, samples=16)


def test_a_veteran_that_starts_faking_is_caught_by_spot_checks(
        shared_network: Network, veteran_scene: Path, reference, tmp_path: Path):
    """A renderer with a long honest record (trust far past the burn-in; this network has no check floor, so its
    region keys are used with BURN_IN / trust = 1e-8) turns to 1/8 of the samples. Every frame has a spot key
    used with 0.8: it escapes only if no spot falls on any of its 12 frames (0.2^12 = 4e-9)."""
    network = shared_network
    farm, user, admin = network.farm, network.user, network.admin
    cheater = "mallory-veteran"
    procs = [start_adversary(farm, "low-samples", network.token("worker", cheater), cheater, "--roles", "render")]
    try:
        wait_online(admin, cheater)
        # Stands in for hundreds of passed region checks (a long honest career), which this test cannot wait for.
        with sqlite3.connect(farm.data_dir / "framehive.sqlite3", timeout=30) as database:
            database.execute("UPDATE worker SET trust = 1000000000 WHERE name = ?", (cheater,))
        assert workers(admin)[cheater]["trust"] == 1_000_000_000
        job = user.submit(veteran_scene, frames=f"1-{SAMPLE_FRAMES}", chunk=4)
        caught = wait_caught(admin, cheater)
        assert caught["trust"] == 0
        procs.append(network.start_honest_renderer())
        final = user.wait(job["id"], poll=0.2, timeout=120)
    finally:
        for proc in procs:
            proc.stop()
    assert_all_verified(final, SAMPLE_FRAMES, {HONEST})
    assert_caught_by_a_failed_check(final, cheater)
    failed = [c for c in final["checks"] if c["renderer"] == cheater and c["verdict"] == "fail"]
    # An 8x8 spot failed it: the spot check, or a ringer made of one (a second opinion on the same region, which
    # another verifier renders; in one CI run it was decided first).
    assert any(c["kind"] in ("spot", "ringer") and fa.Region.from_list(c["region"]).area == 64 for c in failed), failed
    assert_never_blamed(admin, HONEST, *VERIFIERS)
    assert_delivered_frames_are_honest(user, job["id"], reference(veteran_scene, SAMPLE_FRAMES), tmp_path / "out")


def test_honest_workers_are_never_rejected(farm: Farm, sample_scene: Path, reference, tmp_path: Path):
    """Three honest owners (each agent renders and verifies) on two jobs of the same scene: every check passes.

    The two jobs' frames are copies of each other (tier 0 flags the later of each pair, so it is always
    checked): an honest re-render is a legitimate copy and passes too.
    """
    network = Network.on(farm)
    user, admin = network.user, network.admin
    names = {"ann-box": "ann", "ben-box": "ben", "cat-box": "cat"}
    for name, owner in names.items():
        farm.start_worker(name, network.token("worker", owner))
    wait_online(admin, *names)

    jobs = [user.submit(sample_scene, frames=f"1-{SAMPLE_FRAMES}", chunk=chunk) for chunk in (2, 3)]
    finals = [user.wait(job["id"], poll=0.2, timeout=120) for job in jobs]

    refs = reference(sample_scene, SAMPLE_FRAMES)
    for final in finals:
        assert_all_verified(final, SAMPLE_FRAMES, set(names))
        decided = [c for c in final["checks"] if c["state"] == "done"]  # an audit may still be open
        assert any(c["kind"] == "verify" for c in decided), "new workers are checked"
        assert all(c["verdict"] == "pass" and c["metrics"]["maxabs"] == 0 for c in decided), decided
        assert_delivered_frames_are_honest(user, final["id"], refs, tmp_path / f"out{final['id']}")
    assert any("copy" in f["flags"] for final in finals for f in final["frame_states"])
    assert not any(c["kind"] == "arbitration" for final in finals for c in final["checks"])
    assert_never_blamed(admin, *names)
    assert all(w["checks_passed"] > 0 for w in workers(admin).values())


def test_a_colluding_verifier_and_its_partner_are_both_caught(
        farm: Farm, sample_scene: Path, reference, tmp_path: Path):
    """A blank-frame renderer and a verifier that passes its fakes (they share a directory, out of band).

    Timeline, each step waited for: the partner fakes exactly one task while the colluder is the only
    verifier, and the colluder passes it, so a blank frame is accepted. The colluder goes offline before the
    honest verifiers come. The partner comes back and fakes on; the honest verifiers catch it, which
    sends all its frames (the accepted one too) back to the queue; an honest renderer renders them, and
    re-examining the colluder's pass against the honest re-render catches the colluder too. (The colluder
    may not arbitrate, being fresh; online, it would compete with the honest verifiers for the partner's later
    checks and make the timeline depend on which of them is picked.)
    """
    network = Network.on(farm)
    user, admin = network.user, network.admin
    shared, partner, crony = tmp_path / "collusion", "mallory-box", "crony-box"
    partner_token = network.token("worker", "mallory")
    first = start_adversary(farm, "blank", partner_token, partner, "--shared-dir", str(shared), "--max-tasks", "1",
                            label="partner-1")
    colluder = start_adversary(farm, "collude", network.token("worker", "crony"), crony, "--roles", "verify",
                               "--shared-dir", str(shared))
    wait_online(admin, partner, crony)

    job = user.submit(sample_scene, frames=f"1-{SAMPLE_FRAMES}", chunk=1)
    forged = wait_for(lambda: [c for c in user.job(job["id"])["checks"] if c["verifier"] == crony
                               and c["renderer"] == partner and c["verdict"] == "pass"], 90, "a forged pass")
    assert forged[0]["metrics"]["maxabs"] == 0, "the colluder's region matches the blank frame exactly"
    assert first.popen.wait(60) == 0, "the partner stops after its one task"
    assert colluder.stop() == 0
    network.start_verifiers()
    wait_online(admin, *VERIFIERS)
    start_adversary(farm, "blank", partner_token, partner, "--shared-dir", str(shared), label="partner-2")
    wait_caught(admin, partner)
    network.start_honest_renderer()
    final = user.wait(job["id"], poll=0.2, timeout=120)

    assert_all_verified(final, SAMPLE_FRAMES, {HONEST})
    assert_caught_by_a_failed_check(final, partner)
    assert workers(admin)[crony]["times_caught"] >= 1, "the forged pass is contradicted by the honest re-render"
    assert_never_blamed(admin, HONEST, *VERIFIERS)
    assert_delivered_frames_are_honest(user, job["id"], reference(sample_scene, SAMPLE_FRAMES), tmp_path / "out")
