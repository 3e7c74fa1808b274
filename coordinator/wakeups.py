"""Coordinators sharing one PostgreSQL database wake each other with LISTEN/NOTIFY on one channel.

A coordinator pushes work only to the agents connected to it. Work another coordinator makes available (a job
submitted there, a task requeued, a finished task whose frames now need checks, a worker or job resumed, a check
finished or given back) used to wait for this coordinator's next sweep. Every such change already calls the
dispatcher's ``kick``; it now queues a NOTIFY in the transaction it commits (:func:`announce`), which PostgreSQL
delivers only when that transaction commits, so no coordinator is woken before the change is visible to it.
Each coordinator process keeps one connection LISTENing (:class:`Listener`) and, on a notification from another
process, kicks its own dispatcher; that kick first cancels the work of its agents whose leases another process
took back (a job cancelled there: dispatch.Dispatcher.kick). The reaper's sweep stays as the safety net (a
notification sent while the listener was reconnecting is missed; the listener also kicks once whenever it
(re)connects).

SQLite is one process: nothing to tell, nobody to listen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from .db import db

CHANNEL = "framehive"
# How the listener's connection shows in pg_stat_activity (an admin's view, and the reconnect test's handle).
APPLICATION_NAME = "framehive-listener"
# The longest the listener waits for a notification before it looks at its stop flag again.
POLL_SECONDS = 0.5
# A connection quiet for this long is pinged, so a dead one that never said so (a network cut) is replaced.
PING_SECONDS = 15.0
# Waits between reconnection attempts: doubling from the first to the last.
RETRY_FIRST, RETRY_LAST = 0.2, 5.0


def is_postgresql(database_url: str | URL) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


def announce(origin: str) -> None:
    """Queue a notification in the session's open transaction (PostgreSQL only): sent when it commits, dropped if
    it rolls back. ``origin`` names the sending process, whose own listener ignores it (it kicked already)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_notify(:channel, :origin)"), {"channel": CHANNEL, "origin": origin})


def libpq_url(database_url: str | URL) -> str:
    """The SQLAlchemy URL (postgresql+psycopg://…) as a libpq connection URI for a plain psycopg connection."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """One thread holding one autocommit connection that LISTENs; calls ``wake`` (from that thread) after each
    batch of notifications from other processes, and once after every (re)connection. Reconnects when the
    connection dies, waiting a little longer after each failure."""

    def __init__(self, app: Flask, origin: str, wake: Callable[[], None]) -> None:
        self.app = app
        self.origin = origin
        self.wake = wake
        self.conninfo = libpq_url(app.config["SQLALCHEMY_DATABASE_URI"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="framehive-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = RETRY_FIRST
        while not self._stop.is_set():
            try:
                self._listen()
                delay = RETRY_FIRST
            except Exception as exc:  # the connection died or could not be made: try again, a little later
                self.app.logger.warning("wake-up listener lost its database connection (%s); reconnecting in %.1f s",
                                        type(exc).__name__, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, RETRY_LAST)

    def _listen(self) -> None:
        import psycopg  # the postgres extra's: a coordinator on SQLite never gets here, nor has psycopg installed

        with psycopg.connect(self.conninfo, autocommit=True, application_name=APPLICATION_NAME,
                             connect_timeout=10) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._call_wake()  # whatever was announced while nobody listened
            quiet = 0.0
            while not self._stop.is_set():
                senders = {note.payload for note in conn.notifies(timeout=POLL_SECONDS, stop_after=1)}
                if not senders:
                    quiet += POLL_SECONDS
                    if quiet >= PING_SECONDS:
                        conn.execute("SELECT 1")
                        quiet = 0.0
                    continue
                quiet = 0.0
                senders |= {note.payload for note in conn.notifies(timeout=0)}  # the rest of a burst: one wake
                if senders - {self.origin}:
                    self._call_wake()

    def _call_wake(self) -> None:
        try:
            self.wake()
        except Exception:  # a failed dispatch is the sweep's to retry; the listener keeps listening
            self.app.logger.exception("dispatch after a wake-up failed")
