"""``framehive-coordinator serve`` on gunicorn, as a real process on a loopback port: real agents render a job
through it over its WebSocket, and SIGTERM drains it (the listening socket closes, a request under way finishes,
the agents' WebSockets end at once so they reconnect elsewhere, the process exits well before the grace period)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.farm import REPO, Farm, wait_for
from tests.live import free_port, running_site
from tests.proc_stats import threads

RENDER_TIMEOUT = 240
GRACE = 30  # --graceful-timeout: the stop must come well before it
STALLERS = 8


def test_real_agents_render_a_job_through_gunicorn(tmp_path: Path, sample_scene: Path):
    with running_site(tmp_path / "site", workers=2, artist=("user", "artist")) as site:
        job = site.client().submit(sample_scene, frames="1-4", chunk=1)
        final = site.client().wait(job["id"], poll=0.2, timeout=RENDER_TIMEOUT)
        assert final["state"] == "completed", final
        assert final["counts"]["verified"] == 4
        log = site.farm.coordinator.log_text()  # type: ignore[union-attr]
        assert "Starting gunicorn" in log and "LimitedThreadWorker" in log
        assert re.search(r'"POST /api/v1/jobs HTTP/1.1" 201 ', log), "the access log has the submission"
        served = {w["name"] for w in site.client("site_admin").workers() if w.get("online")}
        assert served == {"w1", "w2"}


@pytest.mark.coordinator_args("--graceful-timeout", str(GRACE))
def test_sigterm_lets_a_request_finish_and_ends_the_agents_websockets_at_once(farm: Farm):
    start = farm.coordinator.log_text()  # type: ignore[union-attr]
    for line in (f"data dir:  {farm.data_dir}\n", f"database:  sqlite:///{farm.data_dir}/framehive.sqlite3\n",
                 f"storage:   file://{farm.data_dir}/blobs\n", f"dashboard: {farm.url}/dashboard/\n"):
        assert line in start, start  # what the admin sees at start
    agent = farm.start_worker("w1", farm.token("worker", "owner"))
    wait_for(lambda: "connected to" in agent.log_text(), 60, "the agent to connect")
    token = farm.token("user", "artist")
    pid, parts = farm.serving_pid(), urlsplit(farm.url)
    idle = threads(pid)
    body = b'{"filename": "x.blend"}'
    request = socket.create_connection((parts.hostname, parts.port), timeout=GRACE)
    request.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: c\r\nAuthorization: Bearer %s\r\nContent-Type: "
                    b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (token.encode(), len(body), body[:5]))
    wait_for(lambda: threads(pid) > idle and unread(parts.port, request.getsockname()[1]) == 0, 10,
             "the coordinator to have read the request's head")

    farm.coordinator.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    stopped = time.monotonic()
    wait_for(lambda: "lost or refused" in agent.log_text(), 10, "the agent's WebSocket to end")
    wait_for(lambda: refused(parts.hostname, parts.port), 10, "the listening socket to close")
    request.sendall(body[5:])
    answer = request.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400 "), answer  # served to the end (the body lacks a scene)
    assert farm.coordinator.popen.wait(GRACE) == 0  # type: ignore[union-attr]
    assert time.monotonic() - stopped < GRACE / 2
    assert "Worker exiting" in farm.coordinator.log_text()  # type: ignore[union-attr]


def unread(server_port: int | None, client_port: int) -> int | None:
    """Bytes the client sent that the coordinator's side of the connection has not read yet (its receive queue,
    from /proc/net/tcp), or None while no such connection is listed."""
    wanted = (f"{server_port:04X}", f"{client_port:04X}")
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if (local.rsplit(":", 1)[1], remote.rsplit(":", 1)[1]) == wanted:
            return int(queues.split(":")[1], 16)
    return None


def refused(host: str | None, port: int | None) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_clients_that_never_close_do_not_stall_everyone_else(farm: Farm):
    """After a ``Connection: close`` answer gunicorn waits up to 2 s for the client to close; on its event loop
    that wait held every other connection, so a few such clients a second stopped the coordinator."""
    parts = urlsplit(farm.url)
    lingering = []
    try:
        for _ in range(STALLERS):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n")
            lingering.append(sock)  # never read, never closed
        started = time.monotonic()
        assert requests.get(f"{farm.url}/api/v1/health", timeout=60).status_code == 200
        # each lingering client held the event loop 2 s: 16 s in all before; a loaded machine answers within 5
        assert time.monotonic() - started < 5, "an honest request waited behind the lingering clients"
    finally:
        for sock in lingering:
            sock.close()


def test_the_wsgi_entry_point_under_gunicorn_reads_the_environment_over_the_file(tmp_path: Path):
    """``gunicorn -k framehive.coordinator.gunicorn_server.LimitedThreadWorker framehive.coordinator.wsgi:app``,
    configured the way a
    server of your own is: FRAMEHIVE_CONFIG names the file, FRAMEHIVE_* variables win over it."""
    config = tmp_path / "framehive.toml"
    config.write_text(f'data_dir = "{tmp_path / "from-file"}"\nmax_connections_per_address = 2\n')
    port = free_port()
    env = {**os.environ, "FRAMEHIVE_CONFIG": str(config), "FRAMEHIVE_DATA_DIR": str(tmp_path / "from-env")}
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", "1",
                               "-k", "framehive.coordinator.gunicorn_server.LimitedThreadWorker", "-b",
                                   f"127.0.0.1:{port}",
                               "framehive.coordinator.wsgi:app"], cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/api/v1/health"), 60, "the coordinator to answer")
        assert (tmp_path / "from-env" / "framehive.sqlite3").is_file() and not (tmp_path / "from-file").exists()
        with flood_of(port, 2):  # the file's per-address cap, in our worker class
            # polled: the worker counts a connection once it has accepted it, which may come after our request
            refused: list[requests.Response] = []
            wait_for(lambda: refused.append(requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10))
                     or refused[-1].status_code == 503, 20, "the per-address cap to refuse a third connection")
            assert refused[-1].json()["error"]["code"] == "busy"
    finally:
        server.terminate()
        assert server.wait(30) == 0
        log.close()


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


@contextmanager
def flood_of(port: int, count: int) -> Iterator[None]:
    """``count`` connections that send half a request head and wait."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\n")
        yield
    finally:
        for sock in sockets:
            sock.close()
