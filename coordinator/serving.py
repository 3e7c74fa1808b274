"""``framehive-coordinator serve --server werkzeug``: Werkzeug's threaded server, with limits against floods. For
development and Windows (gunicorn runs on POSIX only); production runs gunicorn_server.py, which carries the same
defences. Here SIGTERM stops at once: requests under way are cut.

Werkzeug gives every connection a thread of its own and, left alone, waits for a request's bytes forever: a
thousand half-sent requests held a thousand threads. Here the request line and headers must all arrive within
``read_timeout`` seconds (a client dripping a byte at a time is cut off too), a body may pause at most that long
between reads, and connections over ``max_connections`` in all, or over ``max_per_address`` from one address,
are answered 503 at once, without a thread. A WebSocket upgrade leaves the read timeout behind (``ws_guard``:
the worker channel times out its own waits).
"""

from __future__ import annotations

import io
import socket
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .admission import Admission, address_of, refuse

# A request whose client sends nothing for this long is dropped (headers, or a pause in a body).
READ_TIMEOUT = 30.0
# Connections served at once (each is a thread, a worker's WebSocket included); more get 503.
MAX_CONNECTIONS = 1000
# Connections from one address at once; 0: no limit per address (behind a proxy every client has its address).
MAX_PER_ADDRESS = 200
# How long a stopping server lets requests under way finish (gunicorn; worker WebSockets are closed at once).
GRACEFUL_TIMEOUT = 30.0


@dataclass(frozen=True)
class ServerLimits:
    read_timeout: float = READ_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    max_per_address: int = MAX_PER_ADDRESS


class LimitedServer(ThreadedWSGIServer):
    """A threaded WSGI server that refuses connections over its limits instead of starting threads for them."""

    limits: ServerLimits = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admission = Admission(self.limits.max_connections, self.limits.max_per_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.admission.admit(address_of(client_address)):
            refuse(request)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.admission.release(address_of(client_address))


class _DeadlineReader(io.RawIOBase):
    """The connection's reads, each timing out after ``idle`` seconds, and never past ``deadline`` when one is set
    (a socket timeout alone restarts with every byte)."""

    def __init__(self, connection: socket.socket, idle: float) -> None:
        super().__init__()
        self.connection = connection
        self.idle = idle
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        timeout = self.idle
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
            if timeout <= 0:
                raise TimeoutError("the request's head took too long")
        self.connection.settimeout(timeout)
        return self.connection.recv_into(buffer)


class LimitedRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, reading through a :class:`_DeadlineReader`: the head of each request within
    ``timeout`` seconds in all, the body with pauses of at most ``timeout``."""

    timeout: ClassVar[float] = READ_TIMEOUT

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain reader setup() made (the connection stays open)
        self._reader = _DeadlineReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._reader.deadline = time.monotonic() + self.timeout
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers
        self._reader.deadline = None
        return parsed


def make_server(host: str, port: int, app: Any, limits: ServerLimits) -> LimitedServer:
    """A server on ``host:port`` for ``app`` with ``limits`` (port 0: any free port)."""
    handler = type("ConfiguredRequestHandler", (LimitedRequestHandler,), {"timeout": limits.read_timeout})
    server_class = type("ConfiguredServer", (LimitedServer,), {"limits": limits})
    return server_class(host, port, app, handler)

