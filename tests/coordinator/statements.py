"""The SQL statements a test's own thread sends, on a real database: what a step costs (issue 16)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from framehive.coordinator.db import db
from sqlalchemy import event


@contextmanager
def statements_of_this_thread(app: Flask, keep: Callable[[str], bool] = lambda _text: True) -> Iterator[list[str]]:
    """Statements sent from the calling thread (the dispatcher's own thread may run a pass meanwhile), their
    whitespace collapsed, those ``keep`` keeps."""
    statements: list[str] = []
    me = threading.get_ident()

    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        text = " ".join(statement.split())
        if threading.get_ident() == me and keep(text):
            statements.append(text)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", _record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", _record)
