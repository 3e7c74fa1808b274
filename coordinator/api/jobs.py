"""Jobs: submit, list, inspect (with per-frame and per-task state; a poll sends what changed: job_changes.py),
cancel, and download frames."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select

from .. import capabilities, job_control, ledger, paging, payments
from ..auth import current_caller, require
from ..db import db
from ..errors import ApiError
from ..models import Check, Frame, Job, TaskFailure
from ..states import FrameState
from ..storage_access import serve
from ..submission import create_job
from ..timefmt import iso
from . import job_changes

bp = Blueprint("jobs", __name__)


def job_summary(job: Job) -> dict[str, Any]:
    counts = Counter(f.state for f in job.frames)
    return {
        "id": job.id,
        "name": job.name,
        "owner": job.account.name,
        "state": job.state,
        "priority": job.priority,
        "chunk": job.chunk,
        "frames": job.frames_spec,
        "total": len(job.frames),
        "counts": {state: counts.get(state, 0) for state in FrameState.ALL},
        "resolution": [job.resolution_x, job.resolution_y],
        "scene": job.scene_sha256,
        "filename": job.filename,
        "scene_path": job.scene_path,
        "asset_count": len(job.assets or []),
        "error": job.error,
        "waiting": job.waiting,
        "policy": job.policy,
        "requirements": capabilities.describe(job),
        "price": payments.job_price(len(job.frames)),
        "escrow": ledger.balance(ledger.escrow_book(job.id)),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "files_collected_at": iso(job.files_collected_at),
    }


def job_detail(job: Job) -> dict[str, Any]:
    failures = db.session.execute(
        select(TaskFailure).filter_by(job_id=job.id).order_by(TaskFailure.id)
    ).scalars().all()
    checks = db.session.execute(select(Check).filter_by(job_id=job.id).order_by(Check.id)).scalars().all()
    return {
        **job_summary(job),
        "assets": [{"path": a["path"], "sha256": a["sha256"], "size": a["size"]} for a in job.assets or []],
        "frame_states": [
            {"frame": f.number, "state": f.state, "sha256": f.blob_sha256,
             "worker": f.worker.name if f.worker else None, "task": f.task_id, "verified_by": f.verified_by,
             "flags": f.flags or []}
            for f in job.frames
        ],
        "checks": [check_json(c) for c in checks],
        "tasks": [
            {"id": t.id, "frames": t.frames_spec, "state": t.state, "attempts": t.attempt, "failures": t.failures,
             "worker": t.worker.name if t.worker else None}
            for t in job.tasks
        ],
        "failures": [
            {"id": f.id, "task": f.task_id, "worker_id": f.worker_id, "attempt": f.attempt, "reason": f.reason,
             "error": f.error, "log_tail": f.log_tail[-2000:]}
            for f in failures
        ],
    }


def check_json(check: Check) -> dict[str, Any]:
    """A check as the job's owner sees it: which frame, where, by whom, the metrics and the verdict."""
    return {
        "id": check.id, "kind": check.kind, "frame": check.frame.number, "region": check.region,
        "state": check.state, "verifier": check.verifier.name if check.verifier else None,
        "renderer": check.renderer.name if check.renderer else None, "mode": check.mode,
        "verdict": check.verdict, "reason": check.reason, "metrics": check.metrics, "parent": check.parent_id,
    }


def own_job(job_id: int) -> Job:
    """The job if the caller may see it; 404 otherwise (no hint that someone else's job exists)."""
    job = db.session.get(Job, job_id)
    caller = current_caller()
    if job is None or (job.account_id != caller.account_id and not caller.is_admin):
        raise ApiError(404, "not_found", f"no job {job_id}")
    return job


@bp.post("/jobs")
@require("user")
def submit():
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "bad_json", "the body must be JSON (Content-Type: application/json)")
    job = create_job(current_caller().account_id, body)
    current_app.extensions["framehive_dispatcher"].kick()
    return jsonify(job_detail(job)), 201


@bp.get("/jobs")
@require("user")
def list_jobs():
    """The caller's jobs (every job for admins), newest first, a page at a time."""
    caller = current_caller()
    query = select(Job)
    if not caller.is_admin:
        query = query.filter_by(account_id=caller.account_id)
    page = paging.paginate(query, Job.id, newest_first=True)
    return jsonify({"jobs": [job_summary(j) for j in page.items], "next": page.next})


@bp.get("/jobs/<int:job_id>")
@require("user")
def get_job(job_id: int):
    """The job in full, or 304 (If-None-Match: its ETag), or with ``?since=<cursor>`` only what changed."""
    return job_changes.answer(job_detail(own_job(job_id)))


@bp.post("/jobs/<int:job_id>/cancel")
@require("user")
def cancel(job_id: int):
    job = own_job(job_id)
    job_control.cancel_job(job, by=current_caller().account_name)
    return jsonify(job_detail(job))


@bp.get("/jobs/<int:job_id>/frames/<int:number>")
@require("user")
def frame(job_id: int, number: int):
    job = own_job(job_id)
    row = db.session.execute(select(Frame).filter_by(job_id=job.id, number=number)).scalar_one_or_none()
    if row is None:
        raise ApiError(404, "not_found", f"frame {number} is not part of job {job_id} ({job.frames_spec})")
    if job.files_collected_at is not None:
        raise ApiError(410, "collected", f"job {job_id}'s files, its frames too, were deleted at the end of the "
                                         "retention period after it finished")
    if row.state != FrameState.VERIFIED or row.blob_sha256 is None:
        raise ApiError(404, "not_verified", f"frame {number} is {row.state}; only verified frames are delivered")
    response = serve(row.blob_sha256, "image/png", f"frame_{number:04d}.png")  # S3: a redirect to the store
    response.headers["X-Content-SHA256"] = row.blob_sha256
    return response
