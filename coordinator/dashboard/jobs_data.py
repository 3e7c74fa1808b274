"""Jobs as the dashboard shows them: one row shape for the table and the detail page's header."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select

from ..auth import Caller
from ..db import db
from ..ledger import escrow_book
from ..models import Account, Frame, Job, Task, now
from ..payments import job_price
from ..states import FrameState, JobState, TaskState
from ..timefmt import iso
from . import books, scope
from .actions_allowed import job_actions

# The table shows the newest jobs that match the filters, at most this many.
LIST_LIMIT = 200


def list_jobs(viewer: Caller, state: str = "", owner: str = "", search: str = "") -> list[dict[str, Any]]:
    """The newest jobs ``viewer`` may see, filtered by state (or ``active``/``final``), owner and name."""
    query = scope.jobs(viewer).order_by(Job.id.desc()).limit(LIST_LIMIT)
    if state == "active":
        query = query.where(Job.state.not_in(JobState.FINAL))
    elif state == "final":
        query = query.where(Job.state.in_(JobState.FINAL))
    elif state:
        query = query.where(Job.state == state)
    if owner:
        query = query.join(Account, Job.account_id == Account.id).where(Account.name == owner)
    if search:
        query = query.where(Job.name.contains(search, autoescape=True))
    return job_rows(viewer, db.session.execute(query).scalars().all())


def job_rows(viewer: Caller, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    ids = [job.id for job in jobs]
    counts = frame_counts(ids)
    escrows = books.balances([escrow_book(i) for i in ids])
    retrying = set(db.session.execute(select(Task.job_id).where(
        Task.job_id.in_(ids), or_(Task.failures > 0, Task.state == TaskState.FAILED))).scalars()) if ids else set()
    at = now()
    return [job_row(viewer, job, counts.get(job.id, Counter()), escrows[escrow_book(job.id)], job.id in retrying, at)
            for job in jobs]


def frame_counts(job_ids: Sequence[int]) -> dict[int, Counter[str]]:
    """Frames per state, per job, in one query."""
    counts: dict[int, Counter[str]] = {}
    if job_ids:
        rows = db.session.execute(select(Frame.job_id, Frame.state, func.count()).where(Frame.job_id.in_(job_ids))
                                  .group_by(Frame.job_id, Frame.state))
        for job_id, state, count in rows:
            counts.setdefault(job_id, Counter())[state] = int(count)
    return counts


def job_row(viewer: Caller, job: Job, counts: Counter[str], escrow: int, retrying: bool, at: float
            ) -> dict[str, Any]:
    total = sum(counts.values())
    verified = counts[FrameState.VERIFIED]
    rendered = verified + counts[FrameState.RENDERED]
    return {
        "id": job.id, "name": job.name, "owner": job.account.name, "state": job.state, "priority": job.priority,
        "policy": job.policy, "frames": job.frames_spec, "resolution": [job.resolution_x, job.resolution_y],
        "total": total, "verified": verified, "rendered": rendered, "counts": dict(counts),
        "price": job_price(total), "escrow": escrow, "eta": eta(job, rendered, total, at), "error": job.error,
        "created_at": iso(job.created_at), "started_at": iso(job.started_at), "finished_at": iso(job.finished_at),
        "actions": job_actions(viewer, job, retrying),
    }


def eta(job: Job, rendered: int, total: int, at: float) -> float | None:
    """Seconds left for a running job at the pace it has kept since it started (None if unknown)."""
    if job.state != JobState.RUNNING or job.started_at is None or rendered == 0 or rendered >= total:
        return None
    return (at - job.started_at) / rendered * (total - rendered)
