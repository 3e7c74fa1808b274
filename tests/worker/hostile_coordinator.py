"""A coordinator under a test's control, for the agent's side of the protocol: a real ``websockets`` server on a
loopback port that runs a script (what to send, in which order) and serves blobs over plain HTTP GET on the same
port, recording every request; and a second loopback HTTP server, "another host", that records whoever calls it.

Real sockets, real agent: what is scripted is only what the coordinator says, so a test can send what a real
coordinator never would (hostile URLs, orders while paused) and see what the agent does with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import websockets
from framehive.protocol import messages as m
from framehive.worker_agent.connection import Agent, Identity
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

DEADLINE = 20.0
Script = Callable[[websockets.ServerConnection], Awaitable[None]]


@dataclass
class HttpRecord:
    """Requests one server got: (method, path, Authorization header)."""

    requests: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class HostileCoordinator:
    url: str
    blobs: dict[str, bytes]  # sha256 -> bytes served at /api/v1/blobs/<sha256>
    http: HttpRecord


@contextlib.asynccontextmanager
async def hostile_coordinator(script: Script, blobs: dict[str, bytes] | None = None
                              ) -> AsyncIterator[HostileCoordinator]:
    """Serve ``script`` to each agent that connects, and ``blobs`` to plain HTTP GETs."""
    record = HttpRecord()
    served = dict(blobs or {})

    def process_request(connection: websockets.ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        record.requests.append(("GET", request.path, request.headers.get("Authorization", "")))
        body = served.get(request.path.removeprefix("/api/v1/blobs/"))
        if body is None:
            return Response(404, "Not Found", Headers({"Content-Length": "9"}), b"not found")
        return Response(200, "OK", Headers({"Content-Length": str(len(body))}), body)

    async with websockets.serve(script, "127.0.0.1", 0, process_request=process_request,
                                max_size=m.MAX_ORDER_BYTES) as server:
        port = server.sockets[0].getsockname()[1]
        yield HostileCoordinator(f"http://127.0.0.1:{port}", served, record)


@contextlib.contextmanager
def another_host() -> Iterator[tuple[str, HttpRecord]]:
    """A loopback HTTP server that answers 200 to anything and records it: ``(host:port, record)``."""
    record = HttpRecord()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            record.requests.append((self.command, self.path, self.headers.get("Authorization", "")))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = b'{"accepted": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = _any

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", record
    finally:
        server.shutdown()
        server.server_close()


def identity(name: str = "w") -> Identity:
    return Identity(name=name, blender_version="5.0.1", device="CPU", devices=[], threads=1, roles=["render"])


@contextlib.asynccontextmanager
async def agent_of(url: str, runner: object, **options: object) -> AsyncIterator[Agent]:
    """An agent connected to ``url`` with ``runner``; stopped (gracefully) when the block ends."""
    agent = Agent(url, "secret-token", identity(), runner, **options)  # type: ignore[arg-type]
    running = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        agent.stop()
        await asyncio.wait_for(running, DEADLINE)


async def until(predicate: Callable[[], object], what: str, deadline: float = DEADLINE) -> None:
    """Poll ``predicate`` on the event loop until it holds; fail naming ``what``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)  # polling interval of a deadline loop, not synchronisation
