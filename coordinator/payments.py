"""Who earns what, as ledger transfers. No commits: the caller's transaction holds them.

- Submit: the job's price goes from the artist's account into the job's escrow (402 if short).
- A verified frame pays its renderer the frame price (a reduced rate on its own account's job).
- A check pays its verifier when its verdict stands (a spot check, a small region, pays less); an
  arbitration is paid by the loser (what it has), the rest from escrow. Ringers are unpaid (verifiers
  cannot tell them apart, so they simply lower the expected pay per check); audits of finished jobs are
  paid by the network pool while it has points.
- A caught renderer gives back what it earned in the job (to the escrow, or to the artist once the job is
  over) and forfeits a stake to the network; a caught verifier forfeits a stake.
- When a job ends, what is left in its escrow goes back to the artist; when its owner cancels it, a small fee
  goes to the network first (creating and cancelling jobs must not be free: each leaves rows behind).
- A claim holds its price (per disputed frame: a whole-frame render on a trusted node) from the claimant until
  it is decided: given back if confirmed, kept by the network (which pays for the claim's checks of finished
  jobs) if rejected.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import event, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper

from . import config
from .db import db
from .ledger import MINT, NETWORK, InsufficientPoints, account_book, balance, claim_book, escrow_book, transfer
from .models import Account, Check, Claim, Frame, Job, LedgerEntry, Worker
from .states import ClaimState, JobState


def _config(name: str) -> float:
    try:
        return current_app.config[f"FRAMEHIVE_{name}"]
    except RuntimeError:  # outside an app (a script creating accounts): the defaults
        return getattr(config, name)


def job_price(frames: int) -> int:
    return frames * int(_config("FRAME_PRICE") + _config("CHECK_PRICE"))


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
    job: Job = check.frame.job
    source = escrow_book(job.id) if job.state in JobState.ACTIVE else NETWORK
    price = int(_config("SPOT_CHECK_PRICE" if check.kind == "spot" else "CHECK_PRICE"))
    transfer(source, account_book(verifier.account_id), price, "check", cap=True,
             job_id=job.id, check_id=check.id, worker_id=verifier.id, frame=check.frame.number)


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
    if paid < price:
        job: Job = check.frame.job
        source = escrow_book(job.id) if job.state in JobState.ACTIVE else NETWORK
        transfer(source, account_book(arbiter.account_id), price - paid, "arbitration", cap=True,
                 job_id=check.job_id, check_id=check.id, worker_id=arbiter.id)


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
