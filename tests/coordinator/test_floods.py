"""Floods against a real coordinator: connections that hold a thread and send nothing (or too little) are
dropped within their timeouts, the thread count of the process that serves (/proc) comes back, and everyone else
is served meanwhile; on both servers of ``serve``."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.farm import Farm, wait_for
from tests.proc_stats import threads
from tests.raw_websocket import closed_by_peer, upgrade

HALF_SENT = 150
SILENT_WEBSOCKETS = 40
# The coordinator's read timeout in these tests; the hello timeout is worker_channel.HELLO_TIMEOUT (10 s).
READ_TIMEOUT = 2
# Threads the coordinator may still run above its idle count once the flood is over (a request in flight, the
# thread that serves the test's own polling).
SLACK = 4


@pytest.fixture(params=["gunicorn", "werkzeug"])
def farm(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Farm]:
    """A real coordinator on each server ``serve`` offers (gunicorn, the default; Werkzeug, for development and
    Windows): both carry the same defences."""
    farm = Farm(tmp_path / "farm")
    marker = request.node.get_closest_marker("coordinator_args")
    farm.coordinator_args = [*(marker.args if marker else ()), "--server", request.param]
    farm.start_coordinator()
    try:
        yield farm
    finally:
        farm.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(farm.logs())


def address(farm: Farm) -> tuple[str, int]:
    parts = urlsplit(farm.url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


@contextmanager
def flood(farm: Farm) -> Iterator[Flood]:
    sockets = Flood(address(farm))
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


class Flood(list[socket.socket]):
    """Connections to the coordinator opened by a test; ``open()`` makes one more."""

    def __init__(self, to: tuple[str, int]) -> None:
        super().__init__()
        self.to = to

    def open(self) -> socket.socket:
        sock = socket.create_connection(self.to, timeout=10)
        self.append(sock)
        return sock


def half_sent(sockets: Flood) -> None:
    """A request line and one header, never the blank line that ends the headers."""
    sockets.open().sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: coordinator\r\n")


def silent_websocket(sockets: Flood, token: str) -> None:
    """A worker WebSocket, upgraded and then never a word (no hello)."""
    upgrade(sockets.open(), token)


@pytest.mark.coordinator_args("--request-timeout", str(READ_TIMEOUT))
def test_half_sent_requests_and_silent_websockets_let_go_of_their_threads(farm: Farm):
    pid = farm.serving_pid()
    token = farm.token("worker", "owner")
    health = f"{farm.url}/api/v1/health"
    assert requests.get(health, timeout=10).status_code == 200
    idle = threads(pid)
    with flood(farm) as sockets:
        for _ in range(HALF_SENT):
            half_sent(sockets)
        for _ in range(SILENT_WEBSOCKETS):
            silent_websocket(sockets, token)
        held = wait_for(lambda: threads(pid) >= idle + HALF_SENT + SILENT_WEBSOCKETS and threads(pid), 30,
                        "the flood to hold its threads")
        assert requests.get(health, timeout=10).status_code == 200  # served meanwhile
        wait_for(lambda: threads(pid) <= idle + SLACK, 60,
                 f"the coordinator's threads ({held} during the flood) to come back to {idle}")
        assert all(closed_by_peer(sock) for sock in sockets)
    assert requests.get(health, timeout=10).status_code == 200


@pytest.mark.coordinator_args("--request-timeout", str(READ_TIMEOUT))
def test_headers_dripped_a_byte_at_a_time_are_cut_off_at_the_timeout(farm: Farm):
    """Each byte comes before a read times out, so only a deadline for the whole request head ends it."""
    with flood(farm) as sockets:
        sock = sockets.open()
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\n")
        started = time.monotonic()
        with pytest.raises(OSError):  # the coordinator closed (or reset) the connection while we dripped
            while time.monotonic() - started < 6 * READ_TIMEOUT:
                sock.sendall(b"X")
                time.sleep(READ_TIMEOUT / 4)  # the attack's own pace, not synchronisation
        assert closed_by_peer(sock) and time.monotonic() - started < 3 * READ_TIMEOUT


@pytest.mark.coordinator_args("--request-timeout", str(READ_TIMEOUT), "--max-connections-per-address", "20")
def test_connections_over_the_limit_get_503_without_a_thread(farm: Farm):
    pid = farm.serving_pid()
    health = f"{farm.url}/api/v1/health"
    idle = threads(pid)
    with flood(farm) as sockets:
        for _ in range(20):
            half_sent(sockets)
        wait_for(lambda: threads(pid) >= idle + 20, 30, "the flood to hold its threads")
        refused = requests.get(health, timeout=10)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "busy"
        assert refused.headers["Retry-After"] == "5"
        assert threads(pid) <= idle + 20 + SLACK
        wait_for(lambda: requests.get(health, timeout=10).status_code == 200, 30,
                 "the held connections to time out and others to be served again")
