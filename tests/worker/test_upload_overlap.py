"""A frame's upload goes on while the next frame renders (issue 16, point 3): Blender does not wait for the network.

The real task runner (real Blender) against a loopback HTTP server standing for the coordinator: it serves the scene
and takes the frames, holding the first frame's upload until the agent has started the second frame (its progress
message). Before the overlap, the agent started frame 2 only after frame 1's upload was answered, so the held
upload was released only by its deadline, after which the test failed on the order of events.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from framehive.protocol import messages as m
from framehive.worker_agent import coordinator_urls as urls
from framehive.worker_agent.blender import BlenderLauncher, RenderProcess
from framehive.worker_agent.task_runner import TaskRunner

from tests.scripted_http import Answer, scripted_server

TASK, ATTEMPT, JOB = 4, 1, 2
HOLD = 30.0  # seconds the first frame's upload is held at most: the agent's second frame releases it long before
FRAME_PUT = re.compile(rf"/api/v1/worker/tasks/{TASK}/frames/(\d+)\?attempt={ATTEMPT}$")


class Coordinator:
    """What the agent's HTTP side meets (a tests/scripted_http script): the scene's blob, and frames PUT, the first
    held until ``release``, the ``refuse``d one answered 403."""

    def __init__(self, blob: bytes, refuse: int | None = None) -> None:
        self.blob = blob
        self.refuse = refuse
        self.sha = hashlib.sha256(blob).hexdigest()
        self.release = threading.Event()
        self.events: list[str] = []  # "put 1 begins", "put 1 ends", ... in the order the server saw them
        self.lock = threading.Lock()

    def note(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def __call__(self, method: str, path: str, _index: int) -> Answer:
        if method == "GET" and path == urls.blob_path(self.sha):
            return Answer(body=self.blob, headers={"Content-Type": "application/octet-stream"})
        if method == "POST":  # a presigned upload? None here: the frame comes by PUT
            return Answer(body=b'{"url": null}')
        match = FRAME_PUT.match(path) if method == "PUT" else None
        if match is None:
            return Answer(status=404, body=b'{"error": "not_found"}')
        frame = int(match.group(1))
        self.note(f"put {frame} begins")
        if frame == self.refuse:
            self.note(f"put {frame} refused")
            return Answer(status=403, body=b'{"error": "forbidden"}')
        if frame == 1:
            self.release.wait(HOLD)
        self.note(f"put {frame} ends")
        return Answer(status=201, body=b'{"accepted": true}')


@contextmanager
def serving(coordinator: Coordinator) -> Iterator[str]:
    with scripted_server(coordinator) as server:
        try:
            yield server.url
        finally:
            coordinator.release.set()  # a held upload must not keep the server's shutdown waiting


def run_task(coordinator: Coordinator, tmp_path: Path, said: list[m.Message]) -> None:
    """The task of frames 1-3 run by a real task runner against ``coordinator``; what it said goes to ``said``."""

    async def send(message: m.Message) -> None:
        said.append(message)
        if isinstance(message, m.Progress):
            coordinator.note(f"progress {message.frame}")
            if message.frame == 2:
                coordinator.release.set()  # frame 2 started: frame 1's upload may end

    async def body(base_url: str) -> None:
        session = requests.Session()
        runner = TaskRunner(BlenderLauncher.discover(None), "CPU", 1, tmp_path / "cache", base_url, session)
        scene = {"sha256": coordinator.sha, "size": len(coordinator.blob), "url": urls.blob_path(coordinator.sha),
                 "path": "scene.blend", "assets": []}
        assign = m.Assign(task_id=TASK, attempt=ATTEMPT, job_id=JOB, frames=[1, 2, 3], scene=scene, settings={},
                          upload_url=urls.upload_template(TASK, ATTEMPT))
        try:
            await asyncio.wait_for(runner.run(assign, send), HOLD * 2)
        finally:
            await runner.close()

    with serving(coordinator) as base_url:
        asyncio.run(body(base_url))


def test_the_next_frame_renders_while_a_frame_uploads(sample_scene: Path, tmp_path: Path) -> None:
    coordinator = Coordinator(sample_scene.read_bytes())
    said: list[m.Message] = []
    run_task(coordinator, tmp_path, said)
    assert isinstance(said[-1], m.TaskDone), said
    events = coordinator.events
    # frame 2 was started while frame 1's upload was still open, and every frame arrived, in order
    assert events.index("progress 2") < events.index("put 1 ends"), events
    assert [e for e in events if e.startswith("put") and e.endswith("ends")] == ["put 1 ends", "put 2 ends",
                                                                                  "put 3 ends"], events
    assert not list((tmp_path / "cache" / "frames").glob("task*.png")), "a frame's file was left behind"


def test_a_refused_upload_fails_the_task_and_leaves_no_frame_behind(sample_scene: Path, tmp_path: Path) -> None:
    # Frame 2's upload is refused while frame 3 renders: the task fails (as before the overlap, one frame later),
    # frame 1 stays uploaded, and frame 3's file is removed, not uploaded.
    coordinator = Coordinator(sample_scene.read_bytes(), refuse=2)
    coordinator.release.set()
    said: list[m.Message] = []
    run_task(coordinator, tmp_path, said)
    failed = said[-1]
    assert isinstance(failed, m.TaskFailed) and "refused" in failed.error and "403" in failed.error, said
    assert not any(isinstance(s, m.TaskDone) for s in said)
    assert "put 1 ends" in coordinator.events and "put 2 refused" in coordinator.events, coordinator.events
    assert not any(e.startswith("put 3") for e in coordinator.events), coordinator.events
    assert not list((tmp_path / "cache" / "frames").glob("task*.png")), "a frame's file was left behind"


def test_a_failed_upload_stops_the_render_beside_it(sample_scene: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Frame 2 stands for a render of hours (it waits for an event nobody sets, then renders): frame 1's refused
    # upload must end the task now, not after that render.
    real_render = RenderProcess.render
    endless = asyncio.Event()

    async def render(self: RenderProcess, frame: int, output: str, timeout: float | None = None) -> dict:
        if frame == 2:
            await endless.wait()
        return await real_render(self, frame, output)

    monkeypatch.setattr(RenderProcess, "render", render)
    coordinator = Coordinator(sample_scene.read_bytes(), refuse=1)
    said: list[m.Message] = []
    run_task(coordinator, tmp_path, said)  # within its deadline: frame 2's render was stopped
    failed = said[-1]
    assert isinstance(failed, m.TaskFailed) and "403" in failed.error, said
    assert [s.frame for s in said if isinstance(s, m.Progress)] == [1, 2]
    assert not list((tmp_path / "cache" / "frames").glob("task*.png")), "a frame's file was left behind"


@pytest.mark.parametrize("frames", [[1, 2, 3], [1]], ids=["while the next frame renders", "at the task's end"])
def test_a_cancelled_task_leaves_its_upload_going_and_settle_waits_for_it(sample_scene: Path, tmp_path: Path,
                                                                         frames: list[int]) -> None:
    # A graceful stop cancels the task, then waits for the upload in flight before it hands the task back
    # (connection: Stop.settle), so the frame rendered before the stop is kept. Cancelled while it waited for the
    # last upload, the task cancelled that upload too before it was shielded.
    coordinator = Coordinator(sample_scene.read_bytes())
    progress_2 = asyncio.Event()

    async def send(message: m.Message) -> None:
        if isinstance(message, m.Progress) and message.frame == 2:
            progress_2.set()  # frame 1's upload is held now; frame 2 renders

    async def held() -> None:  # frame 1's upload is at the coordinator, held there
        while "put 1 begins" not in coordinator.events:
            await asyncio.sleep(0.02)  # polling interval of a deadline loop (wait_for below)

    async def body(base_url: str) -> None:
        runner = TaskRunner(BlenderLauncher.discover(None), "CPU", 1, tmp_path / "cache", base_url,
                            requests.Session())
        scene = {"sha256": coordinator.sha, "size": len(coordinator.blob), "url": urls.blob_path(coordinator.sha),
                 "path": "scene.blend", "assets": []}
        assign = m.Assign(task_id=TASK, attempt=ATTEMPT, job_id=JOB, frames=frames, scene=scene, settings={},
                          upload_url=urls.upload_template(TASK, ATTEMPT))
        try:
            work = asyncio.create_task(runner.run(assign, send))
            await asyncio.wait_for(held(), HOLD)
            if len(frames) > 1:
                await asyncio.wait_for(progress_2.wait(), HOLD)
            work.cancel()
            with pytest.raises(asyncio.CancelledError):
                await work
            assert "put 1 ends" not in coordinator.events  # still held: the cancel did not wait for it
            coordinator.release.set()
            await asyncio.wait_for(runner.settle_uploads(), HOLD)
            assert "put 1 ends" in coordinator.events, coordinator.events  # settle returned after it, not before
        finally:
            await runner.close()

    with serving(coordinator) as base_url:
        asyncio.run(body(base_url))
    assert not list((tmp_path / "cache" / "frames").glob("task*.png")), "a frame's file was left behind"
