"""The comparison science end to end (issue 13, points 3-5): real coordinator, real agents rendering with Blender.

- Blender's defaults (denoiser on, dither 1): three honest owners of one device class check each other and no
  check fails; the verifiers render a yardstick (a second seed) because the scene is denoised; every delivered
  frame equals the artist's own render with those settings (nothing pinned over them).
- Two device classes on one CPU: an agent with FRAMEHIVE_TEST_ONLY_RENDER_SEED renders with another seed and
  reports another device class. Honest pairs across the classes pass every check (judged against a yardstick),
  and a cheater of a third class is caught by cross-class checks alone.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from framehive.worker_agent.test_only import SEED_VARIABLE

from tests.e2e.test_adversaries import Network, start_adversary, wait_caught, wait_online, workers
from tests.farm import REPO, Farm, make_scene, reference_render
from tests.images import same_pixels

FRAMES = 6
# The cheater's frames. A 1-sample fake of the 8-sample scene measures about 6 yardsticks across classes, at the
# limit: a check fails it about 55 % of the time, and it is caught when a second owner's arbitration fails it too,
# about 30 % a frame (15 runs' checks, 2026-12-08). With 12 frames it went uncaught in about 2 % of runs (one CI
# failure); with 36, about 3 in a million. The test ends at the catch, so more frames cost only the unlucky runs.
CHEATER_FRAMES = 36
FALLBACK_WAIT = 0  # seconds: checks go across device classes at once (point 2's wait is not under test here)


@pytest.fixture(scope="module")
def artist_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample scene with Blender's default denoiser and dither (tests/scenes/artist_defaults.py)."""
    out = tmp_path_factory.mktemp("scenes") / "artist.blend"
    subprocess.run([sys.executable, str(REPO / "tests" / "scenes" / "artist_defaults.py"), str(out), "--frames",
                    str(FRAMES + 1)], check=True, capture_output=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def cheater_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scene(tmp_path_factory.mktemp("scenes") / "cheater.blend", frames=CHEATER_FRAMES)


@pytest.fixture
def mixed_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Farm]:
    """A farm whose coordinator leases checks across device classes without waiting."""
    monkeypatch.setenv("FRAMEHIVE_FALLBACK_WAIT", str(FALLBACK_WAIT))
    # Every worker stays new for the whole test: with the default burn-in (10 passed checks) a fast pair can earn
    # trust before its last task is drawn, and that task is then checked at the spot rate only.
    monkeypatch.setenv("FRAMEHIVE_TRUST_BURN_IN", "1000")
    farm = Farm(tmp_path / "farm")
    farm.start_coordinator()
    yield farm
    farm.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(farm.logs())


def start_in_class(farm: Farm, monkeypatch: pytest.MonkeyPatch, seed: int | None, start: Any) -> Any:
    """Start an agent (``start()``) with the test-only seed of a simulated device class, or without one."""
    with monkeypatch.context() as patch:
        if seed is not None:
            patch.setenv(SEED_VARIABLE, str(seed))
        else:
            patch.delenv(SEED_VARIABLE, raising=False)
        return start()


def decided(final: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in final["checks"] if c["state"] == "done"]


def test_three_honest_owners_on_a_denoised_dithered_scene_pass_every_check_and_deliver_the_artists_pixels(
        farm: Farm, artist_scene: Path, tmp_path: Path):
    network = Network.on(farm)
    names = {"ann-box": "ann", "ben-box": "ben", "cat-box": "cat"}
    for name, owner in names.items():
        farm.start_worker(name, network.token("worker", owner))
    wait_online(network.admin, *names)

    job = network.user.submit(artist_scene, frames=f"1-{FRAMES}", chunk=1)
    final = network.user.wait(job["id"], poll=0.2, timeout=240)

    assert final["state"] == "completed", final["state"]
    checks = decided(final)
    assert sum(c["kind"] == "verify" for c in checks) == FRAMES, "new workers: every task is checked"
    assert all(c["verdict"] == "pass" and c["mode"] == "strict" for c in checks), checks
    assert all("yardstick" in c["metrics"] for c in checks), "a denoised scene's verifier renders a yardstick"
    assert not any(c["kind"] == "arbitration" for c in final["checks"])
    assert all(w["checks_failed"] == 0 and w["times_caught"] == 0 for w in workers(network.admin).values())
    refs = reference_render(artist_scene, list(range(1, FRAMES + 1)), tmp_path / "reference")
    network.user.download_job(job["id"], tmp_path / "out")
    differ = [f for f, ref in refs.items() if not same_pixels(tmp_path / "out" / f"frame_{f:04d}.png", ref)]
    assert differ == [], f"frames {differ} differ from the artist's own render (denoiser on, dither 1)"


def test_honest_owners_of_two_device_classes_pass_every_cross_class_check(
        mixed_farm: Farm, sample_scene: Path, artist_scene: Path, monkeypatch: pytest.MonkeyPatch):
    network = Network.on(mixed_farm)
    ann = start_in_class(mixed_farm, monkeypatch, None,
                         lambda: mixed_farm.start_worker("ann-box", network.token("worker", "ann")))
    ben = start_in_class(mixed_farm, monkeypatch, 7,
                         lambda: mixed_farm.start_worker("ben-box", network.token("worker", "ben")))
    assert ann and ben
    wait_online(network.admin, "ann-box", "ben-box")
    versions = {name: w["blender_version"] for name, w in workers(network.admin).items()}
    assert versions["ben-box"] == f"{versions['ann-box']} test-seed7", versions

    jobs = [network.user.submit(sample_scene, frames="1-12", chunk=1),
            network.user.submit(artist_scene, frames=f"1-{FRAMES}", chunk=1)]
    finals = [network.user.wait(job["id"], poll=0.2, timeout=300) for job in jobs]

    checks = [c for final in finals for c in decided(final)]
    assert all(final["state"] == "completed" for final in finals), [f["state"] for f in finals]
    assert len(checks) >= 18, "new workers: every task of both jobs is checked"
    assert all(c["mode"] == "cross" for c in checks), "two owners, two classes: every check crosses"
    failed = [c for c in checks if c["verdict"] != "pass"]
    assert failed == [], failed
    assert max(c["metrics"]["ratio"] for c in checks) > 0.5, "other noise: the crops are not the verifier's"
    assert all(w["checks_failed"] == 0 and w["times_caught"] == 0 for w in workers(network.admin).values())


@pytest.mark.parametrize("strategy", ["low-samples", "half-res"])
def test_a_cheater_of_a_third_device_class_is_caught_by_cross_class_checks(
        strategy: str, mixed_farm: Farm, cheater_scene: Path, monkeypatch: pytest.MonkeyPatch):
    network = Network.on(mixed_farm)
    start_in_class(mixed_farm, monkeypatch, None,
                   lambda: mixed_farm.start_worker("ann-box", network.token("worker", "ann"), "--roles", "verify"))
    start_in_class(mixed_farm, monkeypatch, 7,
                   lambda: mixed_farm.start_worker("ben-box", network.token("worker", "ben"), "--roles", "verify"))
    cheater = f"mallory-{strategy}"
    start_in_class(mixed_farm, monkeypatch, 9, lambda: start_adversary(
        mixed_farm, strategy, network.token("worker", cheater), cheater, "--roles", "render"))
    wait_online(network.admin, "ann-box", "ben-box", cheater)

    job = network.user.submit(cheater_scene, frames=f"1-{CHEATER_FRAMES}", chunk=1)
    wait_caught(network.admin, cheater, timeout=240)

    final = network.user.job(job["id"])
    failed = [c for c in decided(final) if c["renderer"] == cheater and c["verdict"] == "fail"]
    assert failed and all(c["mode"] == "cross" for c in failed), [(c["kind"], c["mode"], c["reason"]) for c in failed]
    # An honest render of another class may pass a fake its peer fails (d < 1 across classes): neither is a liar.
    blamed = {n: workers(network.admin)[n]["times_caught"] for n in ("ann-box", "ben-box")}
    assert blamed == {"ann-box": 0, "ben-box": 0}, blamed
