"""Behind a reverse proxy (opt-in, ``--behind-proxy N``): the client's address and scheme from the proxy's
X-Forwarded-For and X-Forwarded-Proto, and the per-address cap counted on that address.

Opt-in because those headers are the client's own words unless a proxy we trust wrote them: without a proxy, a
flooder would name a new address in each request and escape every per-address limit, and could make the
coordinator believe a plain-http request came over https. With ``N`` proxies in front, only the last ``N``
entries (the ones our proxies appended) are believed; X-Forwarded-Host and -Prefix are never read. Behind a proxy
every connection comes from the proxy, so the connection-level cap per address is off and the cap applies here,
to requests (and WebSockets) under way per forwarded address, once the proxy has the request's head.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wsgi import ClosingIterator

from .admission import BUSY_BODY, BUSY_HEADERS, Admission

WSGIApp = Any


class PerAddressCap:
    """WSGI middleware: requests under way from one REMOTE_ADDR over ``max_per_address`` are answered 503 busy."""

    def __init__(self, app: WSGIApp, max_per_address: int) -> None:
        self.app = app
        self.admission = Admission(0, max_per_address)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        address = str(environ.get("REMOTE_ADDR", ""))
        if not self.admission.admit(address):
            start_response("503 Service Unavailable", [h for h in BUSY_HEADERS if h[0] != "Connection"])
            return [BUSY_BODY]
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self.admission.release(address)
            raise
        return ClosingIterator(body, [lambda: self.admission.release(address)])


def behind_proxy(app: WSGIApp, hops: int, max_per_address: int) -> WSGIApp:
    """``app`` seeing the client address and scheme that ``hops`` trusted proxies forwarded, with the per-address
    cap on that address (0: none)."""
    capped = PerAddressCap(app, max_per_address) if max_per_address else app
    return ProxyFix(capped, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)
