"""Verification end to end: real workers of different owners check each other's frames, blind."""

from __future__ import annotations

from pathlib import Path

from framehive.addon.client import Client

from tests.farm import Farm, wait_for


def online(client: Client, count: int) -> bool:
    return sum(w["online"] for w in client.workers()) >= count


def test_new_workers_are_checked_by_another_owner_and_only_verified_frames_are_delivered(
        farm: Farm, sample_scene: Path, tmp_path: Path):
    user = Client(farm.url, farm.token("user", "artist"))
    admin = Client(farm.url, farm.token("admin", "root"))
    farm.start_worker("alice-gpu", farm.token("worker", "alice"))
    farm.start_worker("bob-gpu", farm.token("worker", "bob"))
    wait_for(lambda: online(admin, 2), 90, "two workers of two owners")

    job = user.submit(sample_scene, frames="1-12", chunk=3)
    final = user.wait(job["id"], poll=0.2, timeout=240)

    assert final["state"] == "completed", final
    assert all(f["state"] == "verified" for f in final["frame_states"])
    checks = [c for c in final["checks"] if c["kind"] == "verify"]
    # New workers have every task checked: one secret region per task of 3 frames.
    assert len(checks) == 4
    for check in checks:
        assert check["verdict"] == "pass" and check["mode"] == "strict", check
        assert check["verifier"] != check["renderer"], "a worker never verifies its own frames"
        x, y, w, h = check["region"]
        assert x >= 0 and y >= 0 and x + w <= 64 and y + h <= 36 and w * h < 64 * 36 / 4
        assert check["metrics"]["maxabs"] == 0, "same device class and seed: identical pixels"
        frame = next(f for f in final["frame_states"] if f["frame"] == check["frame"])
        assert frame["verified_by"] == "check"
    assert len(user.download_job(job["id"], tmp_path / "out")) == 12
