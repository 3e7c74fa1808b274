"""Ids in URLs: integers a database column can hold.

Werkzeug's ``int`` converter matches any run of digits, and a 30-digit id reached the database, where SQLite
cannot bind it (OverflowError: a 500), nor PostgreSQL one past 2**31 - 1, compared with an INTEGER column
("integer out of range": a 500). Ids past that name nothing: no route matches them, so they get the API's JSON
404 like any unknown path, and such a query id or attempt is answered as one that names nothing.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

LARGEST_ID = 2**31 - 1  # PostgreSQL's INTEGER: every id and attempt column


class IdConverter(IntegerConverter):
    """``<int:name>`` of at most LARGEST_ID: a larger one is a 404 at once, whatever the method. (Werkzeug's own
    ``max`` makes the rule not match, and a path served by two rules of different methods then answers 405.)"""

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        if number > LARGEST_ID:
            raise NotFound(f"no such id: {value[:40]}")
        return number


def init_app(app: Flask) -> None:
    """Before any route is added: every ``<int:…>`` of the app uses IdConverter."""
    app.url_map.converters["int"] = IdConverter


def lenient_id(text: str | None) -> int | None:
    """An id from a header or the query string, or None for anything else (absent, not digits, too large):
    the caller answers as it does for an id that names nothing."""
    try:
        return query_id(text)
    except ValueError:
        return None


def query_id(text: str | None) -> int | None:
    """A query-string id (``?job=7``): None when absent, ValueError when it is not an id."""
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) > LARGEST_ID:
        raise ValueError(f"not an id: {text[:40]!r}")
    return int(text)
