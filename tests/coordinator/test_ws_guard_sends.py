"""ws_guard's sends over a real socket pair with small buffers: a message larger than the kernel takes at once
still goes whole to a peer that reads (slowly), and a peer that does not read is given up on after the wait."""

from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace

from framehive.coordinator import ws_guard

MESSAGE = b"m" * 2_000_000  # far more than the pair's buffers hold


def small_pair() -> tuple[socket.socket, socket.socket]:
    ours, peer = socket.socketpair()
    for sock in (ours, peer):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return ours, peer


def test_a_message_larger_than_the_buffers_goes_whole_to_a_peer_that_reads():
    ours, peer = small_pair()
    received = bytearray()

    def read() -> None:
        while len(received) < len(MESSAGE):
            chunk = peer.recv(8192)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert ws_guard._sent_whole(SimpleNamespace(sock=ours), MESSAGE, 30.0)
        reader.join(30)
        assert bytes(received) == MESSAGE
    finally:
        ours.close()
        peer.close()


def test_a_peer_that_does_not_read_is_given_up_on_after_the_wait():
    ours, peer = small_pair()
    try:
        started = time.monotonic()
        assert not ws_guard._sent_whole(SimpleNamespace(sock=ours), MESSAGE, 0.5)
        assert time.monotonic() - started >= 0.5  # it waited for room, then gave up (it used to wait for ever)
    finally:
        ours.close()
        peer.close()


def test_a_closed_peer_is_not_waited_for():
    ours, peer = small_pair()
    peer.close()
    try:
        assert not ws_guard._sent_whole(SimpleNamespace(sock=ours), MESSAGE, 30.0)
    finally:
        ours.close()


def test_unsent_bytes_are_seen_once_the_peer_stops_reading():
    """What the dispatcher looks at before it gives an agent work (Linux: SIOCOUTQNSD on a TCP socket)."""
    server = socket.create_server(("127.0.0.1", 0))
    peer = socket.socket()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer.connect(server.getsockname())
    ours, _ = server.accept()
    try:
        assert ws_guard.unsent(ours) == 0
        guarded = SimpleNamespace(sock=ours)
        assert not all(ws_guard._sent_whole(guarded, MESSAGE, 0.0) for _ in range(100))  # the peer reads nothing
        assert ws_guard.unsent(ours) > 0
        ours.close()
        assert ws_guard.unsent(ours) == 0  # a closed socket says nothing
    finally:
        for sock in (ours, peer, server):
            sock.close()
