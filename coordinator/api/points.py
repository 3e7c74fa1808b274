"""Points: the price list, the caller's balance and ledger, and admin grants."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from framehive.protocol.json_numbers import is_int
from sqlalchemy import func, or_, select

from .. import events, ledger, paging
from ..auth import current_caller, require
from ..db import db
from ..errors import ApiError
from ..ids import query_id
from ..models import Account, Claim, Job, LedgerEntry, Worker
from ..payments import job_price, tier1_hold
from ..states import JobState
from ..timefmt import iso

bp = Blueprint("points", __name__)


@bp.get("/pricing")
@require("user", "worker")
def pricing() -> Response:
    config = current_app.config
    return jsonify({
        "frame_price": config["FRAMEHIVE_FRAME_PRICE"],
        "check_price": config["FRAMEHIVE_CHECK_PRICE"],
        "spot_check_price": config["FRAMEHIVE_SPOT_CHECK_PRICE"],
        "tier1_check_price": config["FRAMEHIVE_TIER1_CHECK_PRICE"],
        "tier1_rate": config["FRAMEHIVE_TIER1_RATE"],
        "tier1_hold_per_frame": tier1_hold(),
        "job_price_per_frame": job_price(1),
        "self_dealing_rate": config["FRAMEHIVE_SELF_DEALING_RATE"],
        "starting_grant": config["FRAMEHIVE_STARTING_GRANT"],
        "stake": config["FRAMEHIVE_STAKE"],
        "claim_price_per_frame": config["FRAMEHIVE_CLAIM_PRICE"],
        "cancel_fee": config["FRAMEHIVE_CANCEL_FEE"],
        "rules": [
            "submitting a job of M frames holds M x job_price_per_frame points in escrow: per frame frame_price, "
            "check_price and tier1_hold_per_frame (tier1_rate x tier1_check_price, rounded up)",
            "each verified frame pays its renderer frame_price (x self_dealing_rate on its own account's job)",
            "each check whose verdict stands pays its verifier check_price (spot_check_price for a spot check, "
            "tier1_check_price for a tier-1 check); ringers are unpaid",
            "arbitration is paid by the side found wrong, the rest like a check",
            "checks are paid from escrow only above frame_price for each frame not yet paid, the rest from the "
            "network pool while it has points: renders are always paid from escrow",
            "a caught cheater gives back what it earned in the job and forfeits the stake",
            "what is left in escrow when the job ends goes back to the artist",
            "an artist cancelling its own job pays cancel_fee out of the escrow to the network",
            "a claim holds claim_price_per_frame for each disputed frame: given back if the claim is confirmed, "
            "kept by the network if it is rejected",
        ],
    })


def _account_for(caller_account: int) -> int:
    """Admins may look at any account with ?account=NAME."""
    name = request.args.get("account")
    if name is None:
        return caller_account
    if not current_caller().is_admin:
        raise ApiError(403, "forbidden", "only admins may look at another account")
    account = db.session.execute(select(Account).filter_by(name=name)).scalar_one_or_none()  # no NUL: bodies.py
    if account is None:
        raise ApiError(404, "not_found", f"no account {name!r}")
    return account.id


@bp.get("/balance")
@require("user", "worker")
def get_balance() -> Response:
    account_id = _account_for(current_caller().account_id)
    active = db.session.execute(select(Job.id).where(Job.account_id == account_id,
                                                     Job.state.in_(JobState.ACTIVE))).scalars().all()
    earned = dict(db.session.execute(
        select(LedgerEntry.worker_id, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.to_book == ledger.account_book(account_id), LedgerEntry.worker_id.is_not(None))
        .group_by(LedgerEntry.worker_id)).all())
    workers = db.session.execute(select(Worker).filter_by(account_id=account_id)).scalars().all()
    return jsonify({
        "account": db.session.get_one(Account, account_id).name,
        "balance": ledger.balance(ledger.account_book(account_id)),
        "escrow": sum(ledger.balance(ledger.escrow_book(job_id)) for job_id in active),
        "earned_by_worker": {w.name: int(earned.get(w.id, 0)) for w in workers},
    })


def entry_json(entry: LedgerEntry, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An entry with its books (``account:4``, ``escrow:7``: what the ledger keeps) and, given ``labels``
    (dashboard/books.py), the names a person reads for them (``from_label``, ``to_label``)."""
    shown = {
        "id": entry.id, "at": iso(entry.created_at),
        "from": entry.from_book, "to": entry.to_book, "amount": entry.amount, "reason": entry.reason,
        "memo": entry.memo, "job": entry.job_id, "task": entry.task_id, "check": entry.check_id,
        "claim": entry.claim_id, "worker": entry.worker_id, "frame": entry.frame,
    }
    if labels is not None:
        shown["from_label"], shown["to_label"] = labels[entry.from_book], labels[entry.to_book]
    return shown


@bp.get("/ledger")
@require("user", "worker")
def get_ledger() -> Response:
    """The caller's entries (in or out of its account, its jobs' escrows and its claims' holds), newest first, a
    page at a time."""
    account_id = _account_for(current_caller().account_id)
    books = [ledger.account_book(account_id)]
    books += [ledger.escrow_book(j) for j in db.session.execute(
        select(Job.id).filter_by(account_id=account_id)).scalars()]
    books += [ledger.claim_book(c) for c in db.session.execute(
        select(Claim.id).filter_by(account_id=account_id)).scalars()]
    query = select(LedgerEntry).where(or_(LedgerEntry.from_book.in_(books), LedgerEntry.to_book.in_(books)))
    try:
        job = query_id(request.args.get("job"))
    except ValueError:
        raise ApiError(400, "bad_request", "'job' must be a job's id") from None
    if job is not None:
        query = query.where(LedgerEntry.job_id == job)
    if reason := request.args.get("reason"):
        query = query.where(LedgerEntry.reason == reason)
    page = paging.paginate(query, LedgerEntry.id, newest_first=True)
    from ..dashboard.books import labels as book_labels  # here: the dashboard package imports this module

    labels = book_labels({books[0]} | {e.from_book for e in page.items} | {e.to_book for e in page.items})
    return jsonify({"account": books[0], "account_label": labels[books[0]],
                    "entries": [entry_json(e, labels) for e in page.items], "next": page.next})


@bp.post("/admin/grants")
@require("admin")
def grant() -> tuple[Response, int]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("account"), str):
        raise ApiError(400, "bad_request", 'send {"account": NAME, "amount": POINTS, "memo": TEXT}')
    amount = body.get("amount")
    if not is_int(amount) or not 0 < amount <= 10**9:
        raise ApiError(400, "bad_request", "'amount' must be a positive integer")
    account = db.session.execute(select(Account).filter_by(name=body["account"])).scalar_one_or_none()
    if account is None:
        raise ApiError(404, "not_found", f"no account {body['account']!r}")
    memo = str(body.get("memo") or "admin grant")[:200]
    ledger.grant(account.id, amount, memo)
    events.record(events.POINTS_GRANTED, f"{amount} points granted to {account.name}: {memo}", account=account,
                  actor=current_caller().account_name)
    db.session.commit()
    return jsonify({"account": account.name, "balance": ledger.balance(ledger.account_book(account.id))}), 201
