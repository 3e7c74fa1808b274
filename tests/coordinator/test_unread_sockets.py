"""Worker connections that never read what the coordinator sends them, or send faster than it is served, against
a real coordinator (gunicorn).

A send to a peer that does not read blocks once the kernel's buffers between them are full. The coordinator
sends to agents from shared threads: the dispatcher's (orders), a work slot's (a welcome, the close of an agent's
older connection). A stranger that fills its connection's buffers and stops reading must not stop those threads,
or nobody else gets work. The attacker here is a raw socket with a small receive buffer: it signs on, then sends
malformed messages (each answered with an error) as fast as it can and never reads an answer.

The connection's reader (simple-websocket's thread) reads whatever arrives into a list its handler takes messages
from: a flood that outpaces the handler grew the coordinator's memory without bound (about 1 MB a second from one
connection).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from framehive.addon.client import Client
from framehive.protocol import PROTOCOL_VERSION
from framehive.protocol import messages as m

from tests.farm import Farm, wait_for
from tests.protocol_worker import ProtocolWorker
from tests.raw_websocket import closed_by_peer, upgrade

FLOOD_SECONDS = 60  # the attacker stops sending after this, whatever happens


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One masked client frame (RFC 6455: a client masks every frame)."""
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


#: A malformed message whose answer quotes it (an unknown type): 60 KB answered with as much.
ECHOED = b'{"type": "' + b"a" * 60_000 + b'"}'


@contextmanager
def deaf_agent(farm: Farm, token: str, name: str, message: bytes = b"x", burst: int = 2000,
               pause: float = 0.0) -> Iterator[socket.socket]:
    """A signed-on agent that never reads again after the upgrade's answer, sending ``burst`` malformed
    ``message``s at a time (then waiting ``pause`` seconds: its own pace) from a thread of its own until the
    coordinator stops reading it (or hangs up)."""
    parts = urlsplit(farm.url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    sock.connect((parts.hostname, parts.port))
    upgrade(sock, token)  # nothing after the answer's head is read, ever
    hello = m.Hello(protocol=PROTOCOL_VERSION, name=name, agent_version="test", blender_version="5.0.1",
                    device="CPU", devices=[], threads=1, roles=["render"])
    sock.sendall(frame(m.encode(hello).encode()))
    stop = threading.Event()
    data = frame(message) * burst

    def flood() -> None:
        sock.settimeout(1)
        while not stop.wait(pause):
            try:
                sock.sendall(data)
            except TimeoutError:
                continue  # the coordinator is not reading: try again until told to stop
            except OSError:
                return  # hung up on

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    timer = threading.Timer(FLOOD_SECONDS, stop.set)
    timer.start()
    try:
        yield sock
    finally:
        stop.set()
        timer.cancel()
        flooder.join(5)
        sock.close()


def server_send_queue(farm: Farm, client: socket.socket) -> int | None:
    """Bytes the coordinator has sent to ``client`` that are not yet acknowledged (its send queue, /proc/net/tcp);
    None once the connection is gone."""
    server_port = urlsplit(farm.url).port
    wanted = (f"{server_port:04X}", f"{client.getsockname()[1]:04X}")
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            if (fields[1].split(":")[1], fields[2].split(":")[1]) == wanted:
                return int(fields[4].split(":")[0], 16)
    return None


class Backlog:
    """Samples the coordinator's send queue to one client until its buffers are full (the queue is not empty and
    did not grow for a second: the kernel takes no more, and a send waits) or the coordinator hung up on it (the
    connection is gone after a queue was seen)."""

    def __init__(self, farm: Farm, client: socket.socket) -> None:
        self.farm, self.client, self.seen = farm, client, 0

    def settled(self) -> bool:
        before = server_send_queue(self.farm, self.client)
        threading.Event().wait(1.0)  # a measurement window, not synchronisation: the queue is sampled twice
        after = server_send_queue(self.farm, self.client)
        if before is None or after is None:
            return self.seen > 0  # gone: hung up on after answers piled up
        self.seen = max(self.seen, before, after)
        return self.seen > 0 and after == before


def test_an_agent_that_never_reads_does_not_stop_the_dispatcher(farm: Farm, sample_scene):  # type: ignore[no-untyped-def]
    token = farm.token("worker", "deaf")
    with deaf_agent(farm, token, "deaf", ECHOED, burst=4, pause=0.05) as deaf:
        # Its buffers are full: the coordinator has answers for it that it cannot send (or it hung up on it).
        wait_for(Backlog(farm, deaf).settled, 40, "the coordinator's answers to the deaf agent to fill its buffers")
        honest = ProtocolWorker(farm.url, farm.token("worker", "owner", trusted=True), "honest")
        user = Client(farm.url, farm.token("user", "artist"))
        job = user.submit(sample_scene, frames="1-2", chunk=1)
        order = honest.receive(timeout=30)  # the dispatcher leased to the deaf agent first (it signed on first)
        assert isinstance(order, m.Assign) and order.job_id == job["id"], order
        # And it did not wait on the deaf agent either: the first task came to the honest one (it used to go to the
        # deaf agent, whose order waited ws_guard.SEND_WAIT before the task was given back).
        assert order.frames == [1], order
        honest.close()


def test_an_older_connection_that_never_reads_does_not_stop_the_agents_new_one(farm: Farm):
    """The agent signs on again under the same name while its older connection's buffers are full: the coordinator
    closes the older one (it used to wait there for good, holding a work slot, and the new connection was welcomed
    but never served)."""
    token = farm.token("worker", "owner", trusted=True)
    with deaf_agent(farm, token, "twin", ECHOED, burst=4, pause=0.05) as deaf:
        wait_for(Backlog(farm, deaf).settled, 40, "the coordinator's answers to the deaf agent to fill its buffers")
        again = ProtocolWorker(farm.url, token, "twin")  # waits for its welcome
        again.ws.send("not json")  # its connection's thread answers: it is not stuck closing the older one
        answer = again.receive(timeout=30)
        assert isinstance(answer, m.Error) and answer.code == "bad_message", answer
        again.close()


def test_a_flood_faster_than_the_coordinator_serves_it_is_hung_up_on(farm: Farm):
    """The flooder reads its answers (so its buffers never fill) and sends malformed messages faster than its
    connection's thread answers them: once its unanswered backlog passes the bound, the coordinator hangs up."""
    token = farm.token("worker", "flooder")
    with deaf_agent(farm, token, "flooder") as sock:
        wait_for(lambda: closed_by_peer(sock, 1), 40, "the coordinator to hang up on the flood")
    wait_for(lambda: "sends faster than it is served" in farm.logs(), 10, "the coordinator to log why")

