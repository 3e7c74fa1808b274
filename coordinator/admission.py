"""Connections admitted at once, in all and per client address: over either cap a connection is answered 503
``busy`` at once, before any thread is given to it (a flood then costs a refused socket, not a thread).

Shared by both servers ``framehive-coordinator serve`` runs (serving.py, gunicorn_server.py) and, behind a proxy,
by the per-address cap on forwarded addresses (forwarded.py).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter

BUSY_BODY = b'{"error":{"code":"busy","message":"the coordinator has too many connections; retry in a moment"}}'
BUSY_HEADERS = [("Content-Type", "application/json"), ("Retry-After", "5"), ("Connection", "close"),
                ("Content-Length", str(len(BUSY_BODY)))]
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\n" + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode())
                                                          for k, v in BUSY_HEADERS) + b"\r\n" + BUSY_BODY)


class Admission:
    """Counts open connections by address; ``max_total`` 0 or ``max_per_address`` 0: no such cap. Thread-safe."""

    def __init__(self, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()
        self._total = 0

    def admit(self, address: str) -> bool:
        """Count one more connection from ``address``, unless that would cross a cap (then False)."""
        with self._lock:
            if self.max_total and self._total >= self.max_total:
                return False
            if self.max_per_address and self._open[address] >= self.max_per_address:
                return False
            self._open[address] += 1
            self._total += 1
            return True

    def release(self, address: str) -> None:
        with self._lock:
            self._open[address] -= 1
            self._total -= 1
            if self._open[address] <= 0:
                del self._open[address]


def address_of(client_address: object) -> str:
    return str(client_address[0]) if isinstance(client_address, tuple) else str(client_address)


def refuse(connection: socket.socket) -> None:
    """Answer 503 busy without waiting on the client: the answer fits a fresh socket's send buffer, and a client
    that does not read it loses it (the caller closes the socket). What the client already sent is read and
    dropped first: closing over unread bytes sends a reset, which could discard the answer on its way."""
    with contextlib.suppress(OSError):
        connection.setblocking(False)
        connection.send(BUSY)
        connection.shutdown(socket.SHUT_WR)
        for _ in range(16):  # at most 64 KiB: the head of a request, not a body
            if not connection.recv(4096):
                break
