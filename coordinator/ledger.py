"""The points ledger: double entry, balances derived from entries, never negative. No commits here.

Every movement is one ``LedgerEntry`` from one book to another, so the sum over all books is always zero;
the sum over accounts, escrows and the network pool changes only by grants (entries from ``mint``).
Transfers out of an account, an escrow or the network check the balance first (under a row lock on
PostgreSQL) and either refuse or, for penalties, take what is there (``cap=True``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from .db import db, lock_row
from .errors import ApiError
from .models import Account, Claim, Job, LedgerEntry

MINT = "mint"
NETWORK = "network"


class InsufficientPoints(ApiError):
    def __init__(self, balance: int, price: int) -> None:
        super().__init__(402, "insufficient_points", f"this costs {price} points and the balance is {balance}",
                         balance=balance, price=price)


def account_book(account_id: int) -> str:
    return f"account:{account_id}"


def escrow_book(job_id: int) -> str:
    return f"escrow:{job_id}"


def claim_book(claim_id: int) -> str:
    """What a claimant paid for a claim, held until the claim is decided."""
    return f"claim:{claim_id}"


def balance(book: str) -> int:
    """What entered the book minus what left it: one statement of two indexed sums (two statements before)."""
    def total(column: Any) -> Any:
        return select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(column == book).scalar_subquery()

    return int(db.session.execute(select(total(LedgerEntry.to_book) - total(LedgerEntry.from_book))).scalar_one())


def _lock(book: str) -> None:
    """Serialise spending from one book (a no-op on SQLite, whose transactions already are serial). The row lock
    is db.ROW_LOCK: other spenders wait, transactions that merely reference the row do not."""
    kind, _, ident = book.partition(":")
    if ident:
        lock_row({"account": Account, "escrow": Job, "claim": Claim}[kind], int(ident))


def transfer(from_book: str, to_book: str, amount: int, reason: str, *, cap: bool = False, keep: int = 0,
             **refs: Any) -> int:
    """Move ``amount`` points; returns what moved. Raises InsufficientPoints unless ``cap``. ``keep`` points of
    the book are not available to this transfer (a job's escrow keeps the price of the renders it still owes)."""
    if amount <= 0 or from_book == to_book:
        return 0
    if from_book != MINT:
        _lock(from_book)
        available = balance(from_book) - max(0, keep)
        if amount > available:
            if not cap:
                raise InsufficientPoints(available, amount)
            amount = max(0, available)
            if amount == 0:
                return 0
    db.session.add(LedgerEntry(from_book=from_book, to_book=to_book, amount=amount, reason=reason, **refs))
    db.session.flush()
    return amount


def grant(account_id: int, amount: int, memo: str) -> int:
    """New points from the mint: starting grants and admin grants (each an explicit entry)."""
    if amount <= 0:
        raise ApiError(400, "bad_request", "a grant must be a positive number of points")
    return transfer(MINT, account_book(account_id), amount, "grant", memo=memo)


def circulating() -> int:
    """Points in accounts, escrows and the network pool: equals everything ever granted."""
    return -balance(MINT)
