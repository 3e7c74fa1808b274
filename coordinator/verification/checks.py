"""Creating checks, and the state of a task while its checks run. No commits here: callers commit."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from ..db import db
from ..frame_analysis import Region
from ..models import Check, Frame, Job, Task, VerificationKey, Worker
from ..states import CheckState
from ..transitions import move_check
from . import tier1

# The verifier renders this many pixels around the region; only the inside is compared, because a
# denoiser sees different context near a crop's edge (with 16 px no honest denoised crop fails: part (d) of
# BENCHMARKS.md).
MARGIN = 16


def new_check(kind: str, frame: Frame, region: list[int], excluded: list[int], *, renderer: Worker | None,
              key: VerificationKey | None = None, parent: Check | None = None,
              renderer_sha256: str | None = None) -> Check:
    """Queue a region re-render of ``frame`` for a verifier of none of the ``excluded`` accounts."""
    job: Job = frame.job
    if kind == "tier1":  # the whole frame at low resolution: what the verifier renders is its size
        factor = tier1.factor_for(job.resolution_x, job.resolution_y)
        assert factor is not None, f"job {job.id}: no tier-1 key is drawn for a frame of this size"
        rect = Region(0, 0, *tier1.low_size(job.resolution_x, job.resolution_y, factor))
    else:
        rect = Region.from_list(region).expanded(MARGIN, job.resolution_x, job.resolution_y)
    check = Check(job_id=job.id, task_id=frame.task_id, key_id=key.id if key else None, frame_id=frame.id,
                  kind=kind, region=list(region), render_rect=rect.as_list(), excluded_accounts=sorted(set(excluded)),
                  renderer_id=renderer.id if renderer else None,
                  renderer_sha256=renderer_sha256 or frame.blob_sha256, parent_id=parent.id if parent else None)
    db.session.add(check)
    db.session.flush()
    current_app.logger.info("check %s (%s) queued: job %s frame %s region %s", check.id, kind, job.id,
                            frame.number, region)
    return check


def task_checks(task: Task) -> list[Check]:
    """Every check of the task's frames, whatever its state or kind (a check's task is its frame's): one statement
    that settling a task reads instead of one per question (open checks, failed ones, passed ones, waiting ringers,
    checks to re-examine: issue 16)."""
    return list(db.session.execute(select(Check).where(Check.task_id == task.id)).scalars())


def open_checks(task: Task) -> list[Check]:
    return list(db.session.execute(
        select(Check).where(Check.task_id == task.id, Check.state.in_(CheckState.OPEN))).scalars())


def void_checks(task: Task, keep: tuple[str, ...] = ()) -> list[Check]:
    """Drop the task's pending checks but those of the kinds in ``keep``; returns the leased ones dropped."""
    leased = []
    for check in open_checks(task):
        if check.kind in keep:
            continue
        if check.state == CheckState.LEASED:
            leased.append(check)
        move_check(check, CheckState.VOID)  # its verifier is kept, for the record
    return leased
