"""Background thread: expire silent workers' leases, settle jobs nobody may run, and re-kick dispatch.

The re-kick also picks up work that another coordinator (sharing the database) made available.
"""

from __future__ import annotations

import threading

from flask import Flask

from . import leases
from .db import db
from .verification import leasing as check_leasing


class Reaper:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="framehive-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sweep(self) -> None:
        """One pass; safe to call from tests."""
        dispatcher = self.app.extensions["framehive_dispatcher"]
        with self.app.app_context():
            try:
                dispatcher.drop_leases(leases.expire_leases())
                dispatcher.drop_leases(check_leasing.expire())
                leases.mark_silent_workers_offline()
                dispatcher.drop_leases(leases.settle_jobs_nobody_may_run())
                dispatcher.kick()
            finally:
                db.session.remove()

    def _run(self) -> None:
        interval = float(self.app.config["FRAMEHIVE_REAPER_INTERVAL"])
        while not self._stop.wait(interval):
            try:
                self.sweep()
            except Exception:  # keep reaping whatever one pass hit; the log says what
                self.app.logger.exception("reaper pass failed")
