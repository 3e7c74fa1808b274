"""Every change of state of a job, task, frame, check, verification key or claim: checked against its machine's
table (states.py), with the knock-on effects of the move applied here (a lease cleared, a time stamped, the escrow
refunded through payments.py, where money moves). No other module writes a ``state``. No commits: each move is a
step of its caller's transaction.

Two kinds of move: ``move_*`` changes an object this transaction has loaded; :func:`move_where` is a
compare-and-set ``UPDATE … WHERE state = old`` for claims that race (two verifiers for one check, two coordinators
for one task), whose row count says who won.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, func, select, update

from . import events
from .db import db
from .models import Check, Claim, Frame, Job, Task, VerificationKey, now
from .payments import refund
from .states import (
    CHECK_TRANSITIONS,
    CLAIM_TRANSITIONS,
    FRAME_TRANSITIONS,
    JOB_TRANSITIONS,
    KEY_TRANSITIONS,
    TASK_TRANSITIONS,
    CheckState,
    FrameState,
    JobState,
    TaskState,
    check_move,
)

#: Each machine's table, by the model whose ``state`` it governs.
TABLES: dict[type[Any], dict[str, frozenset[str]]] = {
    Job: JOB_TRANSITIONS, Task: TASK_TRANSITIONS, Frame: FRAME_TRANSITIONS, Check: CHECK_TRANSITIONS,
    VerificationKey: KEY_TRANSITIONS, Claim: CLAIM_TRANSITIONS,
}


@dataclass(frozen=True)
class LostLease:
    """A lease a worker must drop: a task (``task_id``) or, when ``check_id`` is set, a check."""

    task_id: int
    worker_id: int
    reason: str
    check_id: int | None = None


def move_task(task: Task, new: str) -> None:
    check_move(TASK_TRANSITIONS, task.state, new)
    task.state = new
    if new != TaskState.LEASED:
        task.worker_id = None
        task.lease_expires = None


def move_job(job: Job, new: str, error: str | None = None) -> None:
    check_move(JOB_TRANSITIONS, job.state, new)
    job.state = new
    if new == JobState.RUNNING:
        job.started_at = job.started_at or now()
    if new in JobState.FINAL:
        job.finished_at = now()
        job.waiting = None
        job.error = error
        refund(job)
    else:  # live again (a requeued failed job): it has not finished and has no error
        job.finished_at = None
        job.error = None


def move_frame(frame: Frame, new: str) -> None:
    """Back to the queue, a frame loses its pixels and who made them (its renderer was caught, or it had none);
    accepted, it is stamped ``verified_at``."""
    check_move(FRAME_TRANSITIONS, frame.state, new)
    frame.state = new
    if new == FrameState.QUEUED:
        frame.blob_sha256, frame.worker_id, frame.verified_by = None, None, None
        frame.tile_hashes, frame.flags = None, []
    frame.verified_at = now() if new == FrameState.VERIFIED else None


def rendered(frame: Frame, sha256: str, worker_id: int | None, attempt: int) -> None:
    """The frame's pixels came in (``sha256``), from ``worker_id``'s lease ``attempt``."""
    move_frame(frame, FrameState.RENDERED)
    frame.blob_sha256, frame.worker_id, frame.attempt, frame.rendered_at = sha256, worker_id, attempt, now()


def accepted(frame: Frame, verified_by: str) -> None:
    """A rendered frame is delivered: ``verified_by`` "check" (a verifier re-rendered a region) or "trust"."""
    move_frame(frame, FrameState.VERIFIED)
    frame.verified_by = verified_by


def replace_pixels(frame: Frame, sha256: str | None, worker_id: int | None, verified_by: str) -> None:
    """A verified frame's pixels are replaced by a confirmed claim's render (claims._replace): it stays verified, no
    move (its table has no verified → verified)."""
    assert frame.state == FrameState.VERIFIED, f"frame {frame.id} is {frame.state}, not verified"
    frame.blob_sha256, frame.worker_id, frame.verified_by = sha256, worker_id, verified_by
    frame.verified_at = now()


def move_check(check: Check, new: str) -> None:
    """A check that leaves ``leased`` has no lease to expire (its verifier is kept, for the record); one judged
    is stamped ``decided_at``."""
    check_move(CHECK_TRANSITIONS, check.state, new)
    check.state = new
    if new != CheckState.LEASED:
        check.lease_expires = None
    if new == CheckState.DONE:
        check.decided_at = now()


def move_key(key: VerificationKey, new: str) -> None:
    check_move(KEY_TRANSITIONS, key.state, new)
    key.state = new


def move_claim(claim: Claim, new: str, outcome: str) -> None:
    """A claim is decided (confirmed or rejected), saying why in ``outcome``."""
    check_move(CLAIM_TRANSITIONS, claim.state, new)
    claim.state, claim.outcome, claim.decided_at = new, outcome, now()


def move_where(model: type[Task] | type[Check] | type[Frame], old: str, new: str, *where: ColumnElement[bool],
               **values: Any) -> int:
    """Compare-and-set: ``UPDATE model SET state = new, **values WHERE state = old AND where``; the rows moved (1:
    this caller won the row, 0: another transaction moved it first). A lease's effects are the caller's values (its
    holder, its expiry), or cleared here for a check going back to the queue. The session's copies of the rows are
    not refreshed: reload what was won."""
    check_move(TABLES[model], old, new)
    if model is Check and new == CheckState.QUEUED:
        values.setdefault("lease_expires", None)
    moved = cast(CursorResult[Any], db.session.execute(
        update(model).where(model.state == old, *where).values(state=new, **values)
        .execution_options(synchronize_session=False)))
    return moved.rowcount


def missing_frames(task: Task, frames: list[Frame] | None = None) -> list[int]:
    """Frames of ``task`` that have no accepted pixels yet (``frames``: the task's, if the caller has read them)."""
    if frames is None:
        frames = list(db.session.execute(select(Frame).filter_by(task_id=task.id).order_by(Frame.number)).scalars())
    return [f.number for f in frames if f.state not in FrameState.HAVE_PIXELS]


def finish_job_if_complete(job: Job) -> None:
    """A running job whose every task is done is completed; so is a paused one (there is nothing left to pause:
    the leases it had when it was paused finished its work)."""
    if job.state not in (JobState.RUNNING, JobState.PAUSED):
        return
    open_tasks = db.session.execute(
        select(func.count()).select_from(Task).where(Task.job_id == job.id, Task.state != TaskState.DONE)
    ).scalar_one()
    if open_tasks == 0:
        move_job(job, JobState.COMPLETED)
        events.record(events.JOB_COMPLETED, f"job {job.id} ({job.name}) completed: {job.frames_spec}", job=job)
