"""Transport limits of the worker WebSocket (flask-sock over simple-websocket and wsproto).

- No compression: with permessage-deflate, wsproto inflates a whole frame in one call, so 300 KB on the wire
  became 300 MiB in memory before any size check. The extension is never negotiated (simple-websocket offers it
  to every client that asks, so the ask is removed from the request before the handshake).
- A maximum message size (``SOCK_SERVER_OPTIONS`` in config.py): a worker's messages are small (``MAX_MESSAGE_BYTES``);
  a bigger one closes the connection (1009) while it is still arriving.
- The connection really ends: simple-websocket reads in a thread of its own that only stops when a read
  returns, so a peer that stays silent (one that never says hello) kept it forever; :func:`end` shuts the
  socket down, which wakes that read.
- No send waits for the peer: the coordinator sends from shared threads (the dispatcher's orders, a work slot's
  welcome or the close of an agent's older connection), and simple-websocket's send blocks once the kernel's
  buffers towards a peer that does not read are full. One agent that stopped reading held the dispatcher for
  good, and nobody else got work (tests/coordinator/test_unread_sockets.py). :func:`send` hands the message to
  the kernel without waiting, or hangs up on the peer: an agent is sent a few small messages a task, so a
  buffer that cannot take the next one is a peer that does not read. (Windows has no MSG_DONTWAIT: there, on
  the development server, a send may still wait.)
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from simple_websocket import ConnectionClosed
from wsproto.events import CloseConnection, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

#: Send without waiting (0 where the platform has no such flag: Windows).
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def prepare(environ: dict[str, Any]) -> None:
    """Before the handshake: ask for no extension (no compression), and let the channel time out its own waits
    instead of the HTTP server's read timeout (a WebSocket idles between messages by design)."""
    environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        connection.settimeout(None)


def send(ws: Any, text: str) -> None:
    """Send a text message at once, whole, or hang up on the peer (it does not read what it is sent) and raise
    ConnectionClosed. Callers serialise their sends to one connection (dispatch.Connection's lock)."""
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    if not _sent_whole(ws, ws.ws.send(TextMessage(data=text))):
        _hang_up(ws)
        raise ConnectionClosed(CloseReason.POLICY_VIOLATION, "the peer does not read what it is sent")


def end(ws: Any) -> None:
    """Close the WebSocket (its close frame only if the kernel takes it at once) and shut its socket down, so
    simple-websocket's reader thread ends now."""
    if ws.connected:
        with contextlib.suppress(LocalProtocolError):  # the peer's close came first: wsproto has answered it
            _sent_whole(ws, ws.ws.send(CloseConnection(CloseReason.NORMAL_CLOSURE)))
    _hang_up(ws)


def _sent_whole(ws: Any, data: bytes) -> bool:
    try:
        return ws.sock.send(data, _DONTWAIT) == len(data)
    except OSError:  # BlockingIOError (nothing taken), or the connection is gone
        return False


def _hang_up(ws: Any) -> None:
    ws.connected = False
    with contextlib.suppress(OSError):
        ws.sock.shutdown(socket.SHUT_RDWR)
