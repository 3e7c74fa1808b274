"""Frame uploads from workers: one HTTP PUT per frame, as soon as it is written.

The worker must hold the task's lease for that attempt; the bytes must hash to the announced sha256 and
decode as a PNG of the job's resolution. A frame that already has pixels is a harmless duplicate.

With an object store the PUT goes there instead: ``POST …/frames/<n>/uploads`` hands out a presigned PUT to a
staging key, and ``POST …/frames/<n>/uploads/<handle>`` reads the staged object back and runs the very checks a
PUT here runs (lease, size, hash, PNG header, tier 0) before the frame counts. On local disk the first answers
``{"url": null}``: PUT the frame here.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, current_app, jsonify, request
from werkzeug.wrappers import Response

from ..auth import current_caller, require
from ..db import db, reading
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
from .direct_uploads import announced_size, object_store, presigned_answer, read_staged, staged

bp = Blueprint("worker_frames", __name__)


#: Each agent's account, by agent id, as uploads found it (kept per app: per database): an agent never moves to
#: another account and is never deleted, so its id never names another's (a read per upload before, issue 16).
#: Bounded: cleared when full (agents are free to make).
_ACCOUNTS_KEPT = 100_000


def worker_id_from_header() -> int:
    """The agent's id from X-Framehive-Worker; it must be one of the caller's own agents."""
    value = request.headers.get("X-Framehive-Worker", "")
    if lenient_id(value) is None:
        raise ApiError(400, "bad_request", "send the X-Framehive-Worker header (the id from 'welcome')")
    worker_id = int(value)
    account_of: dict[int, int] = current_app.extensions.setdefault("framehive_agent_accounts", {})
    account_id = account_of.get(worker_id)
    if account_id is None:
        worker = db.session.get(Worker, worker_id)
        if worker is not None:
            if len(account_of) >= _ACCOUNTS_KEPT:
                account_of.clear()
            account_id = account_of[worker_id] = worker.account_id
    if account_id is None or account_id != current_caller().account_id:
        raise ApiError(403, "forbidden", "that worker is not yours")
    return worker_id


@dataclass
class FrameUpload:
    """A frame upload that may go ahead: who sends which frame of which task attempt, and how big it may be."""

    worker_id: int
    task_id: int
    attempt: int | None
    number: int
    sha256: str
    frame_id: int
    width: int
    height: int
    limit: int


def _admit(task_id: int, number: int) -> FrameUpload | tuple[Response, int]:
    """The checks before any byte is looked at; a harmless duplicate is answered at once (its body drained).
    Commits (no transaction is held while bytes move). Only reads: on SQLite it waits for no writer (db.reading;
    it queued for the write lock behind every other upload, issue 16)."""
    with reading():
        admitted = _admitted(task_id, number)
        if isinstance(admitted, FrameUpload):
            db.session.commit()
    return admitted


def _admitted(task_id: int, number: int) -> FrameUpload | tuple[Response, int]:
    worker_id = worker_id_from_header()
    attempt = lenient_id(request.args.get("attempt"))
    sha256 = request.headers.get("X-Content-SHA256", "")
    if not SHA256_RE.match(sha256):
        raise ApiError(400, "bad_hash", "send X-Content-SHA256 with the frame's sha256 (64 lowercase hex)")
    frame = db.session.execute(db.select(Frame).filter_by(task_id=task_id, number=number)).scalar_one_or_none()
    task = held_task(worker_id, task_id, attempt)
    if frame is not None and frame.state in FrameState.HAVE_PIXELS and frame.worker_id == worker_id:
        return _duplicate()  # the renderer's own retry: harmless
    if task is None:  # checked before anything else is said about the task or its frames
        raise ApiError(409, "lease_lost", f"you do not hold task {task_id} attempt {attempt}")
    if frame is not None and frame.state in FrameState.HAVE_PIXELS:
        return _duplicate()
    if frame is None:
        raise ApiError(400, "bad_frame", f"frame {number} is not part of task {task_id} ({task.frames_spec})")
    width, height = frame.job.resolution_x, frame.job.resolution_y
    return FrameUpload(worker_id, task_id, attempt, number, sha256, frame.id, width, height,
                       upload_limit(width, height))


def _duplicate() -> tuple[Response, int]:
    """The answer to a frame that has its pixels already, once its body is drained. The transaction ends first:
    on SQLite it holds the one write lock, and a worker holding back the body held every writer (issue 16)."""
    db.session.commit()
    drain(current_app.config["FRAMEHIVE_MAX_FRAME_BYTES"])
    return jsonify({"accepted": False, "reason": "duplicate"}), 200


@bp.put("/worker/tasks/<int:task_id>/frames/<int:number>")
@require("worker")
def upload_frame(task_id: int, number: int):
    upload = _admit(task_id, number)
    if not isinstance(upload, FrameUpload):
        return upload
    data = read_limited(upload.limit)
    return _take(upload, data, lambda: _put(upload.sha256, data, upload.limit))


@bp.post("/worker/tasks/<int:task_id>/frames/<int:number>/uploads")
@require("worker")
def begin_direct_frame_upload(task_id: int, number: int):
    """A presigned PUT for the frame (``{"size": N}``) to the object store; ``{"url": null}``: PUT it here."""
    size = announced_size()
    upload = _admit(task_id, number)
    if not isinstance(upload, FrameUpload):
        return upload
    if size > upload.limit:
        raise ApiError(413, "too_large", f"a {upload.width}x{upload.height} frame is limited to {upload.limit} bytes")
    return presigned_answer(upload.sha256, size, "image/png")


@bp.post("/worker/tasks/<int:task_id>/frames/<int:number>/uploads/<upload>")
@require("worker")
def confirm_direct_frame_upload(task_id: int, number: int, upload: str):
    """The worker's presigned PUT is done: the staged frame is read back from the store and checked like a PUT."""
    size = announced_size()
    # Refused (the lease gone, too large, wrong bytes), a duplicate, or stored already: the staged bytes go.
    with staged(request.headers.get("X-Content-SHA256", ""), size, upload) as promote:
        admitted = _admit(task_id, number)
        store = object_store("this coordinator takes frames by PUT")
        if not isinstance(admitted, FrameUpload):  # a duplicate: whatever was staged is not needed
            return admitted
        if size > admitted.limit:
            raise ApiError(413, "too_large",
                           f"a {admitted.width}x{admitted.height} frame is limited to {admitted.limit} bytes")
        data = read_staged(store, admitted.sha256, size, upload, "bad_frame")
        return _take(admitted, data, promote)


def _put(sha256: str, data: bytes, limit: int) -> int:
    try:
        return storage().put(sha256, io.BytesIO(data), limit)
    except (HashMismatch, BlobTooLarge) as exc:  # cannot happen after the checks in _take; be safe
        raise ApiError(400, "bad_frame", str(exc)) from None


def _take(upload: FrameUpload, data: bytes, store: Callable[[], int]) -> tuple[Response, int]:
    """Check the frame's bytes (hash, lease still held, PNG header, tier 0), ``store`` them unless that blob
    exists, and record the frame."""
    if hashlib.sha256(data).hexdigest() != upload.sha256:
        raise ApiError(400, "hash_mismatch", "the frame does not hash to X-Content-SHA256")
    task = held_task(upload.worker_id, upload.task_id, upload.attempt)  # the lease may have run out meanwhile
    if task is None:
        raise ApiError(409, "lease_lost", f"you no longer hold task {upload.task_id} attempt {upload.attempt}")
    frame = db.session.get_one(Frame, upload.frame_id)
    expect_size(data, upload.width, upload.height, "bad_frame")
    try:
        with decode_slot():
            tier0 = inspect_frame(data, frame, upload.width * upload.height)
    except FrameRejected as exc:
        raise ApiError(400, "bad_frame", str(exc)) from None
    if db.session.get(Blob, upload.sha256) is None:
        size = store()
        db.session.add(Blob(sha256=upload.sha256, size=size, uploader_id=current_caller().account_id))
    frame.tile_hashes, frame.tile_key, frame.flags = tier0.tile_hashes, tier0.tile_key, tier0.flags
    accepted = frame_rendered(task, upload.number, upload.sha256, lease_timeout(), frame)
    return jsonify({"accepted": accepted}), 201 if accepted else 200
