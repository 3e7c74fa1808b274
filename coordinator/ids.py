"""Ids in URLs: integers a database column can hold.

Werkzeug's ``int`` converter matches any run of digits, and a 30-digit id reached the database, where SQLite
cannot bind it (OverflowError: a 500). Ids past the largest 64-bit integer name nothing: no route matches them,
so they get the API's JSON 404 like any unknown path.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

LARGEST_ID = 2**63 - 1


class IdConverter(IntegerConverter):
    """``<int:name>`` of at most LARGEST_ID (a route may still ask for a smaller ``max``)."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", LARGEST_ID)
        super().__init__(url_map, *args, **kwargs)


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
