"""``framehive-coordinator`` with every SQL statement it sends counted, for benchmarks/fleet.py.

Run as ``python -m benchmarks.counted_coordinator DIR serve ...`` (the arguments after DIR are the coordinator's
own). A listener on every SQLAlchemy engine counts the statements of the process that sends them (cursor
executes: SELECT, INSERT, UPDATE, DELETE and the transaction statements the coordinator issues itself, such as
SQLite's BEGIN IMMEDIATE; commits and rollbacks through the driver are not statements here). Under gunicorn the
requests are served by a forked worker process, so each process that sends statements answers for itself: on
its first statement it makes two named pipes, ``DIR/sql.PID.ask`` and ``DIR/sql.PID.answer``, and a thread that
answers every line written to the first with the counts as one JSON line on the second. The benchmark takes a
reading at the moment it chooses, without any change to the coordinator's code, and no signal (gunicorn's
worker owns those).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


def pipes(directory: Path, pid: int) -> tuple[Path, Path]:
    """The named pipes of process ``pid``: where a reading is asked for, and where it is answered."""
    return directory / f"sql.{pid}.ask", directory / f"sql.{pid}.answer"


class StatementCounter:
    """Statements by their first word (SELECT, INSERT, ...), counted under a lock: handler threads run at once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self.by_verb: Counter[str] = Counter()
        self.by_site: Counter[str] = Counter()  # see call_site
        self.dispatcher: Counter[str] = Counter()  # statements of the dispatcher's passes, by kind: see in_dispatcher
        self.passes: list[float] = []  # how long each of the dispatcher's passes took, s (time_passes)
        self._pid = 0  # the process whose answering thread runs (a forked child starts its own)

    def statement(self, text: str) -> None:
        words = text.split(None, 1)
        site = call_site()
        dispatching = in_dispatcher()
        with self._lock:
            if self._pid != os.getpid():
                self._start_answering()
            self.by_verb[words[0].upper() if words else "?"] += 1
            self.by_site[site] += 1
            if dispatching:
                self.dispatcher[" ".join(text.split()[:2]).upper() if text.upper().startswith("BEGIN")
                                else words[0].upper() if words else "?"] += 1

    def passed(self, seconds: float) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._start_answering()
            self.passes.append(seconds)

    def reading(self) -> dict[str, Any]:
        with self._lock:
            by_verb, by_site, dispatcher = dict(self.by_verb), dict(self.by_site), dict(self.dispatcher)
            passes = list(self.passes)
        return {"pid": os.getpid(), "statements": sum(by_verb.values()), "by_verb": by_verb, "by_site": by_site,
                "dispatcher": dispatcher, "passes": passes}

    def _start_answering(self) -> None:
        self._pid = os.getpid()
        self.by_verb.clear()  # a forked child counts its own statements only
        self.by_site.clear()
        self.dispatcher.clear()
        self.passes.clear()
        ask, answer = pipes(self.directory, self._pid)
        for path in (ask, answer):
            path.unlink(missing_ok=True)
            os.mkfifo(path)
        threading.Thread(target=self._answer, args=(ask, answer), name="sql-counter", daemon=True).start()

    def _answer(self, ask: Path, answer: Path) -> None:
        while True:
            with ask.open() as questions:  # blocks until the benchmark opens it to ask
                for _ in questions:
                    with answer.open("w") as out:  # blocks until the benchmark opens it to read
                        out.write(json.dumps(self.reading()) + "\n")


def ask(directory: Path, pid: int) -> dict[str, Any]:
    """A reading of process ``pid``'s counts (blocking until it answers)."""
    question, answer = pipes(directory, pid)
    with question.open("w") as out:
        out.write("?\n")
    with answer.open() as reply:
        return json.loads(reply.readline())


def call_site(depth: int = 4) -> str:
    """Where a statement comes from: the innermost ``depth`` functions of the coordinator's own code on the stack
    (its database and server plumbing left out), innermost first: ``leases.claim_task < dispatch._give_work <
    dispatch.kick < worker_channel._finished``."""
    names: list[str] = []
    frame = sys._getframe(2)
    while frame is not None and len(names) < depth:
        path = frame.f_code.co_filename
        if f"{os.sep}coordinator{os.sep}" in path and Path(path).stem not in PLUMBING:
            names.append(f"{Path(path).stem}.{frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(names) or "(outside the coordinator's code)"


def in_dispatcher() -> bool:
    """Whether the statement is sent by the dispatcher's pass (dispatch.Dispatcher.kick on the stack, at any depth:
    its claims' statements are often more than four of the coordinator's functions below it)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "kick" and frame.f_code.co_filename.endswith(f"{os.sep}dispatch.py"):
            return True
        frame = frame.f_back
    return False


# Modules of the coordinator that every statement passes through: left out of call sites.
PLUMBING = {"db", "gunicorn_server", "serving", "serve"}


def install(directory: Path) -> StatementCounter:
    counter = StatementCounter(directory)

    def _before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counter.statement(statement)

    event.listen(Engine, "before_cursor_execute", _before)
    time_passes(counter)
    return counter


def time_passes(counter: StatementCounter) -> None:
    """Time each pass of the dispatcher (``Dispatcher._dispatch_to_idle``, wrapped here: the code is unchanged). A
    pass runs alone, under the dispatcher's lock, so their sum is how long the dispatcher was busy."""
    from framehive.coordinator.dispatch import Dispatcher

    original = Dispatcher._dispatch_to_idle

    def timed(self: Dispatcher) -> None:
        began = time.monotonic()
        try:
            original(self)
        finally:
            counter.passed(time.monotonic() - began)

    Dispatcher._dispatch_to_idle = timed  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    from framehive.coordinator import cli

    if len(argv) < 2:
        print("usage: python -m benchmarks.counted_coordinator DIR serve ...", file=sys.stderr)
        return 2
    install(Path(argv[0]))
    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
