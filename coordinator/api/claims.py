"""Bad-result claims on a job's delivered frames (the job's owner only)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select

from .. import paging
from ..auth import current_caller, require
from ..db import db
from ..errors import ApiError
from ..models import Check, Claim
from ..timefmt import iso
from ..verification.claims import file_claim
from .jobs import check_json, own_job

bp = Blueprint("claims", __name__)


def claim_json(claim: Claim) -> dict[str, Any]:
    checks = db.session.execute(select(Check).filter_by(claim_id=claim.id).order_by(Check.id)).scalars()
    return {
        "id": claim.id, "job": claim.job_id, "frames": claim.frames_spec, "reason": claim.reason,
        "state": claim.state, "outcome": claim.outcome,
        "created_at": iso(claim.created_at),
        "checks": [check_json(c) for c in checks],
    }


@bp.post("/jobs/<int:job_id>/claims")
@require("user")
def create(job_id: int):
    job = own_job(job_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("frames"), str):
        raise ApiError(400, "bad_request", 'send {"frames": "3,7", "reason": "what is wrong"}')
    claim = file_claim(job, current_caller().account_id, body["frames"], body.get("reason"))  # type: ignore[arg-type]
    db.session.commit()
    current_app.extensions["framehive_dispatcher"].kick()
    return jsonify(claim_json(claim)), 201


@bp.get("/jobs/<int:job_id>/claims")
@require("user")
def list_claims(job_id: int):
    job = own_job(job_id)
    page = paging.paginate(select(Claim).filter_by(job_id=job.id), Claim.id, newest_first=False)
    return jsonify({"claims": [claim_json(c) for c in page.items], "next": page.next})
