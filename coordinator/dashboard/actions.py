"""State-changing endpoints, CSRF-checked (security.py): job actions for admins and the job's owner (anyone
else's job is a 404, as in the REST API), worker actions for admins only (403 for anyone else, whatever their
page shows). Each is a thin call into the backend's job and worker controls, which refuse an action the state
does not allow (409, or 400 for a bad priority, 402 when a requeue cannot be paid) with a message the page
shows. The acting account's name goes with each action into the event log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import jsonify, request
from framehive.protocol.json_numbers import is_int

from .. import job_control, worker_control
from ..db import db
from ..models import Job, Worker
from .actions_allowed import may_act_on_job
from .blueprint import bp
from .jobs_data import job_rows
from .sessions import admin_action, current_viewer, data_view, error

JOB_ACTIONS: dict[str, Callable[..., Any]] = {
    "pause": job_control.pause_job,
    "resume": job_control.resume_job,
    "requeue": job_control.requeue_job,
    "cancel": job_control.cancel_job,
}
WORKER_ACTIONS: dict[str, Callable[..., Any]] = {
    "suspend": worker_control.suspend_worker,
    "unsuspend": worker_control.unsuspend_worker,
    "unblock": worker_control.unblock_worker,
}


@bp.post("/actions/jobs/<int:job_id>/<action>")
@data_view
def job_action(job_id: int, action: str):
    job = db.session.get(Job, job_id)
    if job is None or not may_act_on_job(current_viewer(), job):
        return error(404, "not_found", f"no job {job_id}")
    by = current_viewer().account_name
    if action == "priority":
        job_control.set_priority(job, (request.get_json(silent=True) or {}).get("priority"), by=by)
    elif action in JOB_ACTIONS:
        JOB_ACTIONS[action](job, by=by)
    else:
        return error(404, "unknown_action", f"no job action {action!r}")
    db.session.refresh(job)
    return jsonify(job_rows(current_viewer(), [job])[0])


@bp.post("/actions/workers/<int:worker_id>/<action>")
@admin_action
def worker_action(worker_id: int, action: str):
    worker = db.session.get(Worker, worker_id)
    if worker is None:
        return error(404, "not_found", f"no worker {worker_id}")
    if action not in WORKER_ACTIONS:
        return error(404, "unknown_action", f"no worker action {action!r}")
    by = current_viewer().account_name
    job_id = (request.get_json(silent=True) or {}).get("job") if action == "unblock" else None
    if job_id is not None:  # one job's blocklist; without it, every job's
        job = db.session.get(Job, job_id) if is_int(job_id) else None
        if job is None:
            return error(404, "not_found", f"no job {job_id!r}")
        worker_control.unblock_worker(worker, job, by=by)
    else:
        WORKER_ACTIONS[action](worker, by=by)
    db.session.refresh(worker)
    return jsonify({"id": worker.id, "name": worker.name, "suspended": worker.suspended})
