"""State changes of jobs and tasks, checked against the transition tables in ``states``. No commits."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from . import events
from .db import db
from .models import Frame, Job, Task, now
from .payments import refund
from .states import JOB_TRANSITIONS, TASK_TRANSITIONS, FrameState, JobState, TaskState, check_move


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


def missing_frames(task: Task) -> list[int]:
    """Frames of ``task`` that have no accepted pixels yet."""
    return [
        f.number
        for f in db.session.execute(select(Frame).filter_by(task_id=task.id).order_by(Frame.number)).scalars()
        if f.state not in FrameState.HAVE_PIXELS
    ]


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
