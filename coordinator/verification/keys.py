"""Draw the secret verification keys of a task when its job is split.

All randomness comes from ``secrets.SystemRandom`` (a CSPRNG), before any worker renders a frame. Keys stay
in the database; a renderer never sees them, and a verifier sees one region only once frames are committed.
"""

from __future__ import annotations

import secrets

from flask import current_app
from sqlalchemy import select

from ..db import db
from ..frame_analysis import Region, draw_region
from ..models import Job, Task, VerificationKey
from ..states import KeyState
from ..transitions import move_key
from . import tier1

# A region check covers about this share of the frame (BENCHMARKS.md: with its margin, 1/16 costs 0.13 of a
# frame at 320x180 and 0.08 at 960x540, and catches low-sample, upscaled and tampered output that overlaps it).
REGION_FRACTION = 1 / 16
# A spot check covers about this share (at least 8x8 px): a fake that changes every pixel (another frame or
# job, fewer samples, a lower resolution, a blank) fails it as surely as a region check, at a fraction of the
# cost, so spots can look at most frames of a job (benchmarks/verification.py measures both).
SPOT_FRACTION = 1 / 256

_rng = secrets.SystemRandom()


def draw_keys(job: Job, task: Task, frames: list[int]) -> list[VerificationKey]:
    """One region key per task, plus one spot key per frame for the ``adaptive`` policy (the ``full`` policy
    has a key per frame whose region is the whole frame)."""
    width, height = job.resolution_x, job.resolution_y
    if job.policy == "full":
        whole = Region(0, 0, width, height).as_list()
        return [VerificationKey(task_id=task.id, job_id=job.id, frame=f, region=whole, draw=0.0) for f in frames]
    frame = _rng.choice(frames)
    region = draw_region(_rng, width, height, REGION_FRACTION)
    drawn = [VerificationKey(task_id=task.id, job_id=job.id, frame=frame, region=region.as_list(),
                             draw=_rng.random(), kind="region")]
    if job.policy == "adaptive":
        drawn += [VerificationKey(task_id=task.id, job_id=job.id, frame=f, kind="spot", draw=_rng.random(),
                                  region=draw_region(_rng, width, height, SPOT_FRACTION).as_list()) for f in frames]
        if float(current_app.config["FRAMEHIVE_TIER1_RATE"]) > 0 and tier1.factor_for(width, height) is not None:
            # the whole frame, at low resolution (tier1.py)
            whole = Region(0, 0, width, height).as_list()
            drawn += [VerificationKey(task_id=task.id, job_id=job.id, frame=f, kind="tier1", draw=_rng.random(),
                                      region=whole) for f in frames]
    return drawn


def redraw_keys(job: Job, task: Task, frames: list[int]) -> None:
    """The task is rendered or checked anew: its old keys are void (never used again, never revealed) and fresh
    ones are drawn for ``frames``. No commit."""
    stale = select(VerificationKey).where(VerificationKey.task_id == task.id,
                                          VerificationKey.state.in_(KeyState.LIVE))
    for key in db.session.execute(stale).scalars():
        move_key(key, KeyState.VOID)
    if frames:
        db.session.add_all(draw_keys(job, task, frames))


def extra_key(job: Job, task: Task, frame: int) -> VerificationKey:
    """A key drawn later for a frame that tier 0 flagged (blank, or a copy): always used."""
    region = draw_region(_rng, job.resolution_x, job.resolution_y, REGION_FRACTION)
    return VerificationKey(task_id=task.id, job_id=job.id, frame=frame, region=region.as_list(), draw=0.0,
                           state=KeyState.SEALED)
