"""A worker WebSocket opened by hand on a plain socket, for tests of what a stranger's socket can do to the
coordinator (say nothing, never read, flood): the `websockets` client would not misbehave on request."""

from __future__ import annotations

import base64
import os
import socket
import time


def upgrade(sock: socket.socket, token: str) -> None:
    """Ask for the worker channel on a connected ``sock`` and read the answer's head, byte by byte so nothing sent
    after it is read; fails unless the coordinator switched protocols."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /api/v1/worker/ws HTTP/1.1\r\nHost: coordinator\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(1)
        assert chunk, "the coordinator closed the upgrade"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 101"), answer


def closed_by_peer(sock: socket.socket, within: float = 5) -> bool:
    """Whether the coordinator ends the connection within ``within`` seconds (what it sends before, a close frame
    or an error, is read and dropped)."""
    end = time.monotonic() + within
    try:
        while (left := end - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(1 << 16):
                return True
    except TimeoutError:
        return False
    except OSError:  # reset: closed too
        return True
    return False
