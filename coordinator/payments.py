"""Who earns what, as ledger transfers. No commits: the caller's transaction holds them.

- Submit: the job's price goes from the artist's account into the job's escrow (402 if short): per frame the
  frame price, one check and the expected tier-1 check (FRAMEHIVE_TIER1_RATE x TIER1_CHECK_PRICE, rounded up).
- A verified frame pays its renderer the frame price (a reduced rate on its own account's job).
- A check pays its verifier when its verdict stands (a spot check or a tier-1 check, small renders, pay less); an
  arbitration is paid by the loser (what it has), the rest like a check. Ringers are unpaid (verifiers
  cannot tell them apart, so they simply lower the expected pay per check).
- Renders come first: a check takes from the escrow only what is above the frame price of every frame of the job
  not yet paid for (the render reserve), since checks are paid as they pass and renders only when their task is
  accepted. What the escrow cannot pay (more checks than the job's price carries: tier-1 flags, audits,
  arbitrations), and every check of a finished job, is paid by the network pool while it has points.
- A caught renderer gives back what it earned in the job (to the escrow, or to the artist once the job is
  over) and forfeits a stake to the network; a caught verifier forfeits a stake.
- When a job ends, what is left in its escrow goes back to the artist; when its owner cancels it, a small fee
  goes to the network first (creating and cancelling jobs must not be free: each leaves rows behind).
- A claim holds its price (per disputed frame: a whole-frame render on a trusted node) from the claimant until
  it is decided: given back if confirmed, kept by the network (which pays for the claim's checks of finished
  jobs) if rejected.
"""

from __future__ import annotations

import math
from typing import Any

from flask import current_app
from sqlalchemy import event, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper

from . import config
from .db import db
from .ledger import MINT, NETWORK, InsufficientPoints, account_book, balance, claim_book, escrow_book, transfer
from .models import Account, Check, Claim, Frame, Job, LedgerEntry, Worker
from .states import ClaimState, FrameState, JobState

# Frames whose render the escrow still owes (a failed or cancelled frame is not paid; a requeue charges anew).
UNPAID = (FrameState.QUEUED, FrameState.RENDERING, FrameState.RENDERED)


def _config(name: str) -> float:
    try:
        return current_app.config[f"FRAMEHIVE_{name}"]
    except RuntimeError:  # outside an app (a script creating accounts): the defaults
        return getattr(config, name)


def job_price(frames: int) -> int:
    """The escrow a job of ``frames`` frames holds: the same per frame for every job, shown before submitting
    (GET /pricing); what its frames and checks do not use goes back to the artist when it ends."""
    return frames * (int(_config("FRAME_PRICE")) + int(_config("CHECK_PRICE")) + tier1_hold())


def tier1_hold() -> int:
    """Per frame, for its tier-1 check: the rate times its price, rounded up. Held for every frame, whatever its size
    (a frame tier1.factor_for has no factor for, or a trusted renderer's, gets none and its hold is refunded), so
    that the price per frame is one number an artist sees before submitting."""
    return math.ceil(float(_config("TIER1_RATE")) * int(_config("TIER1_CHECK_PRICE")))


def charge(job: Job, frames: int) -> None:
    transfer(account_book(job.account_id), escrow_book(job.id), job_price(frames), "escrow", job_id=job.id)


def pay_frame(frame: Frame) -> None:
    """The renderer of a newly verified frame earns the frame price (less for its own account's job)."""
    renderer: Worker | None = frame.worker
    job: Job = frame.job
    if renderer is None:
        return
    price = int(_config("FRAME_PRICE"))
    if renderer.account_id == job.account_id:
        price = int(price * _config("SELF_DEALING_RATE"))
    transfer(escrow_book(job.id), account_book(renderer.account_id), price, "render", cap=True, job_id=job.id,
             task_id=frame.task_id, worker_id=renderer.id, frame=frame.number)


def pay_check(check: Check) -> None:
    """A verifier whose verdict stands earns the check price (from the escrow, or the network pool)."""
    verifier: Worker | None = check.verifier
    if verifier is None or check.kind == "ringer":
        return
    price = int(_config({"spot": "SPOT_CHECK_PRICE", "tier1": "TIER1_CHECK_PRICE"}.get(check.kind, "CHECK_PRICE")))
    _pay_for_check(check, verifier, price, "check", frame=check.frame.number)


def pay_arbiter(check: Check, loser: Worker | None) -> None:
    """The arbiter is paid by the side it found wrong, as far as that side's balance goes."""
    arbiter: Worker | None = check.verifier
    if arbiter is None:
        return
    price = int(_config("CHECK_PRICE"))
    paid = 0
    if loser is not None:
        paid = transfer(account_book(loser.account_id), account_book(arbiter.account_id), price, "arbitration",
                        cap=True, job_id=check.job_id, check_id=check.id, worker_id=arbiter.id)
    _pay_for_check(check, arbiter, price - paid, "arbitration")


def _pay_for_check(check: Check, verifier: Worker, amount: int, reason: str, **refs: Any) -> int:
    """From the job's escrow while the job is active, above its render reserve; the rest from the network pool,
    as far as it has points. Returns what was paid."""
    if amount <= 0:
        return 0
    job: Job = check.frame.job
    to_book = account_book(verifier.account_id)
    refs = {"job_id": job.id, "check_id": check.id, "worker_id": verifier.id, **refs}
    paid = 0
    if job.state in JobState.ACTIVE:
        paid = transfer(escrow_book(job.id), to_book, amount, reason, cap=True, keep=render_reserve(job), **refs)
    return paid + transfer(NETWORK, to_book, amount - paid, reason, cap=True, **refs)


def render_reserve(job: Job) -> int:
    """What the escrow keeps for renders: the frame price of every frame of ``job`` not yet paid for (queued,
    rendering, or rendered and not yet accepted). A frame given back by a caught renderer counts again, its pay
    clawed back into the escrow as far as the renderer had it."""
    unpaid = db.session.execute(select(func.count()).select_from(Frame).where(
        Frame.job_id == job.id, Frame.state.in_(UNPAID))).scalar_one()
    return int(unpaid) * int(_config("FRAME_PRICE"))


def claw_back(renderer: Worker, job: Job, frames: list[int] | None = None, to_book: str | None = None) -> int:
    """Take back what ``renderer`` earned rendering ``job`` (only ``frames`` if given), as far as it has."""
    earned = _earned(renderer, job, "render", frames) - _earned(renderer, job, "clawback", frames)
    if to_book is None:
        to_book = escrow_book(job.id) if job.state in JobState.ACTIVE else account_book(job.account_id)
    return transfer(account_book(renderer.account_id), to_book, earned, "clawback", cap=True, job_id=job.id,
                    worker_id=renderer.id)


def _earned(renderer: Worker, job: Job, reason: str, frames: list[int] | None) -> int:
    query = select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.job_id == job.id, LedgerEntry.worker_id == renderer.id, LedgerEntry.reason == reason)
    if frames is not None and reason == "render":
        query = query.where(LedgerEntry.frame.in_(frames))
    return int(db.session.execute(query).scalar_one())


def forfeit_stake(worker: Worker, why: str) -> int:
    return transfer(account_book(worker.account_id), NETWORK, int(_config("STAKE")), "stake", cap=True,
                    worker_id=worker.id, memo=why[:200])


def cancel_fee(job: Job) -> int:
    """The owner cancels its job: the fee leaves the escrow for the network, as far as the escrow goes."""
    return transfer(escrow_book(job.id), NETWORK, int(_config("CANCEL_FEE")), "cancel_fee", cap=True, job_id=job.id)


def claim_price(frames: int) -> int:
    return frames * int(_config("CLAIM_PRICE"))


def check_claim_funds(account_id: int, frames: int) -> None:
    """402 ``insufficient_points`` now, before anything is written, if the account cannot pay for the claim."""
    available, price = balance(account_book(account_id)), claim_price(frames)
    if available < price:
        raise InsufficientPoints(available, price)


def hold_claim(claim: Claim, frames: int) -> None:
    """The claimant pays for the claim's re-renders up front, into the claim's book (402 if it cannot)."""
    transfer(account_book(claim.account_id), claim_book(claim.id), claim_price(frames), "claim_hold",
             job_id=claim.job_id, claim_id=claim.id)


def settle_claim(claim: Claim) -> int:
    """A decided claim's hold: back to the claimant if confirmed, to the network if rejected."""
    book = claim_book(claim.id)
    confirmed = claim.state == ClaimState.CONFIRMED
    return transfer(book, account_book(claim.account_id) if confirmed else NETWORK, balance(book),
                    "claim_refund" if confirmed else "claim_fee", cap=True, job_id=claim.job_id, claim_id=claim.id)


def refund(job: Job) -> int:
    """A finished job's unspent escrow goes back to the artist."""
    book = escrow_book(job.id)
    return transfer(book, account_book(job.account_id), balance(book), "refund", cap=True, job_id=job.id)


@event.listens_for(Account, "after_insert")
def _starting_grant(_mapper: Mapper[Account], connection: Connection, account: Account) -> None:
    """Every new account starts with the configured grant: an explicit entry from the mint."""
    amount = int(_config("STARTING_GRANT"))
    if amount > 0:
        connection.execute(insert(LedgerEntry).values(
            from_book=MINT, to_book=account_book(account.id), amount=amount, reason="grant", memo="starting grant",
            created_at=account.created_at))
