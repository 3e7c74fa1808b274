"""Tier 1 end to end: real agents of two owners render with Blender and check each other's frames, every frame
also re-rendered whole at low resolution (FRAMEHIVE_TIER1_RATE = 1 from a --config file). Honest workers: the job
completes, nobody is caught, and any tier-1 flag was settled by a strict region check that passed. The scene is
160x90 (tier 1 at 1/5, a 32x18 render): the 64x36 sample scene is too small for tier 1 (tier1.factor_for)."""

from __future__ import annotations

from pathlib import Path

from framehive.addon.client import Client
from framehive.coordinator.verification import tier1

from tests.farm import Farm, make_scene, wait_for


def test_honest_workers_pass_tier1_checks_and_the_job_completes(tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "scene.blend", width=160, height=90, frames=6)
    assert tier1.factor_for(160, 90) == 5
    settings = tmp_path / "coordinator.toml"
    settings.write_text("tier1_rate = 1.0\n")
    farm = Farm(tmp_path / "farm", coordinator_args=["--config", str(settings)])
    try:
        farm.start_coordinator()
        user = Client(farm.url, farm.token("user", "artist"))
        admin = Client(farm.url, farm.token("admin", "root"))
        farm.start_worker("alice-gpu", farm.token("worker", "alice"))
        farm.start_worker("bob-gpu", farm.token("worker", "bob"))
        wait_for(lambda: sum(w["online"] for w in admin.workers()) >= 2, 90, "two workers of two owners")
        job = user.submit(scene, frames="1-6", chunk=3)
        final = user.wait(job["id"], poll=0.2, timeout=240)
        workers = admin.workers()
    finally:
        farm.stop()
    assert final["state"] == "completed", final
    checks = final["checks"]
    firsts = [c for c in checks if c["kind"] == "tier1"]
    assert sorted(c["frame"] for c in firsts) == list(range(1, 7)), "every frame of a new renderer"
    for check in firsts:
        assert check["verdict"] in ("pass", "fail") and check["verifier"] != check["renderer"], check
        assert check["metrics"]["min_tile_psnr"] > 0
        follow = [c for c in checks if c["parent"] == check["id"]]
        if check["verdict"] == "fail":  # flagged: a strict check of the worst tile decided, for the renderer
            assert [c["verdict"] for c in follow] == ["pass"], follow
        else:
            assert follow == []
    assert all(w["times_caught"] == 0 for w in workers), "honest workers are never blamed"
