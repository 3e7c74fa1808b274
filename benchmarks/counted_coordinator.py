"""``framehive-coordinator`` with every SQL statement it sends counted, for benchmarks/fleet.py.

Run as ``python -m benchmarks.counted_coordinator COUNT_FILE serve ...`` (the arguments after COUNT_FILE are the
coordinator's own). A listener on every SQLAlchemy engine counts the statements the process sends (cursor
executes: SELECT, INSERT, UPDATE, DELETE and the transaction statements the coordinator issues itself, such as
SQLite's BEGIN IMMEDIATE; commits and rollbacks through the driver are not statements here). On SIGUSR1 the
counts are written to COUNT_FILE as JSON with a sequence number, so the benchmark can take a reading at the
moment it chooses without any change to the coordinator's own code.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


class StatementCounter:
    """Statements by their first word (SELECT, INSERT, ...), counted under a lock: handler threads run at once."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # the signal handler may interrupt its own thread
        self.by_verb: Counter[str] = Counter()
        self._readings = 0

    def statement(self, text: str) -> None:
        words = text.split(None, 1)
        with self._lock:
            self.by_verb[words[0].upper() if words else "?"] += 1

    def write(self, path: Path) -> None:
        """The current counts, atomically (the benchmark never reads half a file)."""
        with self._lock:
            self._readings += 1
            by_verb = dict(self.by_verb)
            reading = {"seq": self._readings, "statements": sum(by_verb.values()), "by_verb": by_verb}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(reading))
        os.replace(tmp, path)


def install(counter: StatementCounter, path: Path) -> None:
    def _before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counter.statement(statement)

    event.listen(Engine, "before_cursor_execute", _before)

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        counter.write(path)

    signal.signal(signal.SIGUSR1, _on_signal)
    counter.write(path)  # seq 1: the benchmark knows the listener is in place


def main(argv: list[str]) -> int:
    from coordinator import cli

    if len(argv) < 2:
        print("usage: python -m benchmarks.counted_coordinator COUNT_FILE serve ...", file=sys.stderr)
        return 2
    install(StatementCounter(), Path(argv[0]))
    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
