"""Accounts, the ledger and claims as the dashboard shows them (an admin: all; anyone else: their own)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, or_, select

from .. import events
from ..api.points import entry_json
from ..auth import Caller
from ..db import db
from ..ledger import account_book, escrow_book
from ..models import Account, AccountBlock, Claim, Event, Job, LedgerEntry, Worker
from ..states import JobState
from ..timefmt import iso
from . import books, scope

# The ledger table shows the newest entries that match the filters, at most this many.
LEDGER_LIMIT = 300
# An account's row lists its newest job blocks, at most this many (``blocks_total`` says how many in all).
BLOCKS_LISTED = 10


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
    blocks, totals = _blocks(viewer, ids)
    why = _suspensions([a.id for a in accounts if a.suspended])
    return [{"id": a.id, "name": a.name, "trusted": a.trusted, "balance": balances[account_book(a.id)],
             "escrow": escrow[a.id], "active_jobs": sum(1 for _, owner in active if owner == a.id),
             "workers": workers[a.id], "claims_rejected": a.claims_rejected, "created_at": iso(a.created_at),
             "suspended": a.suspended, "suspended_why": why.get(a.id), "blocks": blocks.get(a.id, []),
             "blocks_total": totals.get(a.id, 0)}
            for a in accounts]


def _blocks(viewer: Caller, ids: list[int]) -> tuple[dict[int, list[dict[str, Any]]], dict[int, int]]:
    """Each account's newest BLOCKS_LISTED job blocks (failure_accounting: its agents get none of that job's
    work), and how many it has. The job's name only where the viewer may see the job (an admin, or the job's
    owner): a blocked griefer learns no more about its victims' jobs than their ids."""
    newest = func.row_number().over(partition_by=AccountBlock.account_id, order_by=AccountBlock.id.desc())
    ranked = (select(AccountBlock.account_id, AccountBlock.job_id, AccountBlock.reason, AccountBlock.created_at,
                     Job.name, Job.account_id.label("owner"), newest.label("rank"))
              .join(Job, Job.id == AccountBlock.job_id).where(AccountBlock.account_id.in_(ids)).subquery())
    listed: dict[int, list[dict[str, Any]]] = {}
    for row in db.session.execute(select(ranked).where(ranked.c.rank <= BLOCKS_LISTED)
                                  .order_by(ranked.c.account_id, ranked.c.rank)):
        visible = viewer.is_admin or row.owner == viewer.account_id
        listed.setdefault(row.account_id, []).append({
            "job": row.job_id, "job_name": row.name if visible else None, "visible": visible,
            "reason": row.reason, "at": iso(row.created_at)})
    totals = dict(db.session.execute(select(AccountBlock.account_id, func.count()).where(
        AccountBlock.account_id.in_(ids)).group_by(AccountBlock.account_id)).all())
    return listed, totals


def _suspensions(ids: list[int]) -> dict[int, str]:
    """Why each of these suspended accounts was suspended: its latest account_suspended event's message."""
    if not ids:
        return {}
    rows = db.session.execute(select(Event.account_id, Event.message).where(
        Event.kind == events.ACCOUNT_SUSPENDED, Event.account_id.in_(ids)).order_by(Event.id)).all()
    return {account_id: message for account_id, message in rows if account_id is not None}  # all: in_(ids)


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
