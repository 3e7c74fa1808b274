"""A worker that speaks the real protocol from a test, without Blender: for channel and lease tests.

It is a real WebSocket client (the `websockets` library) against a real coordinator; it just decides by
itself what to answer, so tests can make it go silent, report late, or upload odd frames.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time

import requests
from framehive.protocol import PROTOCOL_VERSION
from framehive.protocol import messages as m
from PIL import Image
from websockets.sync.client import ClientConnection, connect


def png(width: int = 64, height: int = 36, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


class ProtocolWorker:
    def __init__(self, base_url: str, token: str, name: str, blender_version: str = "5.0.1",
                 device: str = "CPU", roles: tuple[str, ...] = ("render",)) -> None:
        """``blender_version`` and ``device`` are what the hello says: a test stands in for another Blender, or a
        GPU, by saying so (the coordinator has only the agent's word for them anyway). ``roles``: render, verify."""
        self.base_url = base_url
        self.token = token
        self._exit = contextlib.ExitStack()
        self.ws: ClientConnection = self._exit.enter_context(connect(
            base_url.replace("http://", "ws://") + "/api/v1/worker/ws",
            additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10))
        self.ws.send(m.encode(m.Hello(protocol=PROTOCOL_VERSION, name=name, agent_version="test",
                                      blender_version=blender_version, device=device,
                                      devices=[{"backend": device, "name": "test"}], threads=1,
                                      roles=list(roles))))
        welcome = self.receive()
        assert isinstance(welcome, m.Welcome), welcome
        self.worker_id = welcome.worker_id

    def receive(self, timeout: float = 30) -> m.Message:
        return m.decode(self.ws.recv(timeout=timeout))

    def receive_alive(self, timeout: float = 30, interval: float = 0.3) -> m.Message:
        """Wait for a message while heartbeating, like a live agent (a silent one gets dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            self.send(m.Heartbeat())
            try:
                return m.decode(self.ws.recv(timeout=interval))
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def send(self, message: m.Message) -> None:
        self.ws.send(m.encode(message))

    def upload(self, assign: m.Assign, frame: int, data: bytes | None = None, sha: str | None = None,
               attempt: int | None = None) -> requests.Response:
        data = png() if data is None else data
        url = assign.upload_url.replace("{frame}", str(frame))
        if attempt is not None:
            url = url.split("?")[0] + f"?attempt={attempt}"
        return requests.put(self.base_url + url, data=data, timeout=30, headers={
            "Authorization": f"Bearer {self.token}", "X-Framehive-Worker": str(self.worker_id),
            "X-Content-SHA256": sha or hashlib.sha256(data).hexdigest()})

    def close(self) -> None:
        self._exit.close()


def error_of(response: requests.Response) -> str:
    return json.loads(response.text)["error"]["code"]
