"""One simulated worker agent of benchmarks/fleet.py: the real protocol over a real WebSocket, instant renders.

It does what ``worker_agent`` does on the wire, in the same order: hello, then for each order the scene's files
downloaded once per job (GET, kept-alive connection), per frame a ``progress`` message and a PUT of the frame,
then ``task_done``; for a check a PUT of the region and ``check_done``; a ``heartbeat`` every interval the
welcome gives. It renders nothing: every frame is a pre-encoded PNG of the job's size (distinct noise per frame
number, so no frame looks like a copy of another), and a check's answer is the exact crop of that frame, so
honest checks pass. It never trusts that the coordinator's orders are sane more than a benchmark needs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets
from framehive.coordinator import frame_analysis as fa
from framehive.protocol import PROTOCOL_VERSION
from framehive.protocol import messages as m

from .keepalive_http import HttpError, KeepAliveClient

WS_PATH = "/api/v1/worker/ws"
HELLO_TIMEOUT = 60.0


@dataclass
class FrameImages:
    """Every frame of the job as pixels and as PNG bytes with their sha256, encoded before the run starts."""

    pixels: dict[int, np.ndarray]
    png: dict[int, bytes]
    sha256: dict[int, str]

    @classmethod
    def noise(cls, frames: list[int], width: int, height: int, seed: int = 0) -> FrameImages:
        pixels = {f: np.random.default_rng((seed, f)).integers(0, 256, (height, width, 3), dtype=np.uint8)
                  for f in frames}
        png = {f: fa.encode_png(image) for f, image in pixels.items()}
        return cls(pixels, png, {f: hashlib.sha256(data).hexdigest() for f, data in png.items()})

    def crop(self, frame: int, rect: list[int]) -> bytes:
        """The PNG of ``rect`` of ``frame``: exactly what an honest verifier of the same device class renders."""
        return fa.encode_png(fa.crop(self.pixels[frame], fa.Region.from_list(rect)))


@dataclass
class FleetState:
    """What the agents share with the benchmark: the frames, the submit time, and what they measured."""

    images: FrameImages
    submitted_at: float | None = None  # time.monotonic() when the job was submitted
    submit_seconds: float = 0.0  # how long the coordinator took to answer the submit
    latencies: list[float] = field(default_factory=list)  # idle (or submit) to the next order, seconds
    tasks_done: int = 0
    checks_done: int = 0
    frames_uploaded: int = 0
    lease_lost: int = 0
    errors: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # hellos answered with an error (agent limits)


class SimulatedAgent:
    def __init__(self, name: str, base_url: str, token: str, state: FleetState) -> None:
        self.name = name
        self.base_url = base_url
        self.token = token
        self.state = state
        self.worker_id = 0
        self.http: KeepAliveClient | None = None
        self.ws: websockets.ClientConnection | None = None
        self.heartbeat_interval = 5.0
        self.held: m.Assign | m.Verify | None = None
        self.idle_since = time.monotonic()
        self.scenes: set[str] = set()  # sha256 of the scene files already downloaded

    async def connect(self) -> bool:
        """Say hello; True once welcomed (False: refused, the reason is in ``state.refusals``)."""
        self.ws = await websockets.connect(
            self.base_url.replace("http://", "ws://", 1) + WS_PATH, max_size=m.MAX_ORDER_BYTES,
            additional_headers={"Authorization": f"Bearer {self.token}"}, open_timeout=HELLO_TIMEOUT)
        await self.ws.send(m.encode(m.Hello(
            protocol=PROTOCOL_VERSION, name=self.name, agent_version="fleet-benchmark", blender_version="5.0.1",
            device="CPU", devices=[{"backend": "CPU", "name": "simulated"}], threads=1, roles=["render", "verify"])))
        welcome = m.decode(await asyncio.wait_for(self.ws.recv(), HELLO_TIMEOUT), m.MAX_ORDER_BYTES)
        if not isinstance(welcome, m.Welcome):
            self.state.refusals.append(f"{self.name}: {getattr(welcome, 'code', welcome.TYPE)}")
            await self.ws.close()
            return False
        self.worker_id = welcome.worker_id
        self.heartbeat_interval = welcome.heartbeat_interval
        self.http = KeepAliveClient(self.base_url, {"Authorization": f"Bearer {self.token}",
                                                    "X-Framehive-Worker": str(self.worker_id)})
        self.idle_since = time.monotonic()
        return True

    async def serve(self) -> None:
        """Answer orders until the connection closes or this task is cancelled."""
        assert self.ws is not None
        beat = asyncio.create_task(self._heartbeat())
        try:
            async for text in self.ws:
                await self._handle(m.decode(text, m.MAX_ORDER_BYTES))
        except websockets.ConnectionClosed:
            pass
        except Exception as exc:  # a bug here, or an answer it cannot read: reported, never silent
            self.state.errors.append(f"{self.name}: crashed: {type(exc).__name__}: {exc}")
        finally:
            beat.cancel()
            with contextlib.suppress(Exception):
                await self.close()

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.ws is not None:
            await self.ws.close()

    async def _handle(self, message: m.Message) -> None:
        if isinstance(message, m.Assign | m.Verify):
            self._record_latency()
            self.held = message
            try:
                await (self._render(message) if isinstance(message, m.Assign) else self._check(message))
            finally:
                self.held = None
                self.idle_since = time.monotonic()
        elif isinstance(message, m.Error):
            self.state.errors.append(f"{self.name}: coordinator error {message.code}: {message.message}")

    def _record_latency(self) -> None:
        submitted = self.state.submitted_at
        if submitted is not None:
            self.state.latencies.append(time.monotonic() - max(self.idle_since, submitted))

    async def _render(self, order: m.Assign) -> None:
        failure = await self._fetch_scene(order.scene)
        for frame in order.frames:
            if failure:
                break
            await self._send(m.Progress(task_id=order.task_id, attempt=order.attempt, frame=frame))
            url = order.upload_url.replace("{frame}", str(frame))
            failure = await self._put(url, self.state.images.png[frame], self.state.images.sha256[frame])
            if failure is None:
                self.state.frames_uploaded += 1
        if failure == "lease_lost":
            return  # as the real agent: a lost lease is dropped without a word
        if failure:
            await self._send(m.TaskFailed(task_id=order.task_id, attempt=order.attempt, error=failure))
            return
        await self._send(m.TaskDone(task_id=order.task_id, attempt=order.attempt))
        self.state.tasks_done += 1

    async def _check(self, order: m.Verify) -> None:
        failure = await self._fetch_scene(order.scene)
        if failure is None:  # the job-seed render alone: within one device class the strict rule decides, and a
            # yardstick render (a second seed, stacked below) is optional; every simulated agent is of one class
            data = self.state.images.crop(order.frame, order.rect)
            failure = await self._put(order.upload_url, data, hashlib.sha256(data).hexdigest())
        if failure == "lease_lost":
            return
        if failure:
            await self._send(m.CheckFailed(**check_reference(order), error=failure))
            return
        await self._send(m.CheckDone(**check_reference(order)))
        self.state.checks_done += 1

    async def _fetch_scene(self, scene: dict) -> str | None:
        """Download the scene's files once per agent, as the real agent's cache does; None, or what failed."""
        files = [scene, *scene.get("assets", [])]
        for entry in files:
            if entry["sha256"] in self.scenes:
                continue
            answer = await self._request("GET", entry["url"])
            if isinstance(answer, str):
                return answer
            if answer.status != 200 or hashlib.sha256(answer.body).hexdigest() != entry["sha256"]:
                return self._failure(f"scene download {entry['url']}: {answer.status}")
            self.scenes.add(entry["sha256"])
        return None

    async def _put(self, url: str, data: bytes, sha256: str) -> str | None:
        answer = await self._request("PUT", url, data, {"X-Content-SHA256": sha256, "Content-Type": "image/png"})
        if isinstance(answer, str):
            return answer
        if answer.status == 409:
            self.state.lease_lost += 1
            return "lease_lost"
        if answer.status not in (200, 201):
            return self._failure(f"PUT {url.split('?')[0]}: {answer.status} {answer.body[:200]!r}")
        return None

    async def _request(self, method: str, url: str, body: bytes = b"",
                       headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        assert self.http is not None
        try:
            return await self.http.request(method, url, body, headers)
        except (OSError, HttpError, asyncio.IncompleteReadError, TimeoutError) as exc:
            return self._failure(f"{method} {url.split('?')[0]}: {type(exc).__name__}: {exc}")

    def _failure(self, what: str) -> str:
        self.state.errors.append(f"{self.name}: {what}")
        return what

    async def _send(self, message: m.Message) -> None:
        assert self.ws is not None
        await self.ws.send(m.encode(message))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)  # a timer: heartbeats are periodic by design
            held = self.held
            with contextlib.suppress(websockets.ConnectionClosed):
                check = check_reference(held) if isinstance(held, m.Verify) else {}
                check.pop("attempt", None)
                await self._send(m.Heartbeat(task_id=held.task_id if isinstance(held, m.Assign) else None, **check))


def check_reference(order: m.Verify) -> dict[str, Any]:
    """How messages name the check of ``order``: its lease's ``handle`` (the protocol since check handles), or
    ``check_id`` and ``attempt`` (before them); the benchmark runs against either coordinator."""
    if hasattr(order, "handle"):
        return {"handle": order.handle}
    return {"check_id": order.check_id, "attempt": order.attempt}  # type: ignore[attr-defined]
