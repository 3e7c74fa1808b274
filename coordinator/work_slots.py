"""A bound on the threads doing a coordinator's work at once: ``FRAMEHIVE_WORK_SLOTS`` (issue 16).

The coordinator has a thread per connection (gunicorn_server.py), so a thousand agents are a thousand threads. When
they all speak at once (a pass hands out a thousand tasks: a thousand uploads, progress reports and results come
back together), a thousand threads want Python's one GIL. A thread waiting for the GIL wakes every 5 ms to ask for
it, so the machine spends itself on those wake-ups (load average 500 on two cores, benchmarks/fleet.py at 1,000
agents): gunicorn's own loop did not get its turn for 30 s, and its arbiter killed the process.

A thread takes a slot for the work of one request (HTTP: from after its headers to its answer, ``init_app``) or of
one WebSocket message (worker_channel.py, also for a connection's sign-on and sign-off) and gives it back after.
Threads beyond the slots wait on a semaphore, asleep, not on the GIL. What waits on a stranger never holds a slot:
request bodies are read (bodies.py, blobs.py) and WebSocket messages are sent (dispatch.Connection.send) with the
slot given back meanwhile (:func:`released`), so slow senders and readers cannot take the slots from everybody.

Slots are per thread and re-entrant: work that takes one while holding one (a helper shared by two paths) does not
wait for itself. A thread inside a database transaction keeps its slot while it waits on the network: taking one
again there would wait for threads that wait for its transaction (SQLite's write lock).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, request

from .db import db

_local = threading.local()


class WorkSlots:
    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("FRAMEHIVE_WORK_SLOTS must be at least 1")
        self.count = count
        self._free = threading.BoundedSemaphore(count)

    def take(self) -> None:
        """Take a slot for this thread (waits, asleep, while all are taken); nested calls only count."""
        depth = getattr(_local, "depth", 0)
        if depth == 0:
            self._free.acquire()
        _local.depth = depth + 1

    def give_back(self) -> None:
        depth = getattr(_local, "depth", 0)
        if depth <= 0:
            return  # never taken (a request refused before its slot was taken)
        _local.depth = depth - 1
        if depth == 1:
            self._free.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        self.take()
        try:
            yield
        finally:
            self.give_back()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Give this thread's slot back while waiting on the network, and take one again after."""
        depth = getattr(_local, "depth", 0)
        if depth == 0:
            yield
            return
        _local.depth = 0
        self._free.release()
        try:
            yield
        finally:
            self._free.acquire()
            _local.depth = depth


def slots() -> WorkSlots:
    """This app's slots (in an app context)."""
    return current_app.extensions["framehive_work_slots"]


@contextmanager
def released() -> Iterator[None]:
    """:meth:`WorkSlots.released` of this app's slots: around reading a stranger's body or sending to it. A thread
    that holds no slot (the dispatcher's, the reaper's) just goes on."""
    if getattr(_local, "depth", 0) == 0:
        yield
        return
    if db.session().in_transaction():  # taking a slot again while holding the database would deadlock with the
        yield  # threads that hold the slots and wait for the database (SQLite's write lock): the slot stays held
        return
    with slots().released():
        yield


def init_app(app: Flask) -> None:
    """Every HTTP request holds a slot from its ``before_request`` (after the earlier hooks, which read nothing
    from the body) to its teardown (before its answer is written). The worker channel's upgrade takes none: a
    WebSocket's request lasts as long as its connection, and worker_channel takes one per message instead."""
    app.extensions["framehive_work_slots"] = WorkSlots(int(app.config["FRAMEHIVE_WORK_SLOTS"]))

    @app.before_request
    def _take() -> None:
        if request.environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            slots().take()

    @app.teardown_request
    def _give_back(_exc: BaseException | None) -> None:
        if request.environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            slots().give_back()
