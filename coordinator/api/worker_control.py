"""Worker controls over HTTP (admins only): suspend, unsuspend, and lift a worker's per-job blocklists."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from .. import worker_control
from ..auth import current_caller, require
from ..db import db
from ..errors import ApiError
from ..ids import lenient_id
from ..models import Job, Worker
from .workers import worker_json

bp = Blueprint("worker_control", __name__)


def _worker(worker_id: int) -> Worker:
    worker = db.session.get(Worker, worker_id)
    if worker is None:
        raise ApiError(404, "not_found", f"no worker {worker_id}")
    return worker


@bp.post("/admin/workers/<int:worker_id>/suspend")
@require("admin")
def suspend(worker_id: int):
    worker = _worker(worker_id)
    worker_control.suspend_worker(worker, by=current_caller().account_name)
    return jsonify(worker_json(worker))


@bp.post("/admin/workers/<int:worker_id>/unsuspend")
@require("admin")
def unsuspend(worker_id: int):
    worker = _worker(worker_id)
    worker_control.unsuspend_worker(worker, by=current_caller().account_name)
    return jsonify(worker_json(worker))


@bp.delete("/admin/workers/<int:worker_id>/blocks")
@require("admin")
def unblock(worker_id: int):
    worker = _worker(worker_id)
    job = None
    if "job" in request.args:
        job_id = lenient_id(request.args.get("job"))
        job = db.session.get(Job, job_id) if job_id is not None else None
        if job is None:
            raise ApiError(404, "not_found", f"no job {request.args['job']}")
    removed = worker_control.unblock_worker(worker, job, by=current_caller().account_name)
    return jsonify({"worker": worker_id, "job": job.id if job else None, "removed": removed})
