"""Transient HTTP failures of the agent's idempotent requests (a scene blob's download, a frame's upload), tried
again after a pause instead of failing the task: a connection refused, reset or cut mid-body, or a 502, 503 or 504
from the coordinator or a proxy in front of it (a restart, a busy moment). Three failed tasks blocklist an owner
for the job, so one proxy hiccup must not count as one.

Safe to repeat: a blob download writes to a fresh temporary file each time, and the coordinator takes a frame
uploaded twice as a harmless duplicate. A 4xx, a read timeout (the coordinator took the request and stalls) or a
TLS failure is not transient: it fails at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import requests

log = logging.getLogger("framehive.worker")

#: Pauses before the second, third and fourth attempt (about 3.5 s in all, then the last error stands).
RETRY_DELAYS = (0.5, 1.0, 2.0)
TRANSIENT_STATUSES = frozenset({502, 503, 504})

T = TypeVar("T")


class Transient(Exception):
    """An attempt failed in a way worth trying again; ``final`` is what to raise when no attempt is left."""

    def __init__(self, final: Exception) -> None:
        super().__init__(str(final))
        self.final = final


def is_transient(exc: requests.RequestException) -> bool:
    """A connection that could not be made or broke (before or during the answer); not a certificate problem."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError)


def retried(attempt: Callable[[], T], what: str, delays: tuple[float, ...] = RETRY_DELAYS) -> T:
    """``attempt()``, called again after each of ``delays`` while it raises :class:`Transient`; then the last
    failure's ``final`` error. Blocking (the agent calls it in a thread)."""
    for delay in delays:
        try:
            return attempt()
        except Transient as exc:
            log.info("%s: %s; trying again in %.1f s", what, exc, delay)
        time.sleep(delay)  # backing off: the coordinator or its proxy needs a moment, not a burst of requests
    try:
        return attempt()
    except Transient as exc:
        raise exc.final from None
