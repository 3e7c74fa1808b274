"""Workers: owners see their own agents, admins see all."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import select

from .. import paging, worker_confinement
from ..auth import current_caller, require
from ..db import db
from ..models import Task, Worker
from ..states import TaskState

bp = Blueprint("workers", __name__)


def worker_json(w: Worker, leased: dict[int, int] | None = None) -> dict[str, Any]:
    """A worker as its owner and admins see it; ``leased`` maps worker ids to the task each holds (looked up
    for this worker alone when not given)."""
    if leased is None:
        leased = current_tasks(w.id)
    return {"id": w.id, "name": w.name, "owner": w.account.name, "online": w.online, "device": w.device,
            "devices": w.devices, "blender_version": w.blender_version, "threads": w.threads,
            "current_task": leased.get(w.id), "last_seen": w.last_seen, "roles": w.roles,
            "trust": w.trust, "checks_passed": w.checks_passed, "checks_failed": w.checks_failed,
            "times_caught": w.times_caught, "suspended": w.suspended,
            "paused": w.pause_reason is not None, "pause_reason": w.pause_reason,
            "confinement": w.confinement, "confined": worker_confinement.confined(w.confinement)}


def current_tasks(worker_id: int | None = None) -> dict[int, int]:
    """Worker id → the task it holds (every worker's, or one's)."""
    query = select(Task.worker_id, Task.id).where(Task.state == TaskState.LEASED)
    if worker_id is not None:
        query = query.where(Task.worker_id == worker_id)
    return {worker: task for worker, task in db.session.execute(query).all() if worker is not None}  # all leased


@bp.get("/workers")
@require("user", "worker")
def list_workers():
    """The caller's agents (every agent for admins), oldest first, a page at a time."""
    caller = current_caller()
    query = select(Worker)
    if not caller.is_admin:
        query = query.filter_by(account_id=caller.account_id)
    page = paging.paginate(query, Worker.id, newest_first=False)
    leased = current_tasks()
    return jsonify({"workers": [worker_json(w, leased) for w in page.items], "next": page.next})
