"""What one account may hold at once: live jobs, frames in a job, and bytes of stored uploads.

Each limit is a setting (config.py) and each refusal a clear error with the numbers, raised before anything is
written. No commits here.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select

from .db import db, lock
from .errors import ApiError
from .models import Account, Job
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
