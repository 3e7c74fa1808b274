"""Background thread: expire silent workers' leases, settle jobs nobody may run, and re-kick dispatch. Starting and
stopping it starts and stops the dispatcher's own thread too (a serving coordinator's background work).

The re-kick also picks up work that another coordinator (sharing the database) made available and whose wake-up
this process missed; on PostgreSQL the wake-up listener (wakeups.py) runs beside it and usually comes first.
"""

from __future__ import annotations

import threading
import time

from flask import Flask

from . import leases, wakeups
from .db import db
from .verification import leasing as check_leasing

# The look at jobs nobody may run reads every online agent: about 60 ms a second at 1,000 agents (5-7 % of the
# coordinator's CPU, issue 16). It takes at most this share of the reaper's time: after a look of d seconds the next
# comes d / SETTLE_SHARE later at the soonest (a few ms in a small fleet: every sweep, as before; about every 3 s at
# 1,000 agents; later while the machine is busy, since d is wall time), and never more than SETTLE_AT_MOST apart.
SETTLE_SHARE = 0.02
SETTLE_AT_MOST = 5.0


class Paced:
    """Work that may take at most ``share`` of a thread's time: after a run from ``started`` to ``ended``, the next
    is due (ended - started) / share after ``started``, or ``at_most`` seconds after it, whichever comes first."""

    def __init__(self, share: float, at_most: float) -> None:
        self.share = share
        self.at_most = at_most
        self._next = float("-inf")

    def due(self, at: float) -> bool:
        return at >= self._next

    def ran(self, started: float, ended: float) -> None:
        self._next = started + min((ended - started) / self.share, self.at_most)


class Reaper:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self._settling = Paced(SETTLE_SHARE, SETTLE_AT_MOST)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="framehive-reaper", daemon=True)
        dispatcher = app.extensions["framehive_dispatcher"]
        self.listener = (wakeups.Listener(app, dispatcher.origin, self.wake)
                         if wakeups.is_postgresql(app.config["SQLALCHEMY_DATABASE_URI"]) else None)

    def start(self) -> None:
        """Start the sweep, the wake-up listener and the dispatcher's own thread (dispatch.Dispatcher.start)."""
        self.app.extensions["framehive_dispatcher"].start(self.app)
        self._thread.start()
        if self.listener is not None:
            self.listener.start()

    def stop(self) -> None:
        self._stop.set()
        if self.listener is not None:
            self.listener.stop()
        self._thread.join(timeout=5)
        self.app.extensions["framehive_dispatcher"].stop()

    def wake(self) -> None:
        """Another coordinator announced work or a freed worker: offer work to this process's idle agents."""
        with self.app.app_context():
            try:
                self.app.extensions["framehive_dispatcher"].kick(announce=False)
            finally:
                db.session.remove()

    def sweep(self, settle: bool = True) -> None:
        """One pass; safe to call from tests. ``settle``: look at the jobs nobody may run too (the reaper's own
        passes do when it is due: SETTLE_SHARE)."""
        dispatcher = self.app.extensions["framehive_dispatcher"]
        with self.app.app_context():
            try:
                requeued = leases.expire_leases(dispatcher.still_working)
                rechecks = check_leasing.expire(dispatcher.still_working)
                for lease in (*requeued, *rechecks):
                    if lease.reason in (leases.EXPIRED, check_leasing.EXPIRED):
                        self.app.logger.info("worker %s, whose lease ran out: %s", lease.worker_id,
                                             dispatcher.holder(lease.worker_id))
                dispatcher.drop_leases(requeued)
                dispatcher.drop_leases(rechecks)
                leases.mark_silent_workers_offline()
                if settle:
                    started = time.monotonic()
                    dispatcher.drop_leases(leases.settle_jobs_nobody_may_run())
                    self._settling.ran(started, time.monotonic())
                # Every coordinator sweeps: only work this pass put back is news to the others.
                dispatcher.kick(announce=bool(requeued or rechecks))
            finally:
                db.session.remove()

    def _run(self) -> None:
        interval = float(self.app.config["FRAMEHIVE_REAPER_INTERVAL"])
        while not self._stop.wait(interval):
            try:
                self.sweep(settle=self._settling.due(time.monotonic()))
            except Exception:  # keep reaping whatever one pass hit; the log says what
                self.app.logger.exception("reaper pass failed")
