"""Accounts, the ledger and claims as the dashboard shows them (an admin: all; anyone else: their own)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import or_, select

from ..api.points import entry_json
from ..auth import Caller
from ..db import db
from ..ledger import account_book, escrow_book
from ..models import Account, Claim, Job, LedgerEntry, Worker
from ..states import JobState
from . import books, scope
from .timefmt import iso

# The ledger table shows the newest entries that match the filters, at most this many.
LEDGER_LIMIT = 300


def list_accounts(viewer: Caller) -> list[dict[str, Any]]:
    accounts = db.session.execute(scope.accounts(viewer).order_by(Account.id)).scalars().all()
    ids = [a.id for a in accounts]
    active = db.session.execute(select(Job.id, Job.account_id).where(Job.account_id.in_(ids),
                                                                     Job.state.not_in(JobState.FINAL))).all()
    balances = books.balances([account_book(i) for i in ids] + [escrow_book(j) for j, _ in active])
    escrow: Counter[int] = Counter()
    for job_id, account_id in active:
        escrow[account_id] += balances[escrow_book(job_id)]
    workers = Counter(db.session.execute(select(Worker.account_id).where(Worker.account_id.in_(ids))).scalars())
    return [{"id": a.id, "name": a.name, "trusted": a.trusted, "balance": balances[account_book(a.id)],
             "escrow": escrow[a.id], "active_jobs": sum(1 for _, owner in active if owner == a.id),
             "workers": workers[a.id], "claims_rejected": a.claims_rejected, "created_at": iso(a.created_at)}
            for a in accounts]


def ledger_entries(viewer: Caller, account: str = "", job: int | None = None, reason: str = ""
                   ) -> list[dict[str, Any]]:
    """Newest first: entries in or out of an account and its jobs' escrows (an admin without an account filter
    sees every entry, grants and the network pool's included)."""
    query = select(LedgerEntry)
    account_id = viewer.account_id if not viewer.is_admin else None
    if account and viewer.is_admin:
        account_id = db.session.execute(select(Account.id).filter_by(name=account)).scalar_one_or_none() or -1
    if account_id is not None:
        own = [account_book(account_id)] + [escrow_book(j) for j in db.session.execute(
            select(Job.id).filter_by(account_id=account_id)).scalars()]
        query = query.where(or_(LedgerEntry.from_book.in_(own), LedgerEntry.to_book.in_(own)))
    if job is not None:
        query = query.where(LedgerEntry.job_id == job)
    if reason:
        query = query.where(LedgerEntry.reason == reason)
    entries = db.session.execute(query.order_by(LedgerEntry.id.desc()).limit(LEDGER_LIMIT)).scalars().all()
    names = books.labels({e.from_book for e in entries} | {e.to_book for e in entries})
    return [{**entry_json(e), "from_label": names[e.from_book], "to_label": names[e.to_book]} for e in entries]


def list_claims(viewer: Caller) -> list[dict[str, Any]]:
    query = select(Claim).order_by(Claim.id.desc())
    if not viewer.is_admin:
        query = query.where(Claim.account_id == viewer.account_id)
    claims = db.session.execute(query).scalars().all()
    names = dict(db.session.execute(select(Account.id, Account.name)
                                    .where(Account.id.in_({c.account_id for c in claims}))).all())
    return [{"id": c.id, "job": c.job_id, "account": names.get(c.account_id), "frames": c.frames_spec,
             "reason": c.reason, "state": c.state, "outcome": c.outcome, "created_at": iso(c.created_at),
             "decided_at": iso(c.decided_at)} for c in claims]
