"""Workers as the dashboard shows them: state (paused and why), confinement, hardware, current work, pace, trust,
earnings, blocklists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from .. import worker_confinement
from ..auth import Caller
from ..db import db
from ..ledger import account_book
from ..models import Check, Frame, JobBlock, LedgerEntry, Task, Worker, now
from ..states import CheckState, TaskState
from ..timefmt import iso
from . import scope
from .actions_allowed import worker_actions

# Frames per hour are counted over this window (frames rendered in the last hour).
PACE_WINDOW = 3600.0


def list_workers(viewer: Caller) -> list[dict[str, Any]]:
    workers = db.session.execute(scope.workers(viewer).order_by(Worker.online.desc(), Worker.id)).scalars().all()
    ids = [w.id for w in workers]
    if not ids:
        return []
    tasks = {w: (t, j, f) for w, t, j, f in db.session.execute(
        select(Task.worker_id, Task.id, Task.job_id, Task.frames_spec)
        .where(Task.state == TaskState.LEASED, Task.worker_id.in_(ids)))}
    checks = {w: (c, j) for w, c, j in db.session.execute(
        select(Check.verifier_id, Check.id, Check.job_id)
        .where(Check.state == CheckState.LEASED, Check.verifier_id.in_(ids)))}
    pace = dict(db.session.execute(
        select(Frame.worker_id, func.count()).where(Frame.worker_id.in_(ids), Frame.rendered_at > now() - PACE_WINDOW)
        .group_by(Frame.worker_id)).all())
    blocks: dict[int, list[int]] = {}
    for worker_id, job_id in db.session.execute(
            select(JobBlock.worker_id, JobBlock.job_id).where(JobBlock.worker_id.in_(ids)).order_by(JobBlock.job_id)):
        blocks.setdefault(worker_id, []).append(job_id)
    earned = earnings(workers)
    return [{
        "id": w.id, "name": w.name, "owner": w.account.name, "online": w.online, "suspended": w.suspended,
        "paused": w.pause_reason is not None, "pause_reason": w.pause_reason,
        # The agent's own word (its hello): shown so an owner sees a misconfigured machine, not as a guarantee.
        "confined": worker_confinement.confined(w.confinement),
        "confinement": worker_confinement.summary(w.confinement),
        "blender_version": w.blender_version, "device": w.device, "threads": w.threads, "roles": w.roles or [],
        "devices": [d.get("name", "") for d in w.devices or [] if isinstance(d, dict)],
        "current": current_work(tasks.get(w.id), checks.get(w.id)),
        "frames_per_hour": int(pace.get(w.id, 0)), "trust": w.trust, "checks_passed": w.checks_passed,
        "checks_failed": w.checks_failed, "pass_rate": pass_rate(w), "times_caught": w.times_caught,
        "earned": earned.get(w.id, 0), "blocked_jobs": blocks.get(w.id, []), "last_seen": iso(w.last_seen),
        "actions": worker_actions(viewer, w, bool(blocks.get(w.id))),
    } for w in workers]


def current_work(task: tuple[int, int, str] | None, check: tuple[int, int] | None) -> dict[str, Any] | None:
    if task is not None:
        return {"kind": "task", "id": task[0], "job": task[1], "frames": task[2]}
    if check is not None:
        return {"kind": "check", "id": check[0], "job": check[1]}
    return None


def pass_rate(worker: Worker) -> float | None:
    """Share of its checked work that passed (None before its first check)."""
    checked = worker.checks_passed + worker.checks_failed
    return worker.checks_passed / checked if checked else None


def earnings(workers: Sequence[Worker]) -> dict[int, int]:
    """Net points each worker brought its owner: paid renders and checks, less what was clawed back."""
    ids = [w.id for w in workers]
    net: dict[int, int] = dict.fromkeys(ids, 0)
    owner_books = {w.id: account_book(w.account_id) for w in workers}
    rows = db.session.execute(select(LedgerEntry.worker_id, LedgerEntry.from_book, LedgerEntry.to_book,
                                     func.sum(LedgerEntry.amount))
                              .where(LedgerEntry.worker_id.in_(ids))
                              .group_by(LedgerEntry.worker_id, LedgerEntry.from_book, LedgerEntry.to_book))
    for worker_id, from_book, to_book, amount in rows:
        if worker_id is None:  # never: the query asks for these workers' entries
            continue
        if to_book == owner_books[worker_id]:
            net[worker_id] += int(amount)
        elif from_book == owner_books[worker_id]:
            net[worker_id] -= int(amount)
    return net
