"""End to end: real coordinator, two real worker agents, real Blender renders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from addon.client import Client
from tests.farm import REPO, Farm, wait_for
from tests.images import pixels, same_pixels


def online_workers(client: Client, count: int) -> bool:
    workers = client._request("GET", "/api/v1/workers")["workers"]  # noqa: SLF001 - test helper
    return sum(w["online"] for w in workers) >= count


def test_job_renders_on_two_workers_and_matches_a_local_render(farm: Farm, sample_scene: Path, tmp_path: Path):
    user = Client(farm.url, farm.token("user", "artist"))
    worker_token = farm.token("worker", "gpu-owner")
    farm.start_worker("w1", worker_token)
    farm.start_worker("w2", worker_token)
    owner = Client(farm.url, worker_token)
    wait_for(lambda: online_workers(owner, 2), 90, "two workers online")

    job = user.submit(sample_scene, frames="1-12")
    final = user.wait(job["id"], poll=0.2, timeout=240)

    assert final["state"] == "completed", final
    states = final["frame_states"]
    assert [f["frame"] for f in states] == list(range(1, 13))
    assert all(f["state"] == "rendered" and f["sha256"] for f in states)
    assert {f["worker"] for f in states} == {"w1", "w2"}, "both workers should have rendered frames"

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
