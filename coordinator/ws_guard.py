"""Transport limits of the worker WebSocket (flask-sock over simple-websocket and wsproto).

- No compression: with permessage-deflate, wsproto inflates a whole frame in one call, so 300 KB on the wire
  became 300 MiB in memory before any size check. The extension is never negotiated (simple-websocket offers it
  to every client that asks, so the ask is removed from the request before the handshake).
- A maximum message size (``SOCK_SERVER_OPTIONS`` in config.py): a worker's messages are small (``MAX_MESSAGE_BYTES``);
  a bigger one closes the connection (1009) while it is still arriving.
- The connection really ends: simple-websocket reads in a thread of its own that only stops when a read
  returns, so a peer that stays silent (one that never says hello) kept it forever; :func:`end` shuts the
  socket down, which wakes that read.
- No send waits long for the peer: the coordinator sends from shared threads (the dispatcher's orders, a work
  slot's welcome or the close of an agent's older connection), and simple-websocket's send blocks for good once the
  kernel's buffers towards a peer that does not read are full. One agent that stopped reading held the dispatcher
  for good, and nobody else got work (tests/coordinator/test_unread_sockets.py). :func:`send` gives a message
  :data:`SEND_WAIT` seconds to be taken whole by the kernel, or hangs up on the peer: an agent is sent a few small
  messages a task (an order with a long asset list is the largest), which an agent that reads takes at once. (On
  Windows, without MSG_DONTWAIT, on the development server, a send may still wait.)
- A bounded backlog: simple-websocket's reader thread reads whatever arrives into a list the connection's handler
  takes messages from, so a peer sending faster than its messages are served grew the coordinator's memory without
  bound (about 1 MB a second from one connection sending malformed messages). :func:`backlog` is what waits there;
  the channel hangs up on a peer whose backlog passes :data:`MAX_BACKLOG` messages.
"""

from __future__ import annotations

import array
import contextlib
import select
import socket
import sys
import time
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from simple_websocket import ConnectionClosed
from wsproto.events import CloseConnection, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

#: Messages received and not yet served a connection may have before the channel hangs up on its peer: an agent
#: sends a handful a task and one a heartbeat interval, so even a handler that waited seconds for a work slot has a
#: few in hand. At the largest message (protocol.messages.MAX_MESSAGE_BYTES) this bounds a connection's backlog to
#: 8 MiB.
MAX_BACKLOG = 32

#: Seconds a message may take to go whole to the kernel before the channel hangs up on its peer (a shared thread
#: waits at most this long for one peer).
SEND_WAIT = 5.0

#: Linux's ioctl for the bytes of a TCP socket's send queue not yet sent (linux/sockios.h).
_SIOCOUTQNSD = 0x894B if sys.platform.startswith("linux") else None

#: Send without waiting (0 where the platform has no such flag: Windows).
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def prepare(environ: dict[str, Any]) -> None:
    """Before the handshake: ask for no extension (no compression), and let the channel time out its own waits
    instead of the HTTP server's read timeout (a WebSocket idles between messages by design)."""
    environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        connection.settimeout(None)


class Guarded:
    """A worker's WebSocket as the dispatcher's Connection holds it: its sends never wait long (:func:`send`)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    def send(self, text: str) -> None:
        send(self.ws, text)

    def end(self) -> None:
        end(self.ws)

    def backed_up(self) -> bool:
        """Bytes sent earlier still wait to go to the peer (its window is shut: it does not read). False where the
        platform does not say (only Linux does)."""
        return unsent(self.ws.sock) > 0


def unsent(sock: socket.socket) -> int:
    """Bytes in the kernel's send queue of ``sock`` not sent to the peer yet (Linux's SIOCOUTQNSD; 0 elsewhere, or
    once the socket is closed)."""
    if _SIOCOUTQNSD is None:
        return 0
    count = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), _SIOCOUTQNSD, count, True)
    except (OSError, ValueError):
        return 0
    return count[0]


def backlog(ws: Any) -> int:
    """Messages the reader thread has received on ``ws`` that its handler has not taken yet."""
    return len(ws.input_buffer)


def send(ws: Any, text: str) -> None:
    """Send a text message within :data:`SEND_WAIT` seconds, or hang up on the peer (it does not read what it is
    sent) and raise ConnectionClosed. Callers serialise their sends to one connection (dispatch.Connection's
    lock)."""
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    if not _sent_whole(ws, ws.ws.send(TextMessage(data=text)), SEND_WAIT):
        _hang_up(ws)
        raise ConnectionClosed(CloseReason.POLICY_VIOLATION, "the peer does not read what it is sent")


def end(ws: Any) -> None:
    """Close the WebSocket (its close frame only if the kernel takes it at once) and shut its socket down, so
    simple-websocket's reader thread ends now."""
    if ws.connected:
        with contextlib.suppress(LocalProtocolError):  # the peer's close came first: wsproto has answered it
            _sent_whole(ws, ws.ws.send(CloseConnection(CloseReason.NORMAL_CLOSURE)), 0.0)
    _hang_up(ws)


def _sent_whole(ws: Any, data: bytes, wait: float) -> bool:
    """Whether all of ``data`` went to the kernel within ``wait`` seconds (False: the connection is gone, or the
    peer did not read; part of it may have gone)."""
    rest, deadline, writable = memoryview(data), time.monotonic() + wait, None
    while rest:
        try:
            rest = rest[ws.sock.send(rest, _DONTWAIT):]
            continue
        except BlockingIOError:  # the kernel's buffer towards the peer is full
            pass
        except OSError:
            return False
        left = deadline - time.monotonic()
        if left <= 0 or not hasattr(select, "poll"):
            return False
        if writable is None:
            writable = select.poll()  # poll, not select: a coordinator's descriptors go past select's 1024
            writable.register(ws.sock, select.POLLOUT)
        writable.poll(left * 1000)
    return True


def _hang_up(ws: Any) -> None:
    ws.connected = False
    with contextlib.suppress(OSError):
        ws.sock.shutdown(socket.SHUT_RDWR)
