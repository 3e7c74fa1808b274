"""X-Forwarded-For and -Proto are believed only with --behind-proxy N (a real gunicorn coordinator).

The attack: a client names a new address in X-Forwarded-For with each connection to escape the per-address cap,
and claims https with X-Forwarded-Proto. Without the opt-in neither header changes anything. With it, the cap
counts the address the proxy appended (the client's own entries before it are ignored) and the scheme is the
proxy's.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import requests

from tests.farm import Farm, wait_for

CAP = 3
# The coordinator's --request-timeout: a held request keeps its place that long, far longer than the test needs
# (it lets go of them by closing them), so a slow machine does not see them expire mid-test.
REQUEST_TIMEOUT = 60
WAIT = 20  # how long a test polls for what it expects


class Held:
    """Requests whose body never ends (the app waits for it), one per X-Forwarded-For value."""

    def __init__(self, farm: Farm, token: str, forwarded: list[str]) -> None:
        parts = urlsplit(farm.url)
        self.to = (parts.hostname, parts.port)
        self.token = token
        self.sockets = {index: self._open(value) for index, value in enumerate(forwarded)}
        self.forwarded = forwarded

    def _open(self, forwarded: str) -> socket.socket:
        sock = socket.create_connection(self.to, timeout=10)
        sock.sendall((f"POST /api/v1/jobs HTTP/1.1\r\nHost: coordinator\r\nAuthorization: Bearer {self.token}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: 100\r\nX-Forwarded-For: {forwarded}\r\n"
                      "\r\n{").encode())
        return sock

    def topped_up(self) -> bool:
        """Send again any held request that was answered (refused while the test's own probe from the same address
        was under way: the probes and the held requests share the cap)."""
        for index, sock in self.sockets.items():
            sock.setblocking(False)
            try:
                answered = sock.recv(4096) is not None
            except BlockingIOError:
                answered = False
            finally:
                sock.settimeout(10)
            if answered:
                sock.close()
                self.sockets[index] = self._open(self.forwarded[index])
        return True

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


@contextmanager
def held_requests(farm: Farm, token: str, forwarded: list[str]) -> Iterator[Held]:
    held = Held(farm, token, forwarded)
    try:
        yield held
    finally:
        held.close()


def health(farm: Farm, forwarded: str, proto: str = "http") -> int:
    return requests.get(f"{farm.url}/api/v1/health", timeout=10,
                        headers={"X-Forwarded-For": forwarded, "X-Forwarded-Proto": proto}).status_code


def login_cookie(farm: Farm, proto: str) -> str:
    """The session cookie of the login page (once the held connections are let go)."""
    def page() -> requests.Response | None:
        response = requests.get(f"{farm.url}/dashboard/login", headers={"X-Forwarded-Proto": proto}, timeout=10)
        return response if response.status_code == 200 else None

    return wait_for(page, WAIT, "the login page").headers.get("Set-Cookie", "")


@pytest.mark.coordinator_args("--max-connections-per-address", str(CAP), "--request-timeout", str(REQUEST_TIMEOUT))
def test_without_the_opt_in_forwarded_headers_are_the_clients_word_and_ignored(farm: Farm):
    token = farm.token("user", "artist")
    with held_requests(farm, token, ["198.51.100.1", "198.51.100.2", "198.51.100.3"]):
        # a fourth address named in the header is still this client's fourth connection
        wait_for(lambda: health(farm, "198.51.100.4") == 503, WAIT, "the forged address to be capped too")
    assert "Secure" not in login_cookie(farm, "https")  # the request came over http, whatever it claims
    log = farm.coordinator.log_text()  # type: ignore[union-attr]
    assert "198.51.100." not in log and '127.0.0.1 - - ' in log  # the access log names the real peer


@pytest.mark.coordinator_args("--behind-proxy", "1", "--max-connections-per-address", str(CAP),
                              "--request-timeout", str(REQUEST_TIMEOUT))
def test_behind_a_proxy_the_forwarded_address_is_capped_and_the_clients_own_entries_ignored(farm: Farm):
    token = farm.token("user", "artist")
    with held_requests(farm, token, ["203.0.113.7"] * CAP) as held:
        wait_for(lambda: held.topped_up() and health(farm, "203.0.113.7") == 503, WAIT, "the forwarded address's cap")
        # what the client wrote before the proxy's own entry is not believed
        wait_for(lambda: held.topped_up() and health(farm, "192.0.2.99, 203.0.113.7") == 503, WAIT,
                 "the address the proxy appended to be the one capped")
        # another client behind the same proxy is served: the cap is not on the proxy's own address
        assert health(farm, "203.0.113.8") == 200
    assert "Secure" in login_cookie(farm, "https") and "Secure" not in login_cookie(farm, "http")
    log = farm.coordinator.log_text()  # type: ignore[union-attr]
    assert "203.0.113.8 - - " in log and "192.0.2.99 - - " not in log
