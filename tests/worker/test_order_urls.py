"""URLs in a coordinator's orders: the agent requests only what it builds itself from its coordinator's base URL,
the ids and the sha256s; an order naming anything else (another host, ``@``, an absolute URL, ``..``, a query,
a backslash, percent-encoding) is refused with a reason, and nothing is fetched or uploaded.

A real agent with the real task runner (real Blender) against a scripted coordinator (tests/worker/
hostile_coordinator.py), and a second loopback server standing for "another host" that records whether anyone
called it: before the check, a scene URL of ``@other-host/...`` made the agent download from that host, and an
upload URL of ``@other-host/...`` made it PUT the frame there, with its worker token in both requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

import pytest
import requests
from framehive.protocol import messages as m
from framehive.worker_agent import coordinator_urls as urls
from framehive.worker_agent.blender import BlenderLauncher
from framehive.worker_agent.task_runner import TaskRunner
from framehive.worker_agent.uploads import UploadError, upload_frame

from .hostile_coordinator import DEADLINE, agent_of, another_host, hostile_coordinator

TASK, ATTEMPT, JOB = 11, 3, 5
CHECK = "a-check-handle-0123"


def _scene(sha: str, size: int, url: str | None = None) -> dict:
    return {"sha256": sha, "size": size, "url": url or urls.blob_path(sha), "path": "scene.blend", "assets": []}


def _assign(scene: dict, upload_url: str | None = None) -> m.Assign:
    return m.Assign(task_id=TASK, attempt=ATTEMPT, job_id=JOB, frames=[1], scene=scene, settings={},
                    upload_url=upload_url or urls.upload_template(TASK, ATTEMPT))


def _runner(tmp_path: Path, base_url: str) -> TaskRunner:
    session = requests.Session()
    session.headers["Authorization"] = "Bearer secret-token"
    return TaskRunner(BlenderLauncher.discover(None), "CPU", 1, tmp_path / "cache", base_url, session)


def _run_order(tmp_path: Path, blend: bytes, make_order) -> tuple[list[m.Message], list, list]:  # type: ignore[no-untyped-def]
    """Send the order ``make_order(sha, size, other_host)`` to a real agent; returns (what the agent said, the
    coordinator's HTTP requests, the other host's requests)."""
    sha = hashlib.sha256(blend).hexdigest()
    said: list[m.Message] = []

    async def scenario() -> None:
        with another_host() as (other, elsewhere):
            async def script(ws) -> None:  # type: ignore[no-untyped-def]
                await ws.recv()
                await ws.send(m.encode(m.Welcome(worker_id=7, heartbeat_interval=60, lease_timeout=120)))
                await ws.send(m.encode(make_order(sha, len(blend), other)))
                async for raw in ws:
                    said.append(m.decode(raw))

            async with hostile_coordinator(script, {sha: blend}) as coordinator:
                runner = _runner(tmp_path, coordinator.url)
                async with agent_of(coordinator.url, runner):
                    loop = asyncio.get_running_loop()
                    end = loop.time() + DEADLINE * 3
                    while not any(isinstance(s, m.TaskDone | m.TaskFailed | m.CheckDone | m.CheckFailed)
                                  for s in said):
                        assert loop.time() < end, f"no outcome; the agent said {said}"
                        await asyncio.sleep(0.02)  # polling interval of a deadline loop
            nonlocal_records.extend([coordinator.http.requests, elsewhere.requests])

    nonlocal_records: list[list] = []
    asyncio.run(scenario())
    return said, nonlocal_records[0], nonlocal_records[1]


BLOB_ATTACKS = {
    "another host through @": lambda sha, other: f"@{other}/api/v1/blobs/{sha}",
    "absolute URL": lambda sha, other: f"http://{other}/api/v1/blobs/{sha}",
    "scheme-relative URL": lambda sha, other: f"//{other}/api/v1/blobs/{sha}",
    "dot-dot": lambda sha, other: f"/api/v1/blobs/{sha}/../../admin/tokens",
    "query string": lambda sha, other: f"/api/v1/blobs/{sha}?as=admin",
    "backslash": lambda sha, other: f"/api/v1/blobs\\{sha}",
    "percent-encoding": lambda sha, other: f"/api/v1/blobs/%2e%2e/{sha}",
    "another blob": lambda sha, other: urls.blob_path("0" * 64),
}


@pytest.mark.parametrize("attack", BLOB_ATTACKS, ids=list(BLOB_ATTACKS))
def test_a_scene_url_other_than_the_agents_own_is_refused_and_nothing_fetched(
        attack: str, sample_scene: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "framehive.worker")
    said, fetched, elsewhere = _run_order(
        tmp_path, sample_scene.read_bytes(),
        lambda sha, size, other: _assign(_scene(sha, size, BLOB_ATTACKS[attack](sha, other))))
    failed = [s for s in said if isinstance(s, m.TaskFailed)]
    assert failed and "refused" in failed[0].error and "url" in failed[0].error, said
    assert elsewhere == [], "the other host was called"
    assert fetched == [], "the agent fetched something for a refused order"
    assert "refusing task 11" in caplog.text


UPLOAD_ATTACKS = {
    "another host through @": lambda other: f"@{other}/api/v1/worker/tasks/{TASK}/frames/{{frame}}?attempt={ATTEMPT}",
    "absolute URL": lambda other: f"http://{other}/api/v1/worker/tasks/{TASK}/frames/{{frame}}?attempt={ATTEMPT}",
    "another task": lambda other: urls.upload_template(TASK + 1, ATTEMPT),
    "more query": lambda other: urls.upload_template(TASK, ATTEMPT) + "&worker=1",
    "dot-dot": lambda other: f"/api/v1/worker/tasks/{TASK}/frames/../../../../blobs/{{frame}}?attempt={ATTEMPT}",
}


@pytest.mark.parametrize("attack", UPLOAD_ATTACKS, ids=list(UPLOAD_ATTACKS))
def test_an_upload_url_other_than_the_agents_own_is_refused_before_anything_is_fetched(
        attack: str, sample_scene: Path, tmp_path: Path) -> None:
    said, fetched, elsewhere = _run_order(
        tmp_path, sample_scene.read_bytes(),
        lambda sha, size, other: _assign(_scene(sha, size), UPLOAD_ATTACKS[attack](other)))
    failed = [s for s in said if isinstance(s, m.TaskFailed)]
    assert failed and "refused" in failed[0].error, said
    assert elsewhere == [], "the frame (and the worker token) went to another host"
    assert fetched == []


def test_a_check_uploading_elsewhere_is_refused(sample_scene: Path, tmp_path: Path) -> None:
    def order(sha: str, size: int, other: str) -> m.Verify:
        return m.Verify(handle=CHECK, job_id=JOB, frame=1, rect=[0, 0, 8, 8],
                        scene=_scene(sha, size), settings={},
                        upload_url=f"@{other}" + urls.check_result_path(CHECK))

    said, fetched, elsewhere = _run_order(tmp_path, sample_scene.read_bytes(), order)
    failed = [s for s in said if isinstance(s, m.CheckFailed)]
    assert failed and "refused" in failed[0].error, said
    assert elsewhere == [] and fetched == []


def test_control_an_honest_order_is_fetched_from_the_coordinator(sample_scene: Path, tmp_path: Path) -> None:
    """The same set-up with the URLs the agent builds itself: the scene is downloaded (the attacks above are
    refused by the check, not by a set-up that could not fetch anything anyway). The scripted coordinator takes
    no PUT, so the upload then fails; that failure is not what this test is about."""
    said, fetched, elsewhere = _run_order(tmp_path, sample_scene.read_bytes(),
                                          lambda sha, size, other: _assign(_scene(sha, size)))
    sha = hashlib.sha256(sample_scene.read_bytes()).hexdigest()
    assert fetched == [("GET", urls.blob_path(sha), "Bearer secret-token")]
    assert any(isinstance(s, m.Progress) for s in said), "Blender rendered the frame"
    assert elsewhere == []


HOSTILE_BODY = "<html>secret \x1b[31m" + "x" * 5000


def test_the_body_of_a_failed_download_stays_on_the_worker(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A coordinator's error page may hold anything (terminal escapes, another user's data): the agent logs it
    escaped and cut, and tells the coordinator the status code only."""
    missing = hashlib.sha256(b"not served").hexdigest()
    caplog.set_level(logging.INFO, "framehive.worker")
    said, fetched, _ = _run_order(tmp_path, b"unused", lambda sha, size, other: _assign(_scene(missing, 10)))
    failed = [s for s in said if isinstance(s, m.TaskFailed)]
    assert fetched == [("GET", urls.blob_path(missing), "Bearer secret-token")]
    assert failed and "HTTP 404" in failed[0].error, said
    assert "not found" not in failed[0].error + failed[0].log_tail
    assert "'not found'" in caplog.text, "the body is logged locally, quoted"


def test_the_body_of_a_refused_upload_stays_on_the_worker(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import http.server
    import threading

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = HOSTILE_BODY.encode()
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    frame = tmp_path / "frame.png"
    frame.write_bytes(b"\x89PNG fake")
    caplog.set_level(logging.INFO, "framehive.worker")
    try:
        with pytest.raises(UploadError) as refused:
            upload_frame(requests.Session(), f"http://127.0.0.1:{server.server_address[1]}",
                         urls.upload_template(TASK, ATTEMPT).replace("{frame}", "1"), 7, frame)
    finally:
        server.shutdown()
        server.server_close()
    assert str(refused.value) == "frame upload refused: HTTP 500"
    assert "secret" in caplog.text and "\x1b" not in caplog.text, "logged locally, escaped"
    assert len(caplog.text) < 2000, "and cut"
