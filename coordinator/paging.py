"""Pages of the API's lists: ``?limit=N&after=CURSOR``, and a ``next`` link to the page that follows.

Every list endpoint answers one page at a time, so no answer grows with the database (an account with years of
jobs, an admin listing every token). Pages are cut by id (keyset paging): ``after`` is the id of the last item
of the previous page, so a page is one indexed range query however deep it is, and items added meanwhile never
shift the pages still to be read. Newest-first lists (jobs, events, ledger entries) go down from ``after``,
the others (workers, tokens, claims) up. ``next`` is the path and query of the following page, the caller's
own filters kept, or null on the last page: clients follow it and never build cursors themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import current_app, request
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from .db import db
from .errors import ApiError
from .ids import query_id


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next: str | None


def page_size(default: int | None = None) -> int:
    """``?limit=`` (1 to the largest page), or ``default`` (the configured page size when not given)."""
    largest = max(1, int(current_app.config["FRAMEHIVE_MAX_PAGE_SIZE"]))
    if default is None:
        default = int(current_app.config["FRAMEHIVE_PAGE_SIZE"])
    text = request.args.get("limit")
    if text is None:
        return max(1, min(default, largest))
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= largest:
        raise ApiError(400, "bad_request", f"'limit' must be an integer from 1 to {largest}")
    return int(text)


def cursor() -> int | None:
    """``?after=``: the id of the last item of the previous page."""
    try:
        return query_id(request.args.get("after"))
    except ValueError:
        raise ApiError(400, "bad_request", "'after' must be the cursor from the previous page's 'next' link") from None


def paginate(query: Select[Any], key: InstrumentedAttribute[int], *, newest_first: bool,
             default: int | None = None) -> Page:
    """One page of ``query``'s rows, ordered by ``key`` (an integer primary key)."""
    limit = page_size(default)
    after = cursor()
    if after is not None:
        query = query.where(key < after if newest_first else key > after)
    query = query.order_by(key.desc() if newest_first else key.asc()).limit(limit + 1)
    rows = list(db.session.execute(query).scalars())
    if len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    return Page(rows, next_link(getattr(rows[-1], key.key), limit))


def next_link(after: int, limit: int) -> str:
    """This request's path and query with the cursor moved to ``after``."""
    args = {name: values for name, values in request.args.lists() if name not in ("after", "limit")}
    return f"{request.path}?{urlencode({**args, 'limit': limit, 'after': after}, doseq=True)}"
