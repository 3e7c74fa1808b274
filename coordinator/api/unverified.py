"""A job's frames before any check, for an artist who asks for them (coordinator/unverified_frames.py)."""

from __future__ import annotations

from flask import Blueprint, Response
from sqlalchemy import select

from .. import unverified_frames
from ..auth import require
from ..db import db
from ..errors import ApiError
from ..models import Frame
from ..states import FrameState
from ..storage_access import storage
from .jobs import own_job

bp = Blueprint("unverified", __name__)


@bp.get("/jobs/<int:job_id>/unverified/<int:number>")
@require("user")
def unverified_frame(job_id: int, number: int):
    """A rendered frame that no check has accepted yet, marked UNVERIFIED in its bytes and headers. A verified
    frame is 409 ``verified`` (GET .../frames/N delivers it as it is); one without pixels is 404."""
    job = own_job(job_id)
    row = db.session.execute(select(Frame).filter_by(job_id=job.id, number=number)).scalar_one_or_none()
    if row is None:
        raise ApiError(404, "not_found", f"frame {number} is not part of job {job_id} ({job.frames_spec})")
    if job.files_collected_at is not None:
        raise ApiError(410, "collected", f"job {job_id}'s files were deleted after the retention period")
    if row.state == FrameState.VERIFIED:
        raise ApiError(409, "verified", f"frame {number} is verified: GET /api/v1/jobs/{job_id}/frames/{number}")
    if row.state != FrameState.RENDERED or row.blob_sha256 is None:
        raise ApiError(404, "not_rendered", f"frame {number} is {row.state}: there are no pixels to deliver yet")
    sha256, store = row.blob_sha256, storage()  # the body streams after the request's app context is gone
    digest, size, body = unverified_frames.marked(lambda: store.open(sha256), unverified_frames.notice(job_id, number))
    response = Response(body, mimetype="image/png", direct_passthrough=True)
    response.headers["Content-Length"] = str(size)
    response.headers["X-Content-SHA256"] = digest
    response.headers["X-Framehive-Verified"] = "no"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Disposition"] = f'attachment; filename="frame_{number:04d}.UNVERIFIED.png"'
    return response
