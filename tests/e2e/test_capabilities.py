"""Capability refusals end to end (issue 13, point 6): a real coordinator, a real agent rendering with Blender
5.0.1 on the CPU, and agents that speak the real protocol from the test (tests/protocol_worker.py) standing in
for a newer Blender or a GPU (neither exists on this machine: their hello says so, which is all the coordinator
ever has of an agent's Blender and device).

- A scene saved by a newer Blender (the sample scene with its header saying 5.1) is never given to the 5.0.1
  agent, which renders other work meanwhile; the job says why, and an agent with Blender 5.1 gets it.
- A GPU-only job on a CPU-only network waits with the reason; an agent whose hello says OptiX gets it.
- ``--max-workers 1``: while one agent renders the job, an idle agent that may take it is given other work.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from framehive.addon.cli import main as framehive
from framehive.protocol import blend_inflate
from framehive.protocol import messages as m

from tests.farm import wait_for
from tests.live import Site, running_site
from tests.protocol_worker import ProtocolWorker, png

REAL_AGENT = "1 with Blender 5.0.1 on CPU"
DONE = 180  # seconds for a few 64x36 frames on a loaded 2-core machine


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("capabilities"), workers=1, artist=("user", "artist"),
                      newer=("worker", "newer-owner"), gpu=("worker", "gpu-owner"),
                      gpu2=("worker", "gpu2-owner")) as site:
        yield site


@pytest.fixture(scope="module")
def newer_scene(sample_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample scene as if Blender 5.1 had saved it: inflated, its header's version 0500 made 0501."""
    folder = tmp_path_factory.mktemp("newer")
    plain = blend_inflate.inflate(sample_scene, folder / "plain.blend", 1 << 30)
    data = plain.read_bytes()
    assert data[:17] == b"BLENDER17-01v0500", data[:17]
    target = folder / "newer.blend"
    target.write_bytes(data[:12] + b"v0501" + data[17:])
    return target


def submit(site: Site, scene: Path, *flags: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """``framehive submit`` as an artist runs it; returns the job."""
    capsys.readouterr()
    assert framehive(["submit", "--quiet", str(scene), *site.connection(), *flags]) == 0
    job_id = int(capsys.readouterr().out.split()[0])
    return site.client().job(job_id)


def completed(site: Site, job_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = site.client().job(job_id)
        assert job["state"] not in ("failed", "cancelled"), job
        return job if job["state"] == "completed" else None

    return wait_for(done, DONE, f"job {job_id} to complete")


def waiting(site: Site, job_id: int, reason: str) -> dict[str, Any]:
    return wait_for(lambda: (job := site.client().job(job_id))["waiting"] == reason and job, 30,
                    f"job {job_id} to say it waits: {reason}")


def assignment(worker: ProtocolWorker) -> m.Assign:
    message = worker.receive_alive(timeout=30)
    assert isinstance(message, m.Assign), message
    return message


def test_a_scene_of_a_newer_blender_waits_for_one(site, newer_scene, sample_scene, capsys):  # type: ignore[no-untyped-def]
    newer = submit(site, newer_scene, "--frames", "1-2", "--priority", "90", capsys=capsys)
    assert newer["requirements"]["blender"] == "5.1"  # read from the file: the artist said nothing
    other = submit(site, sample_scene, "--frames", "1-2", "--priority", "10", capsys=capsys)
    completed(site, other["id"])  # the 5.0.1 agent was idle and took the lower-priority job
    job = waiting(site, newer["id"], f"needs Blender ≥ 5.1: none online (agents online: {REAL_AGENT})")
    assert all(task["attempts"] == 0 for task in job["tasks"]), job["tasks"]  # never given to it
    worker = ProtocolWorker(site.url, site.tokens["newer"], "blender-5.1", blender_version="5.1.0")
    try:
        assert assignment(worker).job_id == newer["id"]
        wait_for(lambda: site.client().job(newer["id"])["waiting"] is None, 30, "the waiting reason to clear")
    finally:
        worker.close()
        site.client().cancel(newer["id"])


def test_a_gpu_only_job_waits_on_a_cpu_network(site, sample_scene, capsys):  # type: ignore[no-untyped-def]
    gpu_only = submit(site, sample_scene, "--frames", "1-2", "--priority", "90", "--device", "gpu", capsys=capsys)
    other = submit(site, sample_scene, "--frames", "3-4", "--priority", "10", capsys=capsys)
    completed(site, other["id"])
    waiting(site, gpu_only["id"], f"needs a GPU: none online (agents online: {REAL_AGENT})")
    capsys.readouterr()
    assert framehive(["status", str(gpu_only["id"]), *site.connection()]) == 0
    status = capsys.readouterr().out
    assert "needs a GPU: none online" in status and "Blender ≥ 5.0, a GPU" in status, status
    worker = ProtocolWorker(site.url, site.tokens["gpu"], "optix-box", device="OPTIX")
    try:
        assert assignment(worker).job_id == gpu_only["id"]
    finally:
        worker.close()
        site.client().cancel(gpu_only["id"])


def test_max_workers_keeps_other_agents_off_the_job(site, sample_scene, capsys):  # type: ignore[no-untyped-def]
    # GPU-only, so that only the two stand-in agents may take them and the test decides who is idle when.
    first = ProtocolWorker(site.url, site.tokens["gpu"], "gpu-a", device="CUDA")
    second = None
    try:
        capped = submit(site, sample_scene, "--frames", "1-2", "--chunk", "1", "--priority", "90", "--device",
                        "gpu", "--max-workers", "1", capsys=capsys)
        assert capped["requirements"]["max_workers"] == 1
        held = assignment(first)
        assert held.job_id == capped["id"]
        second = ProtocolWorker(site.url, site.tokens["gpu2"], "gpu-b", device="CUDA")  # idle: may not join
        other = submit(site, sample_scene, "--frames", "5", "--priority", "10", "--device", "gpu", capsys=capsys)
        assert assignment(second).job_id == other["id"]  # not the capped job's second task, of higher priority
        for frame in held.frames:
            assert first.upload(held, frame, png()).status_code in (200, 201)
        first.send(m.TaskDone(task_id=held.task_id, attempt=held.attempt))
        follow = assignment(first)  # the agent rendering it may go on
        assert (follow.job_id, follow.task_id) != (held.job_id, held.task_id) and follow.job_id == capped["id"]
    finally:
        first.close()
        if second is not None:
            second.close()
