"""Rate limits per API token: a token bucket per token and budget, in this coordinator process's memory.

A token that sends more than its budget allows gets 429 ``rate_limited`` with ``Retry-After`` (whole seconds
until the bucket holds a request again); other tokens are not affected. Budgets (config.py):

- ``read``: GET and HEAD requests, cheap and the most frequent (polling a job, listing pages);
- ``write``: every other request (submits, job controls, claims, grants, blob uploads);
- ``worker``: an agent's work: its scene downloads (GET /api/v1/blobs/…) and its frame and check uploads (PUT
  under /api/v1/worker/, and POST there for a direct upload to an object store and its confirmation), kept apart
  so that nothing else the token does (listings, its owner's polling) can starve the frames its agents are
  rendering. Its burst fits a whole scene tree at once: the agent does not
  wait on a 429.

A rate of 0 turns a budget off. Buckets live in memory, per process: coordinators sharing one database each
allow the full rate (the limit is there to keep one token from flooding one process). Requests without a known
token are not counted here; the view answers them 401. The WebSocket and the dashboard are not limited here.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, current_app, request
from sqlalchemy import select

from .auth import hash_token
from .db import db
from .errors import error_response
from .models import ApiToken

API = "/api/v1/"
UNLIMITED_PATHS = frozenset({"/api/v1/health", "/api/v1/openapi.json", "/api/v1/worker/ws"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Known token hashes → token ids, so that counting a request costs no query: an id never changes for a hash
# (validity is the view's business, checked on every request). Cleared when it holds this many.
MAX_KNOWN_TOKENS = 50_000
# Buckets are dropped once full again (an idle token's bucket is the same as no bucket) when there are this many.
PRUNE_AT = 10_000


@dataclass
class Bucket:
    level: float  # requests it may still send at once
    stamp: float  # when ``level`` was computed (monotonic seconds)
    rate: float
    burst: float

    def refill(self, now: float) -> None:
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now


class TokenBuckets:
    """Token buckets keyed by (token id, budget). Thread-safe: the server runs one thread per request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[int, str], Bucket] = {}

    def take(self, key: tuple[int, str], rate: float, burst: float) -> float:
        """Spend one request from the bucket; 0.0 if it had one, else the seconds until it will have one."""
        if rate <= 0:
            return 0.0
        burst = max(1.0, burst)
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= PRUNE_AT:
                    self._prune(now)
                bucket = self._buckets[key] = Bucket(burst, now, rate, burst)
            bucket.rate, bucket.burst = rate, burst  # the settings may have changed
            bucket.refill(now)
            if bucket.level >= 1.0:
                bucket.level -= 1.0
                return 0.0
            return (1.0 - bucket.level) / rate

    def _prune(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            bucket.refill(now)
            if bucket.level >= bucket.burst:
                del self._buckets[key]


def init_app(app: Flask) -> None:
    """Count every API request of a known token before its view runs."""
    app.extensions["framehive_rate_limits"] = TokenBuckets()
    app.extensions["framehive_known_tokens"] = {}
    app.before_request(_limit)


def budget() -> str:
    """Which budget this request spends."""
    if request.method in ("PUT", "POST") and request.path.startswith(API + "worker/"):  # POST: direct uploads
        return "worker"
    if request.method == "GET" and request.path.startswith(API + "blobs/"):
        return "worker"  # only agents (and admins) download blobs: the files of the work they hold
    if request.method in READ_METHODS:
        return "read"
    return "write"


def _limit() -> Response | None:
    if not request.path.startswith(API) or request.path in UNLIMITED_PATHS:
        return None
    token_id = _token_id(request.headers.get("Authorization", ""))
    if token_id is None:
        return None
    name = budget()
    config = current_app.config
    limiter: TokenBuckets = current_app.extensions["framehive_rate_limits"]
    wait = limiter.take((token_id, name), float(config[f"FRAMEHIVE_{name.upper()}_RATE"]),
                        float(config[f"FRAMEHIVE_{name.upper()}_BURST"]))
    if wait <= 0:
        return None
    seconds = max(1, math.ceil(wait))
    response, status = error_response(429, "rate_limited", f"too many {name.replace('_', ' ')} requests with this "
                                                           f"token; try again in {seconds} s", budget=name,
                                      retry_after=seconds)
    response.status_code = status
    response.headers["Retry-After"] = str(seconds)
    return response


def _token_id(header: str) -> int | None:
    """The id of the token a ``Bearer`` header names, whatever its state; None for no token or an unknown one."""
    if not header.startswith("Bearer "):
        return None
    digest = hash_token(header[len("Bearer "):].strip())
    known: dict[str, int] = current_app.extensions["framehive_known_tokens"]
    if digest in known:
        return known[digest]
    try:
        token_id = db.session.execute(select(ApiToken.id).filter_by(token_hash=digest)).scalar_one_or_none()
    finally:
        db.session.commit()  # end the lookup's transaction at once, as the views' own lookup does
    if token_id is not None:
        if len(known) >= MAX_KNOWN_TOKENS:
            known.clear()
        known[digest] = token_id
    return token_id
