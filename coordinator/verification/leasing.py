"""Leasing checks to verifiers: another owner than anyone the check excludes, not suspended, able to verify.

Like task claims, a claim is a compare-and-set ``UPDATE … WHERE state='queued'``. Ringers are made here:
now and then an idle verifier gets a region whose answer the coordinator already knows, in a message that
looks exactly like any other check.
"""

from __future__ import annotations

import secrets

from flask import current_app
from sqlalchemy import func, select, update

from ..db import db
from ..models import Check, Frame, Job, Worker, now
from ..states import FrameState, JobState
from ..transitions import LostLease
from . import keys
from .checks import new_check

CLAIM_CANDIDATES = 50
# Checks that still matter once their job is over: they decide who lied, not which frames the artist gets.
AFTER_THE_JOB = ("ringer", "audit", "arbitration", "claim")
_rng = secrets.SystemRandom()


def can_verify(worker: Worker) -> bool:
    return "verify" in (worker.roles or []) and not worker.suspended


def claim_check(worker: Worker) -> Check | None:
    """Lease the oldest open check this worker may take (or, sometimes, a ringer). Commits."""
    if not can_verify(worker):
        return None
    candidates = db.session.execute(
        select(Check).join(Job, Job.id == Check.job_id)
        .where(Check.state == "queued", Job.state.in_(JobState.ACTIVE) | Check.kind.in_(AFTER_THE_JOB))
        .order_by(Check.id).limit(CLAIM_CANDIDATES)
    ).scalars().all()
    for check in candidates:
        if worker.account_id in check.excluded_accounts or check.renderer_id == worker.id:
            continue
        if check.kind == "arbitration" and not may_arbitrate(worker):
            continue
        if check.kind == "claim" and not worker.account.trusted:
            continue  # claims are settled by the network's own trusted nodes
        # Ringers stand in for real work only (never for idleness), so they look like any other check and
        # their share of a verifier's work is the configured rate.
        if _rng.random() < current_app.config["FRAMEHIVE_RINGER_RATE"]:
            ringer = make_ringer(worker, like=check)
            if ringer is not None:
                return _lease(ringer.id, worker)
        leased = _lease(check.id, worker)
        if leased is not None:
            return leased
    db.session.commit()
    return None


def may_arbitrate(worker: Worker) -> bool:
    """Arbiters are trusted nodes, or veterans: never caught, and trusted by their record (ARBITER_MIN_TRUST)."""
    if worker.account.trusted:
        return True
    return worker.times_caught == 0 and worker.trust >= int(current_app.config["FRAMEHIVE_ARBITER_MIN_TRUST"])


def _lease(check_id: int, worker: Worker) -> Check | None:
    won = db.session.execute(
        update(Check).where(Check.id == check_id, Check.state == "queued")
        .values(state="leased", verifier_id=worker.id, attempt=Check.attempt + 1,
                lease_expires=now() + float(current_app.config["FRAMEHIVE_LEASE_TIMEOUT"]))
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return db.session.get(Check, check_id, populate_existing=True) if won == 1 else None


def make_ringer(worker: Worker, like: Check | None = None) -> Check | None:
    """A fresh region of a frame a verifier already confirmed, rendered by another owner. No commit.

    The region is the size (as a share of the frame) of ``like``, the check it stands in for, so that ringers
    are as many spots and regions as real checks are.
    """
    count = db.session.execute(_ringer_frames(worker).with_only_columns(func.count())).scalar_one()
    if count == 0:
        return None
    frame = db.session.execute(_ringer_frames(worker).offset(_rng.randrange(count)).limit(1)).scalar_one()
    job: Job = frame.job
    fraction = keys.REGION_FRACTION
    if like is not None:
        _, _, w, h = like.region
        fraction = min(1.0, w * h / (like.frame.job.resolution_x * like.frame.job.resolution_y))
    region = keys.draw_region(_rng, job.resolution_x, job.resolution_y, fraction).as_list()
    return new_check("ringer", frame, region, [], renderer=frame.worker)


def _ringer_frames(worker: Worker):  # type: ignore[no-untyped-def]
    return (select(Frame).join(Job, Job.id == Frame.job_id).join(Worker, Worker.id == Frame.worker_id)
            .where(Frame.state == FrameState.VERIFIED, Frame.verified_by == "check",
                   Job.files_collected_at.is_(None),  # a released job's scene and pixels are gone
                   Worker.account_id != worker.account_id))


def release(check: Check) -> None:
    """Back to the queue (the verifier disconnected, failed, or its lease ran out). No commit."""
    check.state = "queued"
    check.lease_expires = None


def expire() -> list[LostLease]:
    """Requeue checks whose verifier went silent. Commits."""
    lost = []
    expired = select(Check).where(Check.state == "leased", Check.lease_expires < now())
    for check in db.session.execute(expired).scalars():
        lost.append(LostLease(0, check.verifier_id or 0, "check lease expired", check_id=check.id))
        release(check)
    db.session.commit()
    return lost


def release_verifier(worker_id: int) -> None:
    """The verifier disconnected: its checks go back to the queue. Commits."""
    for check in db.session.execute(select(Check).filter_by(verifier_id=worker_id, state="leased")).scalars():
        release(check)
    db.session.commit()


def held_check(worker_id: int, check_id: int, attempt: int | None = None) -> Check | None:
    check = db.session.get(Check, check_id)
    if check is None or check.state != "leased" or check.verifier_id != worker_id:
        return None
    if attempt is not None and check.attempt != attempt:
        return None
    return check
