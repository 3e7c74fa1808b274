"""Ringers: checks whose answer the coordinator already knows, made now and then for an idle verifier.

A ringer is a fresh region of a frame that already passed a check, rendered by another owner. A verifier that
answers real checks carelessly (or lies) but ringers honestly must not be able to tell them apart, so a ringer
shows it nothing a real check would not:

- it stands in for the real check the verifier was about to get (same moment, a region of the very same
  width and height, placed as real regions are);
- its frame is a verified frame of that check's job, within NEAR_FRAMES of the check's frame (else there is no
  ringer this time), so the jobs, scenes and frames a verifier sees stay those of its real work, never a job
  long finished nor a frame far behind the ones it is checking;
- it excludes the same accounts a real check does (the renderer's and the job's owner), and never shows an
  account a frame it already looked at (a real check never does);
- its job is one the verifier could be sent a real check of: its Blender opens the scene and its device is of
  the kind the artist asked for (capabilities.scene_condition; a ringer standing in for a check is of that
  check's job, which fits already);
- its handle is as opaque as any other lease's (leasing.new_handle).
"""

from __future__ import annotations

import secrets

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import aliased

from .. import capabilities
from ..db import db
from ..frame_analysis import place_region
from ..models import Check, Frame, Job, Worker
from ..states import FrameState, JobState
from . import keys
from .checks import new_check

# A ringer's frame lies at most this many frames from the frame of the check it stands in for (else no ringer
# this time): a verifier sees the frames of its real checks advance with the job, and a ringer far behind them
# stood out (benchmarks/ringer_blindness.py: with the nearest verified frame, however far, a threshold on "frame
# minus the highest frame seen so far" told ringers apart with balanced accuracy 0.84).
NEAR_FRAMES = 2
_rng = secrets.SystemRandom()


def make_ringer(worker: Worker, like: Check | None = None) -> Check | None:
    """A fresh region of a verified frame of a running job, for ``worker`` instead of ``like``. No commit.

    The region has the very size of ``like``'s, the check it stands in for (a frame of its job: the same
    resolution), placed as real regions are, so that ringers are as many spots and regions as real checks are;
    without ``like``, the size of a region check.
    """
    if like is not None and like.kind == "tier1":
        return None  # a whole frame at low resolution: a region ringer in its place would stand out
    frame = _pick_frame(worker, like)
    if frame is None:
        return None
    job: Job = frame.job
    if like is None:
        region = keys.draw_region(_rng, job.resolution_x, job.resolution_y, keys.REGION_FRACTION)
    else:
        _, _, w, h = like.region
        region = place_region(_rng, job.resolution_x, job.resolution_y, w, h)
    excluded = [frame.worker.account_id, job.account_id] if frame.worker is not None else [job.account_id]
    return new_check("ringer", frame, region.as_list(), excluded, renderer=frame.worker)


def _pick_frame(worker: Worker, like: Check | None) -> Frame | None:
    if like is not None:
        target = like.frame.number
        near = db.session.execute(
            _ringer_frames(worker).where(Frame.job_id == like.job_id,
                                         Frame.number.between(target - NEAR_FRAMES, target + NEAR_FRAMES))
        ).scalars().all()
        return _rng.choice(near) if near else None
    count = db.session.execute(_ringer_frames(worker).with_only_columns(func.count())).scalar_one()
    if count == 0:
        return None
    return db.session.execute(_ringer_frames(worker).order_by(Frame.id).offset(_rng.randrange(count))
                              .limit(1)).scalar_one()


def _ringer_frames(worker: Worker) -> Select[Frame]:
    """Frames of running jobs that passed a check, that ``worker`` could be sent as a real check."""
    renderer = aliased(Worker)
    looker = aliased(Worker)
    seen = exists().where(Check.frame_id == Frame.id, Check.verifier_id == looker.id,
                          looker.account_id == worker.account_id)
    return (select(Frame).join(Job, Job.id == Frame.job_id).join(renderer, renderer.id == Frame.worker_id)
            .where(Frame.state == FrameState.VERIFIED, Frame.verified_by == "check",
                   Job.state.in_(JobState.ACTIVE),  # a finished job's checks would stand out
                   Job.files_collected_at.is_(None),  # a released job's scene and pixels are gone
                   renderer.account_id != worker.account_id, Job.account_id != worker.account_id,
                   capabilities.scene_condition(worker),  # a scene it can open, of the device kind asked for
                   ~seen))
