"""Verifiers upload their region renders here; the coordinator judges them at once.

The verifier must hold the check's lease: the URL names it by the lease's handle (verification/handles.py), never
by the check's id. It gets no verdict back: a blind verifier learns nothing about the renderer or whether it
agreed.

With an object store the render goes there instead, like a frame (worker_frames.py): ``POST …/result/uploads``
hands out a presigned PUT to a staging key, and ``POST …/result/uploads/<upload>`` reads the staged object back and
runs the very checks a PUT here runs (lease, size, hash, PNG header and decode limits) before the check is judged.
On local disk the first answers ``{"url": null}``: PUT the result here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from flask import Blueprint, current_app, jsonify, request
from framehive.protocol.messages import HANDLE_RE
from werkzeug.wrappers import Response

from .. import frame_analysis as fa
from ..auth import require
from ..db import db, reading
from ..errors import ApiError
from ..models import Check
from ..storage.local import SHA256_RE
from ..verification import decide
from ..verification.handles import held_check
from .bodies import read_limited
from .decoding import decode_slot, expect_size, upload_limit
from .direct_uploads import announced_size, object_store, presigned_answer, read_staged, staged
from .worker_frames import worker_id_from_header

bp = Blueprint("worker_checks", __name__)


@bp.put("/worker/checks/<handle>/result")
@require("worker")
def upload_result(handle: str):
    worker_id, sha256, limit = _admit(handle)
    data = read_limited(limit)
    return _take(worker_id, handle, sha256, data, None)


@bp.post("/worker/checks/<handle>/result/uploads")
@require("worker")
def begin_direct_result_upload(handle: str):
    """A presigned PUT for the result (``{"size": N}``) to the object store; ``{"url": null}``: PUT it here."""
    size = announced_size()
    _worker_id, sha256, limit = _admit(handle)
    if size > limit:
        raise ApiError(413, "too_large", f"this check's result is limited to {limit} bytes")
    return presigned_answer(sha256, size, "image/png")


@bp.post("/worker/checks/<handle>/result/uploads/<upload>")
@require("worker")
def confirm_direct_result_upload(handle: str, upload: str):
    """The verifier's presigned PUT is done: the staged result is read back from the store and checked like a PUT,
    then judged. The staged object becomes the kept render (copied inside the store) or is deleted."""
    size = announced_size()
    # Judging keeps the render by copying it to its blob key inside the store (the promotion), once every refusal is
    # past, and sends the store no byte itself; refused (the lease gone, too large, wrong bytes), or not kept as it
    # came: the staged bytes go.
    with staged(request.headers.get("X-Content-SHA256", ""), size, upload) as promote:
        worker_id, sha256, limit = _admit(handle)
        store = object_store("this coordinator takes check results by PUT")
        if size > limit:
            raise ApiError(413, "too_large", f"this check's result is limited to {limit} bytes")
        data = read_staged(store, sha256, size, upload, "bad_result")
        return _take(worker_id, handle, sha256, data, promote)


def _admit(handle: str) -> tuple[int, str, int]:
    """The checks before any byte is looked at: the caller's agent, the announced sha256 and the lease. Returns
    the agent's id, the sha256 and the result's size limit; commits (no transaction is held while bytes move).
    Only reads: on SQLite it waits for no writer (db.reading)."""
    with reading():
        worker_id = worker_id_from_header()
        sha256 = request.headers.get("X-Content-SHA256", "")
        if not SHA256_RE.match(sha256):
            raise ApiError(400, "bad_hash", "send X-Content-SHA256 with the result's sha256 (64 lowercase hex)")
        check = _held(worker_id, handle)
        if check is None:
            raise ApiError(409, "lease_lost", "you do not hold this check")
        rect = fa.Region.from_list(check.render_rect)
        db.session.commit()  # never hold the database while the body crosses the network
    return worker_id, sha256, upload_limit(rect.width, rect.height * fa.YARDSTICK_RENDERS)  # a yardstick below


def _take(worker_id: int, handle: str, sha256: str, data: bytes,
          promote: Callable[[], object] | None) -> tuple[Response, int]:
    """Check the result's bytes (hash, lease still held, PNG header, decode limits), judge the check and act on it.
    ``promote`` (a staged upload's) is how judging stores the result when it keeps it as it came (decide.judge)."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ApiError(400, "hash_mismatch", "the result does not hash to X-Content-SHA256")
    check = _held(worker_id, handle, with_parties=True)
    if check is None:
        raise ApiError(409, "lease_lost", "you no longer hold this check")
    rect = fa.Region.from_list(check.render_rect)
    height = _result_height(data, rect)
    expect_size(data, rect.width, height, "bad_result")
    with decode_slot():
        try:
            decide.judge(check, data, promote)
        except fa.BadImage as exc:
            raise ApiError(400, "bad_result", str(exc)) from None
        lost = decide.apply(check)
    db.session.commit()
    dispatcher = current_app.extensions["framehive_dispatcher"]
    dispatcher.judged(worker_id, handle)
    dispatcher.drop_leases(lost)
    dispatcher.kick()
    return jsonify({"accepted": True}), 201


def _result_height(data: bytes, rect: fa.Region) -> int:
    """The render rect's height, or twice it when the verifier stacked a yardstick render below (comparison.py)."""
    try:
        stacked = fa.png_size(data)[1] == rect.height * fa.YARDSTICK_RENDERS
    except fa.BadImage:
        stacked = False  # expect_size answers it
    return rect.height * (fa.YARDSTICK_RENDERS if stacked else 1)


def _held(worker_id: int, handle: str, with_parties: bool = False) -> Check | None:
    return held_check(worker_id, handle, with_parties=with_parties) if HANDLE_RE.fullmatch(handle) else None
