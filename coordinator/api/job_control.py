"""Job controls over HTTP: pause, resume, requeue and reprioritise a job (its owner, or an admin).

Anyone else gets the 404 of a job that does not exist, as on every job endpoint. A control the job's state
does not allow is a 409 with the reason (job_control.JobControlError).
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from .. import job_control
from ..auth import current_caller, require
from ..errors import ApiError
from .jobs import job_detail, own_job

bp = Blueprint("job_control", __name__)


@bp.post("/jobs/<int:job_id>/pause")
@require("user")
def pause(job_id: int):
    job = own_job(job_id)
    job_control.pause_job(job, by=current_caller().account_name)
    return jsonify(job_detail(job))


@bp.post("/jobs/<int:job_id>/resume")
@require("user")
def resume(job_id: int):
    job = own_job(job_id)
    job_control.resume_job(job, by=current_caller().account_name)
    return jsonify(job_detail(job))


@bp.post("/jobs/<int:job_id>/requeue")
@require("user")
def requeue(job_id: int):
    job = own_job(job_id)
    count = job_control.requeue_job(job, by=current_caller().account_name)
    return jsonify({**job_detail(job), "requeued": count})


@bp.post("/jobs/<int:job_id>/priority")
@require("user")
def priority(job_id: int):
    job = own_job(job_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or set(body) != {"priority"}:
        raise ApiError(400, "bad_request", 'send {"priority": 0..100}')
    job_control.set_priority(job, body["priority"], by=current_caller().account_name)
    return jsonify(job_detail(job))
