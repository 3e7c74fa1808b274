"""Frame uploads from workers: one HTTP PUT per frame, as soon as it is written.

The worker must hold the task's lease for that attempt; the bytes must hash to the announced sha256 and
decode as a PNG of the job's resolution. A frame that already has pixels is a harmless duplicate.
"""

from __future__ import annotations

import hashlib
import io

from flask import Blueprint, current_app, jsonify, request

from ..auth import current_caller, require
from ..db import db
from ..errors import ApiError
from ..ids import lenient_id
from ..leases import held_task, lease_timeout
from ..models import Blob, Frame, Worker
from ..outcomes import frame_rendered
from ..states import FrameState
from ..storage import BlobTooLarge, HashMismatch
from ..storage.local import SHA256_RE
from ..storage_access import storage
from ..tier0 import FrameRejected, inspect_frame
from .bodies import drain, read_limited
from .decoding import decode_slot, expect_size, upload_limit

bp = Blueprint("worker_frames", __name__)


def worker_id_from_header() -> int:
    """The agent's id from X-Framehive-Worker; it must be one of the caller's own agents."""
    value = request.headers.get("X-Framehive-Worker", "")
    if lenient_id(value) is None:
        raise ApiError(400, "bad_request", "send the X-Framehive-Worker header (the id from 'welcome')")
    worker = db.session.get(Worker, int(value))
    if worker is None or worker.account_id != current_caller().account_id:
        raise ApiError(403, "forbidden", "that worker is not yours")
    return worker.id


@bp.put("/worker/tasks/<int:task_id>/frames/<int:number>")
@require("worker")
def upload_frame(task_id: int, number: int):
    worker_id = worker_id_from_header()
    attempt = lenient_id(request.args.get("attempt"))
    sha256 = request.headers.get("X-Content-SHA256", "")
    if not SHA256_RE.match(sha256):
        raise ApiError(400, "bad_hash", "send X-Content-SHA256 with the frame's sha256 (64 lowercase hex)")
    frame = db.session.execute(db.select(Frame).filter_by(task_id=task_id, number=number)).scalar_one_or_none()
    task = held_task(worker_id, task_id, attempt)
    if frame is not None and frame.state in FrameState.HAVE_PIXELS and frame.worker_id == worker_id:
        drain(current_app.config["FRAMEHIVE_MAX_FRAME_BYTES"])  # the renderer's own retry: harmless
        return jsonify({"accepted": False, "reason": "duplicate"}), 200
    if task is None:  # checked before anything else is said about the task or its frames
        raise ApiError(409, "lease_lost", f"you do not hold task {task_id} attempt {attempt}")
    if frame is not None and frame.state in FrameState.HAVE_PIXELS:
        drain(current_app.config["FRAMEHIVE_MAX_FRAME_BYTES"])
        return jsonify({"accepted": False, "reason": "duplicate"}), 200
    if frame is None:
        raise ApiError(400, "bad_frame", f"frame {number} is not part of task {task_id} ({task.frames_spec})")
    width, height = frame.job.resolution_x, frame.job.resolution_y
    db.session.commit()  # never hold the database while the body crosses the network
    limit = upload_limit(width, height)
    data = read_limited(limit)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ApiError(400, "hash_mismatch", "the frame does not hash to X-Content-SHA256")
    task = held_task(worker_id, task_id, attempt)  # the lease may have run out during the upload
    if task is None:
        raise ApiError(409, "lease_lost", f"you no longer hold task {task_id} attempt {attempt}")
    expect_size(data, width, height, "bad_frame")
    try:
        with decode_slot():
            tier0 = inspect_frame(data, frame, width * height)
    except FrameRejected as exc:
        raise ApiError(400, "bad_frame", str(exc)) from None
    if db.session.get(Blob, sha256) is None:
        try:
            size = storage().put(sha256, io.BytesIO(data), limit)
        except (HashMismatch, BlobTooLarge) as exc:  # cannot happen after the checks above; be safe
            raise ApiError(400, "bad_frame", str(exc)) from None
        db.session.add(Blob(sha256=sha256, size=size, uploader_id=current_caller().account_id))
    frame.tile_hashes, frame.tile_key, frame.flags = tier0.tile_hashes, tier0.tile_key, tier0.flags
    accepted = frame_rendered(task, number, sha256, lease_timeout())
    return jsonify({"accepted": accepted}), 201 if accepted else 200
