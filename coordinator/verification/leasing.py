"""Leasing checks to verifiers: who may take which check, and when, is eligibility.py's (another owner than
anyone the check excludes, of the renderer's device class first, every wait bounded).

Like task claims, a claim is a compare-and-set ``UPDATE … WHERE state='queued'``. Now and then a verifier
gets a ringer (ringers.py) instead of the check it would have got: a second opinion on that very check, which
then waits for another owner.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, cast

from flask import current_app
from sqlalchemy import CursorResult, select, tuple_, update

from ..db import db, lock
from ..models import Check, Job, Worker, now
from ..states import CheckState, JobState
from ..transitions import LostLease, move_where
from .eligibility import can_verify, may_take
from .handles import new_handle
from .ringers import make_ringer

CLAIM_CANDIDATES = 50
# Checks that still matter once their job is over: they decide who lied, not which frames the artist gets.
AFTER_THE_JOB = ("ringer", "audit", "arbitration", "claim")
_rng = secrets.SystemRandom()
#: The reason of a check lease that ran out (expire), which the reaper logs with what it knows of the agent.
EXPIRED = "check lease expired"


def claim_check(worker: Worker) -> Check | None:
    """Lease the oldest open check this worker may take (or, sometimes, a ringer). Commits."""
    check = CheckClaims().claim(worker)
    db.session.commit()
    return check


class CheckClaims:
    """Claims of checks by one agent after another in one transaction (the dispatcher's pass leases to ``agents``
    agents in one: dispatch.Dispatcher._lease_to). The open checks are read once: a check leased is taken off the
    list (nothing else a lease changes is read from it: the eligibility rules read other leases of the frame from
    the database), and the list holds one more check per agent after the first, so each agent still looks at the
    CLAIM_CANDIDATES oldest open checks, as it would alone. An agent that may take none of them costs no query, and
    the checks' frames, jobs and renderers that eligibility looks at stay loaded."""

    def __init__(self, agents: int = 1) -> None:
        self._agents = agents
        self._open: list[Check] | None = None

    def claim(self, worker: Worker) -> Check | None:
        """Lease the oldest open check this worker may take (or, sometimes, a ringer). No commit."""
        if not can_verify(worker):
            return None
        if self._open is None:
            self._open = list(db.session.execute(
                select(Check).join(Job, Job.id == Check.job_id)
                .where(Check.state == CheckState.QUEUED,
                       Job.state.in_(JobState.ACTIVE) | Check.kind.in_(AFTER_THE_JOB))
                .order_by(Check.id).limit(CLAIM_CANDIDATES + self._agents - 1)
            ).scalars())
        for check in list(self._open):
            if not may_take(worker, check):  # another owner, same class first, arbiters: eligibility.py
                continue
            # Ringers stand in for real work only (never for idleness), so they look like any other check and
            # their share of a verifier's work is the configured rate; one needs nothing already verified, so when
            # it comes says nothing about the verifier's pace.
            if _rng.random() < current_app.config["FRAMEHIVE_RINGER_RATE"]:
                ringer = make_ringer(worker, like=check)  # the check stays queued; ``like`` now excludes the worker
                if ringer is not None:
                    return _lease(ringer.id, worker)
            leased = _lease(check.id, worker)
            self._open.remove(check)  # leased now, or (another coordinator) before
            if leased is not None:
                return leased
        return None


def _lease_end() -> float:
    """When a check lease given or renewed now runs out."""
    return now() + float(current_app.config["FRAMEHIVE_LEASE_TIMEOUT"])


def _lease(check_id: int, worker: Worker) -> Check | None:
    """The compare-and-set lease of one check: the check as leased (read again), or None if it was no longer
    queued. No commit."""
    won = move_where(Check, CheckState.QUEUED, CheckState.LEASED, Check.id == check_id, verifier_id=worker.id,
                     attempt=Check.attempt + 1, handle=new_handle(),
                     lease_expires=_lease_end())
    leased = db.session.get(Check, check_id, populate_existing=True) if won == 1 else None
    if leased is not None and leased.kind == "arbitration":
        _exclude_from_the_region(leased, worker.account_id)
    return leased


def _exclude_from_the_region(arbitration: Check, account_id: int) -> None:
    """The arbiter's owner looks at the disputed region now: no queued check of the same frame and region may show
    it to that owner again. A failed ringer's dispute can be leased while the real check it stood in for is still
    queued, whose exclusions were fixed when the ringer was made (eligibility.lookers covers the other order:
    the real check leased first). Only arbitrations: a statement a lease for every check otherwise."""
    twins = db.session.execute(select(Check).where(
        Check.frame_id == arbitration.frame_id, Check.state == CheckState.QUEUED, Check.id != arbitration.id)).scalars()
    for twin in twins:
        if list(twin.region) == list(arbitration.region) and account_id not in twin.excluded_accounts:
            lock(twin)  # another lease may be changing its exclusions now (a ringer's: ringers.make_ringer)
            twin.excluded_accounts = sorted({*twin.excluded_accounts, account_id})


def release(check: Check, expired_before: float | None = None) -> bool:
    """Back to the queue (the verifier disconnected, failed, or its lease ran out), if the check is still leased as
    this session read it: a compare-and-set ``UPDATE … WHERE state='leased'`` on its verifier and attempt (and, with
    ``expired_before``, on a lease that ran out before then). On PostgreSQL a result judged, or a lease renewed, by
    a transaction that commits after the check was read wins, and the check stays as that left it: done, it is
    never queued again, leased again and paid twice. Returns whether it went back. No commit."""
    same_lease = [Check.id == check.id, Check.verifier_id == check.verifier_id, Check.attempt == check.attempt]
    if expired_before is not None:
        same_lease.append(Check.lease_expires < expired_before)
    won = move_where(Check, CheckState.LEASED, CheckState.QUEUED, *same_lease)
    db.session.expire(check, ["state", "lease_expires"])  # read again from the row: released or not
    return won == 1


def renew(worker_id: int, handle: str) -> bool:
    """Extend the lease ``worker_id`` holds on the check named ``handle``: one compare-and-set UPDATE, no row read.
    False, and nothing written, if it does not hold it. Commits."""
    renewed = cast(CursorResult[Any], db.session.execute(
        update(Check).where(Check.state == CheckState.LEASED, Check.handle == handle, Check.verifier_id == worker_id)
        .values(lease_expires=_lease_end())
        .execution_options(synchronize_session=False))).rowcount
    db.session.commit()
    return bool(renewed)


def renew_held(held: list[tuple[int, int, str]]) -> None:
    """Extend the leases (check id, verifier id, handle) whose verifier still holds them, in one UPDATE. No commit.
    channel_upkeep's, for every connected agent's check."""
    if held:
        db.session.execute(update(Check).where(Check.state == CheckState.LEASED,
                                               tuple_(Check.id, Check.verifier_id, Check.handle).in_(held))
                           .values(lease_expires=_lease_end())
                           .execution_options(synchronize_session=False))


def expire(still_working: Callable[[int, str, int], bool] | None = None) -> list[LostLease]:
    """Requeue checks whose verifier went silent. Commits, one check at a time (a release waiting for a check's row
    holds no other). ``still_working(verifier id, "check", check id)`` (Dispatcher.still_working): a lease whose
    agent is connected here with the check in hand and alive is renewed instead."""
    lost = []
    expired = select(Check).where(Check.state == CheckState.LEASED, Check.lease_expires < now())
    for check in db.session.execute(expired).scalars().all():
        verifier_id, ran_out = check.verifier_id or 0, check.lease_expires or 0.0
        if still_working is not None and check.handle and still_working(verifier_id, "check", check.id) \
                and renew(verifier_id, check.handle):
            current_app.logger.info("check %s: the lease of worker %s ran out while its agent works; renewed",
                                    check.id, verifier_id)
            continue
        if release(check, expired_before=now()):
            current_app.logger.warning("check %s: the lease of worker %s ran out %.1f s ago; queued again", check.id,
                                       verifier_id, now() - ran_out)
            lost.append(LostLease(0, verifier_id, EXPIRED, check_id=check.id))
        db.session.commit()
    db.session.commit()
    return lost


def release_verifier(worker_id: int) -> None:
    """The verifier disconnected: its checks go back to the queue. Commits, one check at a time."""
    held = select(Check).filter_by(verifier_id=worker_id, state=CheckState.LEASED)
    for check in db.session.execute(held).scalars().all():
        release(check)
        db.session.commit()
    db.session.commit()
