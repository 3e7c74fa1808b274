"""The network at a glance, for the dashboard's overview and ``GET /api/v1/stats``.

For an admin (``account=None``) the numbers are the whole network's; for an account they are of its own jobs
and workers, like everything else it sees: its online workers, the frames of its jobs or rendered by its
workers, its jobs' queue, the checks of its jobs or of frames its workers rendered, and its points.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, true

from . import events, ledger
from .db import db
from .models import Account, Check, Frame, Job, Task, Worker, now
from .states import CheckState, JobState, TaskState
from .verification.leasing import AFTER_THE_JOB

# Frames per minute is the number of frames verified over this many minutes, divided by it.
WINDOW_MINUTES = 10
RECENT_EVENTS = 20


def overview(account: Account | None) -> dict[str, Any]:
    """JSON-serialisable statistics: the whole network's (``None``, for admins) or one account's."""
    verified = frames_verified_since(now() - WINDOW_MINUTES * 60, account)
    jobs = jobs_by_state(account)
    return {
        "scope": "network" if account is None else account.name,
        "workers_online": workers_online(account),
        "window_minutes": WINDOW_MINUTES,
        "frames_verified": verified,
        "frames_per_minute": round(verified / WINDOW_MINUTES, 2),
        "queue_depth": queue_depth(account),
        "checks_waiting": checks_waiting(account),
        "jobs_waiting": jobs_waiting(account),
        "jobs_running": jobs.get(JobState.RUNNING, 0),
        "jobs_queued": jobs.get(JobState.QUEUED, 0),
        "jobs_paused": jobs.get(JobState.PAUSED, 0),
        "verification": verification(account),
        "points_in_circulation": points(account),
        "recent_events": [events.event_json(e) for e in events.recent(RECENT_EVENTS, account)],
    }


def workers_online(account: Account | None) -> dict[str, Any]:
    """Online workers: how many, and how many per device kind (CPU, CUDA, OPTIX, ...)."""
    rows = db.session.execute(
        select(Worker.device, func.count()).where(Worker.online.is_(True), _own_worker(Worker.id, account))
        .group_by(Worker.device).order_by(Worker.device)).all()
    by_device = {device: int(count) for device, count in rows}
    return {"total": sum(by_device.values()), "by_device": by_device}


def frames_verified_since(since: float, account: Account | None) -> int:
    """Frames that became verified at or after ``since`` (UNIX seconds) and are verified still."""
    return int(db.session.execute(
        select(func.count()).select_from(Frame)
        .where(Frame.verified_at >= since, or_(_own_job(Frame.job_id, account), _own_worker(Frame.worker_id, account)))
    ).scalar_one())


def queue_depth(account: Account | None) -> int:
    """Tasks waiting for a worker (those of paused jobs do not wait: nobody may take them)."""
    return int(db.session.execute(
        select(func.count()).select_from(Task).join(Job, Job.id == Task.job_id)
        .where(Task.state == TaskState.QUEUED, Job.state.in_(JobState.DISPATCHABLE), _own_job(Job.id, account))
    ).scalar_one())


def checks_waiting(account: Account | None) -> dict[str, Any]:
    """Checks waiting for a verifier (leasing.claim_check would offer them): how many, and how many per kind."""
    rows = db.session.execute(
        select(Check.kind, func.count()).join(Job, Job.id == Check.job_id)
        .where(Check.state == CheckState.QUEUED, Job.state.in_(JobState.ACTIVE) | Check.kind.in_(AFTER_THE_JOB),
               or_(_own_job(Check.job_id, account), _own_worker(Check.renderer_id, account)))
        .group_by(Check.kind).order_by(Check.kind)).all()
    by_kind = {kind: int(count) for kind, count in rows}
    return {"total": sum(by_kind.values()), "by_kind": by_kind}


def jobs_waiting(account: Account | None) -> int:
    """Live jobs that say why they wait (Job.waiting: work or checks nobody online may take)."""
    return int(db.session.execute(
        select(func.count()).select_from(Job).where(Job.waiting.is_not(None), Job.state.in_(JobState.ACTIVE),
                                                    _own_job(Job.id, account))).scalar_one())


def jobs_by_state(account: Account | None) -> dict[str, int]:
    rows = db.session.execute(
        select(Job.state, func.count()).where(_own_job(Job.id, account)).group_by(Job.state)).all()
    return {state: int(count) for state, count in rows}


def verification(account: Account | None) -> dict[str, Any]:
    """Decided checks (every kind: region and spot checks, arbitrations, ringers, audits, claims): passed,
    failed, and the pass rate (None before the first verdict)."""
    rows = db.session.execute(
        select(Check.verdict, func.count()).where(
            Check.verdict.is_not(None), or_(_own_job(Check.job_id, account), _own_worker(Check.renderer_id, account)))
        .group_by(Check.verdict)).all()
    verdicts = {verdict: int(count) for verdict, count in rows}
    passed, failed = verdicts.get("pass", 0), verdicts.get("fail", 0)
    return {"passed": passed, "failed": failed,
            "pass_rate": round(passed / (passed + failed), 4) if passed + failed else None}


def points(account: Account | None) -> int:
    """The network: every point in accounts, escrows and the pool (all ever granted). An account: its balance
    plus the escrow of its live jobs."""
    if account is None:
        return ledger.circulating()
    live = db.session.execute(select(Job.id).where(Job.account_id == account.id,
                                                   Job.state.in_(JobState.ACTIVE))).scalars()
    return ledger.balance(ledger.account_book(account.id)) + sum(ledger.balance(ledger.escrow_book(j)) for j in live)


def _own_job(job_id: Any, account: Account | None) -> ColumnElement[bool]:
    if account is None:
        return true()
    return job_id.in_(select(Job.id).where(Job.account_id == account.id))


def _own_worker(worker_id: Any, account: Account | None) -> ColumnElement[bool]:
    if account is None:
        return true()
    return worker_id.in_(select(Worker.id).where(Worker.account_id == account.id))

