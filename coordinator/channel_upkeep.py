"""The worker channel's upkeep, for every connection of this process at once: token re-checks and last_seen.

A connected agent's token is read again every ``FRAMEHIVE_TOKEN_RECHECK_INTERVAL`` seconds, so a revoked or expired
token is cut off even if its agent stays silent, and its ``last_seen`` (the reaper's offline rule) is written at
most every ``FRAMEHIVE_SEEN_INTERVAL`` (capped at half a lease). Each connection's thread did both for itself: at
1,000 agents that was 200 token reads and 67 write transactions a second with no work going on, 30 of the 145
statements per frame of a 1,000-agent fleet (benchmarks/fleet.py, issue 16). Here one thread does them for all:

- every half recheck interval, one read of the states of every token a connection of this process holds (in
  chunks of :data:`IDS_PER_STATEMENT`); a connection whose token is no longer active is marked
  (``Connection.token_lost``); its own thread, which wakes at least every half interval, sends ``bad_token`` and
  closes. A silent agent is cut off within the interval of the revocation, as before;
- every seen interval, one UPDATE of ``last_seen`` for the workers heard since the last one (``Connection.heard``,
  set by the connection's thread on every message that is a sign of life).

The thread starts with the first connection (:meth:`ChannelUpkeep.ensure_running`): wherever agents connect, it
runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from flask import Flask, current_app
from sqlalchemy import select, update

from .auth import token_state
from .db import db, reading
from .dispatch import Connection, dispatcher
from .models import ApiToken, Worker, now

#: Ids in one statement's IN list (SQLite's default limit on variables is far above; PostgreSQL has none).
IDS_PER_STATEMENT = 500
#: The shortest period of either duty, whatever the settings say (0 once meant "on every message").
MIN_PERIOD = 0.5


def seen_interval(setting: float, lease_timeout: float) -> float:
    """How often a connected agent's last_seen is written: ``setting``, but at most every half lease.

    The reaper marks offline a worker whose last_seen is two lease timeouts old (leases.mark_silent_workers_offline).
    A connected agent speaks at least once a lease (else it is dropped as silent), so its last_seen is at most half
    a lease plus a lease old: always under two leases."""
    return max(MIN_PERIOD, min(setting, lease_timeout / 2))


def wake_interval(recheck: float) -> float:
    """How often a connection's thread looks whether its token was found lost, and how often it is looked for:
    half the recheck interval each, so a silent agent is cut off within the interval."""
    return max(MIN_PERIOD, recheck) / 2


class ChannelUpkeep:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()
        self._stop = threading.Event()
        self._written: dict[int, float] = {}  # worker id -> the Connection.heard its last_seen write covered

    def ensure_running(self) -> None:
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="framehive-channel-upkeep", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        config = self.app.config
        recheck = wake_interval(float(config["FRAMEHIVE_TOKEN_RECHECK_INTERVAL"]))
        seen = seen_interval(float(config["FRAMEHIVE_SEEN_INTERVAL"]), float(config["FRAMEHIVE_LEASE_TIMEOUT"]))
        next_recheck, next_seen = time.monotonic() + recheck, time.monotonic() + seen
        while not self._stop.wait(max(0.0, min(next_recheck, next_seen) - time.monotonic())):
            with self.app.app_context():
                try:
                    connections = dispatcher().connections()
                    if time.monotonic() >= next_recheck:
                        self.recheck_tokens(connections)
                        next_recheck = time.monotonic() + recheck
                    if time.monotonic() >= next_seen:
                        self.write_seen(connections)
                        next_seen = time.monotonic() + seen
                except Exception:  # the next round tries again; the log says what this one hit
                    db.session.rollback()
                    self.app.logger.exception("the worker channel's upkeep failed")
                    next_recheck = next_seen = time.monotonic() + MIN_PERIOD
                finally:
                    db.session.remove()

    def recheck_tokens(self, connections: list[Connection]) -> None:
        """Mark every connection whose token is no longer active (revoked, expired, gone). One read per
        :data:`IDS_PER_STATEMENT` tokens, without SQLite's write lock."""
        held = {conn.token_id for conn in connections if not conn.token_lost}
        active: set[int] = set()
        at = now()
        with reading():
            for chunk in _chunks(sorted(held)):
                rows = db.session.execute(select(ApiToken).where(ApiToken.id.in_(chunk))).scalars()
                active |= {token.id for token in rows if token_state(token, at) == "active"}
            db.session.commit()
        for conn in connections:
            if conn.token_id not in active:
                conn.token_lost = True

    def write_seen(self, connections: list[Connection]) -> None:
        """One UPDATE of last_seen for every worker heard since its last write (per chunk of ids)."""
        heard = {conn.worker_id: conn.heard for conn in connections
                 if conn.heard > self._written.get(conn.worker_id, 0.0)}
        if heard:
            at = now()
            for chunk in _chunks(sorted(heard)):
                db.session.execute(update(Worker).where(Worker.id.in_(chunk)).values(last_seen=at))
            db.session.commit()
        connected = {conn.worker_id for conn in connections}
        self._written = {worker_id: written for worker_id, written in {**self._written, **heard}.items()
                         if worker_id in connected}


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), IDS_PER_STATEMENT):
        yield ids[start:start + IDS_PER_STATEMENT]


def upkeep() -> ChannelUpkeep:
    """This app's upkeep (create_app makes it; its thread starts with the first connection). In an app context."""
    return current_app.extensions["framehive_channel_upkeep"]
