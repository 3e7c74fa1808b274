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


@contextmanager
def held_requests(farm: Farm, token: str, forwarded: list[str]) -> Iterator[None]:
    """Requests whose body never ends (the app waits for it), one per X-Forwarded-For value."""
    parts = urlsplit(farm.url)
    sockets = []
    try:
        for value in forwarded:
            sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
            sockets.append(sock)
            sock.sendall((f"POST /api/v1/jobs HTTP/1.1\r\nHost: coordinator\r\nAuthorization: Bearer {token}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: 100\r\nX-Forwarded-For: {value}\r\n"
                          "\r\n{").encode())
        yield
    finally:
        for sock in sockets:
            sock.close()


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
    with held_requests(farm, token, ["203.0.113.7"] * CAP):
        wait_for(lambda: health(farm, "203.0.113.7") == 503, WAIT, "the forwarded address's cap")
        # what the client wrote before the proxy's own entry is not believed
        assert health(farm, "192.0.2.99, 203.0.113.7") == 503
        # another client behind the same proxy is served: the cap is not on the proxy's own address
        assert health(farm, "203.0.113.8") == 200
    assert "Secure" in login_cookie(farm, "https") and "Secure" not in login_cookie(farm, "http")
    log = farm.coordinator.log_text()  # type: ignore[union-attr]
    assert "203.0.113.8 - - " in log and "192.0.2.99 - - " not in log
