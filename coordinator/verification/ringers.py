"""Ringers: checks whose answer the coordinator already knows, made now and then for an idle verifier.

A ringer is a fresh region of a frame a verifier already confirmed, rendered by another owner, in a message that
looks exactly like any other check. A verifier that answers real checks carelessly (or lies) but ringers
honestly must not be able to tell them apart.
"""

from __future__ import annotations

import secrets

from sqlalchemy import func, select

from ..db import db
from ..models import Check, Frame, Job, Worker
from ..states import FrameState
from . import keys
from .checks import new_check

_rng = secrets.SystemRandom()


def make_ringer(worker: Worker, like: Check | None = None) -> Check | None:
    """A fresh region of a frame a verifier already confirmed, rendered by another owner. No commit.

    The region is the size (as a share of the frame) of ``like``, the check it stands in for, so that ringers
    are as many spots and regions as real checks are.
    """
    count = db.session.execute(_ringer_frames(worker).with_only_columns(func.count())).scalar_one()
    if count == 0:
        return None
    frame = db.session.execute(_ringer_frames(worker).offset(_rng.randrange(count)).limit(1)).scalar_one()
    job: Job = frame.job
    fraction = keys.REGION_FRACTION
    if like is not None:
        _, _, w, h = like.region
        fraction = min(1.0, w * h / (like.frame.job.resolution_x * like.frame.job.resolution_y))
    region = keys.draw_region(_rng, job.resolution_x, job.resolution_y, fraction).as_list()
    return new_check("ringer", frame, region, [], renderer=frame.worker)


def _ringer_frames(worker: Worker):  # type: ignore[no-untyped-def]
    return (select(Frame).join(Job, Job.id == Frame.job_id).join(Worker, Worker.id == Frame.worker_id)
            .where(Frame.state == FrameState.VERIFIED, Frame.verified_by == "check",
                   Job.files_collected_at.is_(None),  # a released job's scene and pixels are gone
                   Worker.account_id != worker.account_id))
