"""Ledger balances of many books in two grouped queries (``ledger.balance`` costs two queries per book)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select

from ..db import db
from ..ledger import MINT, NETWORK
from ..models import Account, LedgerEntry


def balances(books: Collection[str]) -> dict[str, int]:
    """Balance of each of ``books`` (0 for a book without entries)."""
    if not books:
        return {}
    result = dict.fromkeys(books, 0)
    for column, sign in ((LedgerEntry.to_book, 1), (LedgerEntry.from_book, -1)):
        rows = db.session.execute(select(column, func.sum(LedgerEntry.amount)).where(column.in_(list(books)))
                                  .group_by(column))
        for book, amount in rows:
            result[book] += sign * int(amount)
    return result


def labels(books: Collection[str]) -> dict[str, str]:
    """Readable names: ``account:3`` → the account's name, ``escrow:7`` → ``escrow of job 7``,
    ``claim:2`` → ``hold of claim 2``."""
    ids = [int(book.partition(":")[2]) for book in books if book.startswith("account:")]
    names = dict(db.session.execute(select(Account.id, Account.name).where(Account.id.in_(ids))).all()) if ids else {}
    result = {}
    for book in books:
        kind, _, ident = book.partition(":")
        if kind == "account" and int(ident) in names:
            result[book] = names[int(ident)]
        elif kind == "escrow":
            result[book] = f"escrow of job {ident}"
        elif kind == "claim":
            result[book] = f"hold of claim {ident}"
        else:
            result[book] = {MINT: "mint (grants)", NETWORK: "network pool"}.get(book, book)
    return result
