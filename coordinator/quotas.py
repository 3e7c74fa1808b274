"""What one account may hold at once: live jobs, frames in a job, and bytes of stored uploads.

Each limit is a setting (config.py) and each refusal a clear error with the numbers, raised before anything is
written. No commits here.

The storage quota counts the bytes of every blob the account uploaded (a BlobUpload row) that is still stored:
its scenes and their files, whether a job uses them or not. They leave the count when the collector deletes them
(blob_collection.py): uploads no job uses after the grace period, a finished job's files after the retention
period. Frames and check crops are not counted: workers upload them, and the job's price pays for them.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select

from .db import db, lock
from .errors import ApiError
from .models import Account, Blob, BlobUpload, Job, now
from .states import JobState


def check_job_frames(count: int, what: str) -> None:
    """A job may have at most FRAMEHIVE_MAX_JOB_FRAMES frames, whether the request names them or the scene's own
    range is used (``what`` says which, for the message). 0: no limit beyond the frame parser's own."""
    limit = int(current_app.config["FRAMEHIVE_MAX_JOB_FRAMES"])
    if count < 1:
        raise ApiError(400, "bad_frames", f"{what} holds no frame")
    if limit and count > limit:
        raise ApiError(400, "too_many_frames", f"{what} has {count} frames; a job may have at most {limit}: submit "
                                               "it as several jobs", frames=count, limit=limit)


def check_live_jobs(account_id: int) -> None:
    """Refuse a new job while the account has FRAMEHIVE_MAX_LIVE_JOBS queued, running or paused (409
    ``too_many_jobs``). The account's row is locked first, so two submissions at once cannot both slip under."""
    limit = int(current_app.config["FRAMEHIVE_MAX_LIVE_JOBS"])
    if not limit:
        return
    account = db.session.get(Account, account_id)
    assert account is not None
    lock(account)
    live = db.session.execute(select(func.count()).select_from(Job).where(
        Job.account_id == account_id, Job.state.in_(JobState.ACTIVE))).scalar_one()
    if live >= limit:
        raise ApiError(409, "too_many_jobs", f"the account has {live} jobs queued, running or paused, the most it "
                                             f"may have at once ({limit}); wait for one to finish or cancel one",
                       live=live, limit=limit)


class QuotaExceeded(ApiError):
    def __init__(self, used: int, quota: int, size: int | None) -> None:
        grace = current_app.config["FRAMEHIVE_BLOB_GRACE"] / 3600
        retention = current_app.config["FRAMEHIVE_JOB_RETENTION"] / 86400
        what = f"this upload of {size} bytes" if size is not None else "this upload"
        super().__init__(413, "quota_exceeded", f"the account keeps {used} bytes of uploads and its storage quota is "
                                                f"{quota}: {what} does not fit. Uploads no job uses are deleted "
                                                f"{grace:g} h after they arrived, a finished job's files "
                                                f"{retention:g} days after it ended", used=used, quota=quota,
                         size=size)


def stored_bytes(account_id: int) -> int:
    """Bytes of the blobs the account uploaded that are still stored."""
    return int(db.session.execute(select(func.coalesce(func.sum(Blob.size), 0))
                                  .join(BlobUpload, BlobUpload.sha256 == Blob.sha256)
                                  .where(BlobUpload.account_id == account_id)).scalar_one())


def upload_room(account_id: int, announced: int | None, limit: int) -> int:
    """How many bytes a new upload may have: ``limit`` (the blob size limit) or what is left of the account's
    quota, whichever is less. QuotaExceeded (413) at once when nothing is left or the announced length does
    not fit. FRAMEHIVE_STORAGE_QUOTA 0: no quota."""
    quota = int(current_app.config["FRAMEHIVE_STORAGE_QUOTA"])
    if not quota:
        return limit
    used = stored_bytes(account_id)
    room = quota - used
    if room <= 0 or (announced is not None and announced > room):
        raise QuotaExceeded(used, quota, announced)
    return min(limit, room)


def over_quota(account_id: int) -> QuotaExceeded:
    """The error for an upload without a length that ran past the account's room."""
    return QuotaExceeded(stored_bytes(account_id), int(current_app.config["FRAMEHIVE_STORAGE_QUOTA"]), None)


def record_upload(account_id: int, sha256: str) -> None:
    """The account uploaded (or sent again) this stored blob: counted in its quota, and fresh for the collector."""
    row = db.session.execute(select(BlobUpload).filter_by(account_id=account_id, sha256=sha256)).scalar_one_or_none()
    if row is None:
        db.session.add(BlobUpload(account_id=account_id, sha256=sha256))
    else:
        row.uploaded_at = now()
