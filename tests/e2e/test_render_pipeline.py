"""End to end: real coordinator, two real worker agents, real Blender renders."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from framehive.addon.client import Client

from tests.farm import REPO, Farm, wait_for
from tests.images import pixels, same_pixels


def online_workers(client: Client, count: int) -> bool:
    workers = client.workers()
    return sum(w["online"] for w in workers) >= count


def test_job_renders_on_two_workers_and_matches_a_local_render(farm: Farm, sample_scene: Path, tmp_path: Path):
    user = Client(farm.url, farm.token("user", "artist"))
    farm.start_worker("w1", farm.token("worker", "owner-1"))  # two owners: each verifies the other's frames
    farm.start_worker("w2", farm.token("worker", "owner-2"))
    admin = Client(farm.url, farm.token("admin", "root"))
    wait_for(lambda: online_workers(admin, 2), 90, "two workers online")

    job = user.submit(sample_scene, frames="1-12")
    final = user.wait(job["id"], poll=0.2, timeout=240)

    assert final["state"] == "completed", final
    states = final["frame_states"]
    assert [f["frame"] for f in states] == list(range(1, 13))
    assert all(f["state"] == "verified" and f["sha256"] for f in states)
    assert {f["worker"] for f in states} == {"w1", "w2"}, "both workers should have rendered frames"
    assert any(c["verdict"] == "pass" for c in final["checks"]), "new workers are checked"

    out = tmp_path / "out"
    files = user.download_job(job["id"], out)
    assert len(files) == 12
    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run([sys.executable, str(REPO / "tests" / "reference_render.py"), str(sample_scene), str(ref),
                    *map(str, range(1, 13))], check=True, capture_output=True, timeout=300)
    for frame in range(1, 13):
        got, want = out / f"frame_{frame:04d}.png", ref / f"ref_{frame:04d}.png"
        assert pixels(got).shape == (36, 64, 4)
        assert same_pixels(got, want), f"frame {frame} differs from the local render"
    assert not same_pixels(out / "frame_0001.png", out / "frame_0012.png"), "the scene should animate"


def test_worker_killed_mid_task_the_job_still_completes(farm: Farm, tmp_path: Path):
    """SIGKILL a worker halfway through a task: its uploaded frames are kept, the rest go to the other worker."""
    from tests.farm import make_scene

    scene = make_scene(tmp_path / "slow.blend", frames=12, samples=64)  # ~1 s a frame: time to kill mid-task
    user = Client(farm.url, farm.token("user", "artist"))
    token = farm.token("worker", "gpu-owner", trusted=True)
    workers = {name: farm.start_worker(name, token) for name in ("w1", "w2")}
    wait_for(lambda: online_workers(Client(farm.url, token), 2), 90, "two workers online")

    job = user.submit(scene, frames="1-12", chunk=12)  # one task: whoever takes it is the victim

    def victim_mid_task() -> str | None:
        state = user.job(job["id"])
        task = state["tasks"][0]
        done = [f for f in state["frame_states"] if f["state"] == "rendered"]
        return task["worker"] if task["state"] == "leased" and len(done) >= 2 else None

    victim = wait_for(victim_mid_task, 120, "two frames from the first worker")
    workers[victim].stop(signal.SIGKILL)
    kept = {f["frame"]: f["sha256"] for f in user.job(job["id"])["frame_states"] if f["state"] == "rendered"}

    final = user.wait(job["id"], poll=0.2, timeout=240)
    assert final["state"] == "completed", final
    frames = final["frame_states"]
    assert sorted(f["frame"] for f in frames) == list(range(1, 13)), "every frame exactly once"
    assert all(f["state"] == "verified" and f["sha256"] for f in frames)
    for number, sha in kept.items():
        row = next(f for f in frames if f["frame"] == number)
        assert (row["sha256"], row["worker"]) == (sha, victim), "frames uploaded before the kill are kept"
    survivor = ({"w1", "w2"} - {victim}).pop()
    assert {f["worker"] for f in frames} == {victim, survivor}
    assert final["tasks"][0]["attempts"] == 2
    assert [f["reason"] for f in final["failures"]] == ["lease_lost"]
    out = tmp_path / "out"
    assert len(user.download_job(job["id"], out)) == 12


def test_hostile_scene_runs_none_of_its_python(farm: Farm, tmp_path: Path):
    """Text block, driver, frame handler and Freestyle style module all try to write canaries: none may."""
    canaries = tmp_path / "canaries"
    canaries.mkdir()
    scene = tmp_path / "hostile.blend"
    subprocess.run([sys.executable, str(REPO / "tests" / "scenes" / "hostile.py"), str(scene), str(canaries)],
                   check=True, capture_output=True, timeout=120)
    user = Client(farm.url, farm.token("user", "artist"))
    farm.start_worker("w1", farm.token("worker", "gpu-owner", trusted=True))

    job = user.submit(scene, frames="1-3")
    final = user.wait(job["id"], poll=0.2, timeout=180)

    assert final["state"] == "completed", final
    assert list(canaries.iterdir()) == [], "a script inside the .blend ran on the worker"
    files = user.download_job(job["id"], tmp_path / "out")
    assert len(files) == 3
    assert all(pixels(path).shape[:2] == (36, 64) for path in files)


def test_sigterm_hands_the_task_back_without_a_failure(farm: Farm, tmp_path: Path):
    from tests.farm import make_scene

    scene = make_scene(tmp_path / "slow.blend", frames=8, samples=64)
    user = Client(farm.url, farm.token("user", "artist"))
    token = farm.token("worker", "gpu-owner", trusted=True)
    workers = {name: farm.start_worker(name, token) for name in ("w1", "w2")}
    wait_for(lambda: online_workers(Client(farm.url, token), 2), 90, "two workers online")
    job = user.submit(scene, frames="1-8", chunk=8)

    def holder_mid_task() -> str | None:
        state = user.job(job["id"])
        rendered = sum(f["state"] == "rendered" for f in state["frame_states"])
        return state["tasks"][0]["worker"] if state["tasks"][0]["state"] == "leased" and rendered >= 1 else None

    holder = wait_for(holder_mid_task, 120, "the first frame")
    assert workers[holder].stop(signal.SIGTERM) == 0, workers[holder].log_text()
    assert "handing task" in workers[holder].log_text()
    final = user.wait(job["id"], poll=0.2, timeout=240)
    assert final["state"] == "completed"
    assert final["failures"] == [], "a graceful hand-back is not a failure"
    assert final["tasks"][0]["attempts"] == 2


def test_workers_reconnect_after_a_coordinator_restart(farm: Farm, sample_scene: Path):
    user_token = farm.token("user", "artist")
    token = farm.token("worker", "gpu-owner", trusted=True)
    worker = farm.start_worker("w1", token)
    wait_for(lambda: online_workers(Client(farm.url, token), 1), 90, "the worker online")

    farm.restart_coordinator()
    wait_for(lambda: worker.log_text().count("connected to") >= 2, 60, "the worker to reconnect")
    user = Client(farm.url, user_token)
    job = user.submit(sample_scene, frames="1-3")
    assert user.wait(job["id"], poll=0.2, timeout=120)["state"] == "completed"
    assert "reconnecting in" in worker.log_text()


def test_cancelling_a_running_job_stops_the_worker_and_frees_it(farm: Farm, tmp_path: Path, sample_scene: Path):
    from tests.farm import make_scene

    slow = make_scene(tmp_path / "slow.blend", frames=12, samples=256)
    user = Client(farm.url, farm.token("user", "artist"))
    worker = farm.start_worker("w1", farm.token("worker", "gpu-owner", trusted=True))
    big = user.submit(slow, frames="1-12", chunk=12)
    wait_for(lambda: user.job(big["id"])["counts"]["rendering"] >= 1, 120, "rendering to start")

    cancelled = user.cancel(big["id"])
    assert cancelled["state"] == "cancelled"
    wait_for(lambda: "cancelled by the coordinator" in worker.log_text(), 30, "the worker to drop the task")
    small = user.submit(sample_scene, frames="1-2")
    assert user.wait(small["id"], poll=0.2, timeout=120)["state"] == "completed"
    final = user.job(big["id"])
    assert final["state"] == "cancelled"
    assert final["counts"]["rendered"] < 12


@pytest.mark.coordinator_args("--lease-timeout", "2", "--heartbeat-interval", "0.4")
def test_heartbeats_keep_flowing_while_blender_renders(farm: Farm, tmp_path: Path):
    """Frames far longer than the lease: the agent's event loop must keep renewing it during each render."""
    from tests.farm import make_scene

    scene = make_scene(tmp_path / "slow.blend", frames=2, samples=512)
    user = Client(farm.url, farm.token("user", "artist"))
    farm.start_worker("w1", farm.token("worker", "gpu-owner", trusted=True))
    job = user.submit(scene, frames="1-2", chunk=2)
    final = user.wait(job["id"], poll=0.2, timeout=240)
    assert final["state"] == "completed"
    assert final["failures"] == [], "the lease was lost while Blender rendered"
    assert final["tasks"][0]["attempts"] == 1
