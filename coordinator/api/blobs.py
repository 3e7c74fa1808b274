"""Content-addressed uploads: ask what is missing, upload only that; every upload is re-hashed.

With an object store, an upload goes straight there: ``POST /blobs/<sha>/uploads`` hands out a presigned PUT to a
staging key, and ``POST /blobs/<sha>/uploads/<handle>`` reads the staged object back, checks its size and hash,
and only then makes it the blob. On local disk the first answers ``{"url": null}`` and the bytes come by ``PUT``.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import blob_access, quotas, scene_files, work_slots
from ..auth import current_caller, require
from ..db import db
from ..errors import ApiError
from ..models import Blob, Check, Job, Task, Worker
from ..states import CheckState, TaskState
from ..storage import BlobTooLarge, HashMismatch, NotUploaded
from ..storage.local import SHA256_RE
from ..storage_access import serve, storage
from .bodies import drain
from .direct_uploads import announced_size, not_uploaded, object_store, presigned_answer, refusals_discard

bp = Blueprint("blobs", __name__)
MAX_MISSING_QUERY = 10_000
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _sha_or_400(sha256: str) -> str:
    if not SHA256_RE.match(sha256):
        raise ApiError(400, "bad_hash", "a blob is named by its sha256: 64 lowercase hex characters")
    return sha256


@bp.post("/blobs/missing")
@require("user")
def missing():
    body = request.get_json(silent=True)
    hashes = body.get("sha256") if isinstance(body, dict) else None
    if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes) or len(hashes) > MAX_MISSING_QUERY:
        raise ApiError(400, "bad_request", 'send {"sha256": ["<hex>", ...]}')
    for sha in hashes:
        _sha_or_400(sha)
    # Per account: another account's blob is missing for you, so this never says who stores what.
    held = blob_access.owned_by(current_caller().account_id, hashes)
    return jsonify({"missing": [h for h in dict.fromkeys(hashes) if h not in held]})


@bp.put("/blobs/<sha256>")
@require("user")
def upload(sha256: str):
    _sha_or_400(sha256)
    account_id = current_caller().account_id
    if blob_access.owned_by(account_id, [sha256]):  # its own: no need to send it again
        quotas.record_upload(account_id, sha256)  # fresh for the collector
        size = db.session.get_one(Blob, sha256).size
        db.session.commit()  # before the body is drained: a held-back body must not hold the database
        drain(current_app.config["FRAMEHIVE_MAX_SCENE_BYTES"])  # so the client sees our answer
        return jsonify({"sha256": sha256, "size": size, "existed": True}), 200
    # Anything else is received and checked in full, stored or not, and answered alike (no oracle).
    limit = current_app.config["FRAMEHIVE_MAX_SCENE_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"blobs are limited to {limit} bytes")
    if sha256 == EMPTY_SHA256:
        raise ApiError(400, "empty", "the upload is empty")
    room = quotas.upload_room(account_id, request.content_length, limit)  # 413 quota_exceeded
    db.session.commit()  # never hold the database while the body crosses the network
    try:
        with work_slots.released():  # the body crosses the network as it is stored
            size = storage().put(sha256, request.stream, room)
    except HashMismatch as exc:
        raise ApiError(400, "hash_mismatch", str(exc)) from None
    except BlobTooLarge as exc:
        if room < limit:
            raise quotas.over_quota(account_id) from None
        raise ApiError(413, "too_large", str(exc)) from None
    return _stored(sha256, size, account_id)


@bp.post("/blobs/<sha256>/uploads")
@require("user")
def begin_direct_upload(sha256: str):
    """A presigned PUT for ``{"size": N}`` bytes (object stores); ``{"url": null}`` means: PUT it here instead."""
    _sha_or_400(sha256)
    size = announced_size()
    account_id = current_caller().account_id
    if blob_access.owned_by(account_id, [sha256]):
        quotas.record_upload(account_id, sha256)
        db.session.commit()
        return jsonify({"sha256": sha256, "size": db.session.get_one(Blob, sha256).size, "existed": True}), 200
    limit = current_app.config["FRAMEHIVE_MAX_SCENE_BYTES"]
    if size > limit:
        raise ApiError(413, "too_large", f"blobs are limited to {limit} bytes")
    if size == 0 or sha256 == EMPTY_SHA256:
        raise ApiError(400, "empty", "the upload is empty")
    quotas.upload_room(account_id, size, limit)  # 413 quota_exceeded
    db.session.commit()
    return presigned_answer(sha256, size, "application/octet-stream")


@bp.post("/blobs/<sha256>/uploads/<upload>")
@require("user")
def confirm_direct_upload(sha256: str, upload: str):
    """The uploader says its presigned PUT is done: the staged bytes are read back and checked before they count."""
    _sha_or_400(sha256)
    size = announced_size()
    account_id = current_caller().account_id
    store = object_store("this coordinator takes uploads by PUT /blobs/<sha256>")
    limit = current_app.config["FRAMEHIVE_MAX_SCENE_BYTES"]
    with refusals_discard(sha256, size, upload):  # over a limit or the quota: the staged bytes go at once
        if size > limit:
            raise ApiError(413, "too_large", f"blobs are limited to {limit} bytes")
        quotas.upload_room(account_id, size, limit)  # again: several uploads may have been handed out at once
    db.session.commit()  # never hold the database while the store is read
    try:
        store.confirm(sha256, size, upload)  # wrong bytes are deleted there, the right ones kept as the blob
    except NotUploaded:
        raise not_uploaded() from None
    except HashMismatch as exc:
        raise ApiError(400, "hash_mismatch", str(exc)) from None
    except BlobTooLarge as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    return _stored(sha256, size, account_id)


def _stored(sha256: str, size: int, account_id: int) -> tuple[Response, int]:
    """Record a checked, stored blob as the account's upload."""
    if db.session.get(Blob, sha256) is None:
        db.session.add(Blob(sha256=sha256, size=size, uploader_id=account_id))
    quotas.record_upload(account_id, sha256)
    try:
        db.session.commit()
    except IntegrityError:  # another account sent the same new bytes at the same moment: one row is enough
        db.session.rollback()
        quotas.record_upload(account_id, sha256)
        db.session.commit()
    return jsonify({"sha256": sha256, "size": size, "existed": False}), 201


@bp.get("/blobs/<sha256>")
@require("worker", "admin")
def download(sha256: str):
    """Workers may fetch only the files (scene or asset) of a job whose task or check one of their agents holds."""
    _sha_or_400(sha256)
    caller = current_caller()
    if not caller.is_admin and not _leased_file(sha256, caller.account_id):
        raise ApiError(403, "forbidden", "this blob is not a file of a task or check leased to you")
    if db.session.get(Blob, sha256) is None:
        raise ApiError(404, "not_found", "no such blob")
    return serve(sha256, "application/octet-stream")


def _leased_file(sha256: str, account_id: int) -> bool:
    """Whether one of the account's agents holds a task or a check of a job with this blob in its scene tree.

    An account holds few leases (one per agent at most), so their jobs' file lists are read and searched here
    rather than indexed.
    """
    tasks = (select(Task.job_id).join(Worker, Worker.id == Task.worker_id)
             .where(Task.state == TaskState.LEASED, Worker.account_id == account_id))
    checks = (select(Check.job_id).join(Worker, Worker.id == Check.verifier_id)
              .where(Check.state == CheckState.LEASED, Worker.account_id == account_id))
    jobs = select(Job.scene_sha256, Job.assets).where(Job.id.in_(tasks.union(checks)))
    return any(scene_files.holds(scene, assets, sha256) for scene, assets in db.session.execute(jobs))
