"""Workers: owners see their own agents, admins see all."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import select

from ..auth import current_caller, require
from ..db import db
from ..models import Task, Worker
from ..states import TaskState

bp = Blueprint("workers", __name__)


@bp.get("/workers")
@require("user", "worker")
def list_workers():  # type: ignore[no-untyped-def]
    caller = current_caller()
    query = select(Worker).order_by(Worker.id)
    if not caller.is_admin:
        query = query.filter_by(account_id=caller.account_id)
    leased = dict(db.session.execute(
        select(Task.worker_id, Task.id).where(Task.state == TaskState.LEASED)).all())
    return jsonify({"workers": [
        {"id": w.id, "name": w.name, "owner": w.account.name, "online": w.online, "device": w.device,
         "devices": w.devices, "blender_version": w.blender_version, "threads": w.threads,
         "current_task": leased.get(w.id), "last_seen": w.last_seen, "roles": w.roles,
         "trust": w.trust, "checks_passed": w.checks_passed, "checks_failed": w.checks_failed,
         "times_caught": w.times_caught, "suspended": w.suspended}
        for w in db.session.execute(query).scalars()
    ]})
