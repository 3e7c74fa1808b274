"""A worker agent's HTTP requests read its token at most once per recheck interval (coordinator/caller_cache.py).

Every frame upload and check result read the caller's token: about 5 of a frame's statements at a fleet's scale
(issue 16). The token is now remembered for FRAMEHIVE_TOKEN_RECHECK_INTERVAL, the bound its channel already has for
a revocation made elsewhere; a revocation through this coordinator's API, and an expiry, take effect at once.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import pytest
from flask import Flask
from framehive.coordinator import caller_cache, channel_upkeep
from framehive.coordinator.auth import Caller, hash_token, issue_token
from framehive.coordinator.caller_cache import CallerCache
from framehive.coordinator.db import db
from framehive.coordinator.dispatch import Connection
from framehive.coordinator.models import ApiToken, now
from sqlalchemy import update

from tests.coordinator.statements import statements_of_this_thread

# Any worker route: the token is read before anything else (a worker of nobody's: 403 once the caller is known).
ROUTE = "/api/v1/worker/tasks/1/frames/1?attempt=1"


class Clock:
    """time.monotonic() for caller_cache, moved by the test."""

    def __init__(self) -> None:
        self.at = 1000.0

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(caller_cache.time, "monotonic", clock)
    return clock


def token_reads(app: Flask) -> AbstractContextManager[list[str]]:
    """Reads of the api_token table from the calling thread."""
    return statements_of_this_thread(app, lambda text: "FROM api_token" in text)


def worker_token(app: Flask, **kw: Any) -> tuple[str, int]:
    with app.app_context():
        secret, listing = issue_token("worker", "gpu-box", "gpu-owner", **kw)
    return secret, listing["id"]


def put(app: Flask, secret: str) -> int:
    return app.test_client().put(ROUTE, data=b"x", headers={
        "Authorization": f"Bearer {secret}", "X-Framehive-Worker": "999999", "X-Content-SHA256": "0" * 64}).status_code


def revoke_elsewhere(app: Flask, token_id: int) -> None:
    """What another coordinator (or `framehive-coordinator token revoke`) does: the row only."""
    with app.app_context():
        db.session.execute(update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=now()))
        db.session.commit()


def test_a_worker_tokens_requests_read_it_once_per_interval(app: Flask, clock: Clock) -> None:
    secret, _ = worker_token(app)
    with token_reads(app) as reads:
        statuses = [put(app, secret) for _ in range(5)]
    assert statuses == [403] * 5  # known, and not the caller's worker
    assert len(reads) == 2, reads  # the rate limiter's id lookup (once ever) and the token's state (once)
    clock.at += app.config["FRAMEHIVE_TOKEN_RECHECK_INTERVAL"]
    with token_reads(app) as reads:
        assert put(app, secret) == 403
    assert len(reads) == 1, reads  # read again after the interval


def test_a_user_tokens_requests_read_it_every_time(app: Flask, tokens: dict[str, str], clock: Clock) -> None:
    with token_reads(app) as reads:
        for _ in range(3):
            assert app.test_client().get("/api/v1/jobs", headers={
                "Authorization": f"Bearer {tokens['user']}"}).status_code == 200
    assert len(reads) == 4, reads  # the rate limiter's id once, the token's state each time


def test_a_revocation_through_this_coordinator_takes_effect_at_once(app: Flask, tokens: dict[str, str],
                                                                    clock: Clock) -> None:
    secret, token_id = worker_token(app)
    assert put(app, secret) == 403
    response = app.test_client().delete(f"/api/v1/admin/tokens/{token_id}",
                                        headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert response.status_code == 200, response.get_json()
    assert put(app, secret) == 401


def test_a_revocation_elsewhere_takes_effect_within_the_interval(app: Flask, clock: Clock) -> None:
    secret, token_id = worker_token(app)
    assert put(app, secret) == 403
    revoke_elsewhere(app, token_id)
    assert put(app, secret) == 403  # remembered: the bound is the interval, as for its channel
    clock.at += app.config["FRAMEHIVE_TOKEN_RECHECK_INTERVAL"]
    assert put(app, secret) == 401


def test_the_channels_recheck_refreshes_active_tokens_and_forgets_revoked_ones(app: Flask, clock: Clock) -> None:
    interval = app.config["FRAMEHIVE_TOKEN_RECHECK_INTERVAL"]
    kept_secret, kept_id = worker_token(app)
    lost_secret, lost_id = worker_token(app)
    assert put(app, kept_secret) == 403 and put(app, lost_secret) == 403
    revoke_elsewhere(app, lost_id)
    clock.at += interval * 0.9
    with app.app_context():
        channel_upkeep.upkeep().recheck_tokens([Connection(worker_id=1, name="a", ws=None, token_id=kept_id),
                                                Connection(worker_id=2, name="b", ws=None, token_id=lost_id)])
    assert put(app, lost_secret) == 401  # forgotten by the recheck that found it revoked
    clock.at += interval * 0.9  # 1.8 intervals after the token was read: the recheck confirmed it since
    with token_reads(app) as reads:
        assert put(app, kept_secret) == 403
    assert reads == []


def test_an_expired_token_is_refused_at_its_expiry_though_remembered() -> None:
    cache = CallerCache()
    caller = Caller(token_id=7, account_id=1, account_name="owner", kind="worker")
    digest = hash_token("fhw_secret")
    cache.put(digest, caller, expires_at=2000.0)
    assert cache.get(digest, at=1999.0, within=5.0) == caller
    assert cache.get(digest, at=2000.5, within=5.0) is None
    assert cache.get(hash_token("fhw_other"), at=1999.0, within=5.0) is None


def test_the_cache_is_bounded_and_starts_again_empty_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only active worker tokens get in, but an account with many of them must not grow it without bound."""
    monkeypatch.setattr(caller_cache, "MAX_ENTRIES", 3)
    cache = CallerCache()
    callers = [Caller(token_id=n, account_id=1, account_name="owner", kind="worker") for n in range(4)]
    for n, caller in enumerate(callers[:3]):
        cache.put(hash_token(f"fhw_{n}"), caller, expires_at=None)
    assert all(cache.get(hash_token(f"fhw_{n}"), at=0.0, within=5.0) == callers[n] for n in range(3))
    cache.put(hash_token("fhw_3"), callers[3], expires_at=None)
    assert [cache.get(hash_token(f"fhw_{n}"), at=0.0, within=5.0) for n in range(4)] == [None, None, None, callers[3]]
