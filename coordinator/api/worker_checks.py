"""Verifiers upload their region renders here; the coordinator judges them at once.

The verifier must hold the check's lease: the URL names it by the lease's handle (verification/handles.py), never
by the check's id. It gets no verdict back: a blind verifier learns nothing about the renderer or whether it
agreed.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, current_app, jsonify, request
from framehive.protocol.messages import HANDLE_RE

from .. import frame_analysis as fa
from ..auth import require
from ..db import db
from ..errors import ApiError
from ..models import Check
from ..storage.local import SHA256_RE
from ..verification import decide
from ..verification.handles import held_check
from .bodies import read_limited
from .decoding import decode_slot, expect_size, upload_limit
from .worker_frames import worker_id_from_header

bp = Blueprint("worker_checks", __name__)


@bp.put("/worker/checks/<handle>/result")
@require("worker")
def upload_result(handle: str):
    worker_id = worker_id_from_header()
    sha256 = request.headers.get("X-Content-SHA256", "")
    if not SHA256_RE.match(sha256):
        raise ApiError(400, "bad_hash", "send X-Content-SHA256 with the result's sha256 (64 lowercase hex)")
    check = _held(worker_id, handle)
    if check is None:
        raise ApiError(409, "lease_lost", "you do not hold this check")
    rect = fa.Region.from_list(check.render_rect)
    db.session.commit()  # never hold the database while the body crosses the network
    data = read_limited(upload_limit(rect.width, rect.height * fa.YARDSTICK_RENDERS))  # with a yardstick below
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ApiError(400, "hash_mismatch", "the result does not hash to X-Content-SHA256")
    check = _held(worker_id, handle)
    if check is None:
        raise ApiError(409, "lease_lost", "you no longer hold this check")
    expect_size(data, rect.width, _result_height(data, rect), "bad_result")
    with decode_slot():
        try:
            decide.judge(check, data)
        except fa.BadImage as exc:
            raise ApiError(400, "bad_result", str(exc)) from None
        lost = decide.apply(check)
    db.session.commit()
    dispatcher = current_app.extensions["framehive_dispatcher"]
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


def _held(worker_id: int, handle: str) -> Check | None:
    return held_check(worker_id, handle) if HANDLE_RE.fullmatch(handle) else None
