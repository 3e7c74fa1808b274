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
  set by the connection's thread on every message that is a sign of life);
- every sixth of a lease, one UPDATE of the leases of the tasks (and one of the checks) that connected agents hold
  and whose lease was given or renewed a third of a lease ago or more (:data:`RENEW_AT`), for agents heard within a
  lease (a silent one is dropped after a lease anyway) or whose thread has one of their messages in hand (under
  load it may wait for a work slot longer than a lease). A lease is so renewed with at least half a lease left,
  room for this thread's turn at a busy database. A heartbeat was a locked read and a write of its lease: 200
  write transactions a second at 1,000 agents; and, queued behind other work for a work slot, renewals came too
  late and leases ran out under agents that were fine (75 of 1,000 with renewals at half a lease and the agent's
  last message read, 33 with a third, none with this). An agent's heartbeat for its own work needs nothing now
  (worker_channel).

The thread starts with the first connection (:meth:`ChannelUpkeep.ensure_running`): wherever agents connect, it
runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from flask import Flask, current_app
from sqlalchemy import select, update

from . import leases
from .auth import token_state
from .caller_cache import callers
from .db import db, reading
from .dispatch import Connection, dispatcher
from .models import ApiToken, Worker, now
from .verification import leasing as check_leasing

#: Ids in one statement's IN list (SQLite's default limit on variables is far above; PostgreSQL has none).
IDS_PER_STATEMENT = 500
#: A lease is renewed once this share of the lease timeout has passed since it was given or last renewed.
RENEW_AT = 1 / 3
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
        lease_timeout = float(config["FRAMEHIVE_LEASE_TIMEOUT"])
        renew = max(MIN_PERIOD, lease_timeout * RENEW_AT / 2)
        start = time.monotonic()
        next_recheck, next_seen, next_renew = start + recheck, start + seen, start + renew
        while not self._stop.wait(max(0.0, min(next_recheck, next_seen, next_renew) - time.monotonic())):
            with self.app.app_context():
                try:
                    connections = dispatcher().connections()
                    if time.monotonic() >= next_renew:
                        self.renew_leases(connections, lease_timeout)
                        next_renew = time.monotonic() + renew
                    if time.monotonic() >= next_recheck:
                        self.recheck_tokens(connections)
                        next_recheck = time.monotonic() + recheck
                    if time.monotonic() >= next_seen:
                        self.write_seen(connections)
                        next_seen = time.monotonic() + seen
                except Exception:  # the next round tries again; the log says what this one hit
                    db.session.rollback()
                    self.app.logger.exception("the worker channel's upkeep failed")
                    next_recheck = next_seen = next_renew = time.monotonic() + MIN_PERIOD
                finally:
                    db.session.remove()

    def renew_leases(self, connections: list[Connection], lease_timeout: float) -> None:
        """Renew the leases of connected agents' work given or renewed RENEW_AT of a lease ago or more (agents heard
        within a lease): one UPDATE for tasks and one for checks per :data:`IDS_PER_STATEMENT`; on PostgreSQL a
        transaction per lease, so no two row locks are held at once."""
        at = time.monotonic()
        due = [(conn, conn.current) for conn in connections if conn.current is not None
               and at - conn.lease_written >= lease_timeout * RENEW_AT and conn.alive(at, lease_timeout)]
        if not due:
            return
        per_transaction = IDS_PER_STATEMENT if db.engine.dialect.name == "sqlite" else 1
        for start in range(0, len(due), per_transaction):
            batch = due[start:start + per_transaction]
            leases.renew_held([(work.id, conn.worker_id, work.attempt) for conn, work in batch
                               if work is not None and work.kind == "task"])
            check_leasing.renew_held([(work.id, conn.worker_id, work.handle) for conn, work in batch
                                      if work is not None and work.kind == "check"])
            db.session.commit()
        for conn, work in due:
            if conn.current is work:  # still the work renewed (a lease lost meanwhile was not)
                conn.lease_written = at

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
        cache = callers()
        if cache is not None:  # the agents' HTTP requests are served on the same reading (caller_cache)
            cache.confirm(active)
            cache.forget(held - active)

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
