"""Who may see what. Admins see everything; any other token sees its own account's jobs, workers and
ledger, and the pixels of its jobs' verified frames only (the API delivers nothing else to an artist)."""

from __future__ import annotations

from sqlalchemy import Select, select

from ..auth import Caller
from ..db import db
from ..models import Account, Check, Frame, Job, Worker
from ..states import CheckState, FrameState


def jobs(viewer: Caller) -> Select[Job]:
    query = select(Job)
    return query if viewer.is_admin else query.where(Job.account_id == viewer.account_id)


def workers(viewer: Caller) -> Select[Worker]:
    query = select(Worker)
    return query if viewer.is_admin else query.where(Worker.account_id == viewer.account_id)


def accounts(viewer: Caller) -> Select[Account]:
    query = select(Account)
    return query if viewer.is_admin else query.where(Account.id == viewer.account_id)


def job(viewer: Caller, job_id: int) -> Job | None:
    found = db.session.get(Job, job_id)
    return found if found is not None and (viewer.is_admin or found.account_id == viewer.account_id) else None


def worker(viewer: Caller, worker_id: int) -> Worker | None:
    found = db.session.get(Worker, worker_id)
    return found if found is not None and (viewer.is_admin or found.account_id == viewer.account_id) else None


def frame_pixels(viewer: Caller, frame: Frame) -> str | None:
    """The blob of ``frame`` that ``viewer`` may look at, if any."""
    shown = FrameState.HAVE_PIXELS if viewer.is_admin else (FrameState.VERIFIED,)
    return frame.blob_sha256 if frame.state in shown else None


def check_images(viewer: Caller, check: Check) -> bool:
    """Whether the two crops of a check may be shown: decided checks of a visible job (a region is kept secret
    until its verifier has answered, and the renderer's frame is shown cut to that region only)."""
    return (check.state == CheckState.DONE and check.result_sha256 is not None and check.renderer_sha256 is not None
            and job(viewer, check.job_id) is not None)
