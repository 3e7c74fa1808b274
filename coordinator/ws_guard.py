"""Transport limits of the worker WebSocket (flask-sock over simple-websocket and wsproto).

- No compression: with permessage-deflate, wsproto inflates a whole frame in one call, so 300 KB on the wire
  became 300 MiB in memory before any size check. The extension is never negotiated (simple-websocket offers it
  to every client that asks, so the ask is removed from the request before the handshake).
- A maximum message size (``SOCK_SERVER_OPTIONS`` in config.py): a worker's messages are small (``MAX_MESSAGE_BYTES``);
  a bigger one closes the connection (1009) while it is still arriving.
- The connection really ends: simple-websocket reads in a thread of its own that only stops when a read
  returns, so a peer that stays silent (one that never says hello) kept it forever; :func:`end` shuts the
  socket down, which wakes that read.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from simple_websocket import ConnectionClosed


def prepare(environ: dict[str, Any]) -> None:
    """Before the handshake: ask for no extension (no compression), and let the channel time out its own waits
    instead of the HTTP server's read timeout (a WebSocket idles between messages by design)."""
    environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        connection.settimeout(None)


def end(ws: Any) -> None:
    """Close the WebSocket and shut its socket down, so simple-websocket's reader thread ends now."""
    with contextlib.suppress(ConnectionClosed, OSError, RuntimeError):
        ws.close()
    with contextlib.suppress(OSError):
        ws.sock.shutdown(socket.SHUT_RDWR)
