"""What happens to tasks and jobs when results, failures and cancels come in.

Each public function is one transaction and commits before returning. Each returns the leases that other
workers must drop (``LostLease``), so the dispatcher can tell them; the database stays the source of truth.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select

from protocol import frameranges

from . import events
from .db import db
from .models import Frame, Job, JobBlock, Task, TaskFailure, now
from .states import FrameState, JobState, TaskState
from .transitions import LostLease, missing_frames, move_job, move_task
from .verification.checks import void_checks
from .verification.commit import commit_task

__all__ = ["LostLease", "cancel_job", "fail_job", "frame_rendered", "record_failure", "requeue", "task_done"]




def requeue(task: Task) -> None:
    """Put a leased task back in the queue, or commit it if every frame already came in."""
    for frame in db.session.execute(select(Frame).filter_by(task_id=task.id, state=FrameState.RENDERING)).scalars():
        frame.state = FrameState.QUEUED
    if missing_frames(task):
        move_task(task, TaskState.QUEUED)
    else:
        commit_task(task)


def record_failure(task: Task, reason: str, error: str = "", log_tail: str = "") -> list[LostLease]:
    """Count a failed attempt: retry elsewhere, blocklist the worker, or fail the job. No commit."""
    worker_id = task.worker_id
    assert worker_id is not None, "only a leased task can fail"
    db.session.add(TaskFailure(task_id=task.id, job_id=task.job_id, worker_id=worker_id, attempt=task.attempt,
                               reason=reason, error=error[:2000], log_tail=log_tail[-8000:]))
    task.failures += 1
    _blocklist_if_needed(task.job_id, worker_id)
    requeue(task)
    if task.state == TaskState.QUEUED and task.failures >= current_app.config["FRAMEHIVE_MAX_TASK_FAILURES"]:
        message = (f"frames {task.frames_spec} failed {task.failures} times; last error ({reason}): "
                   f"{error or 'none reported'}")
        return fail_job(task.job, message)
    return []


def _blocklist_if_needed(job_id: int, worker_id: int) -> None:
    db.session.flush()  # count the failure just added
    failures = db.session.execute(
        select(func.count()).select_from(TaskFailure).filter_by(job_id=job_id, worker_id=worker_id)
    ).scalar_one()
    blocked = db.session.execute(select(JobBlock).filter_by(job_id=job_id, worker_id=worker_id)).first()
    if failures >= current_app.config["FRAMEHIVE_BLOCKLIST_THRESHOLD"] and blocked is None:
        db.session.add(JobBlock(job_id=job_id, worker_id=worker_id))
        current_app.logger.warning("worker %s blocklisted for job %s after %d failures", worker_id, job_id,
                                   failures)


def _stop_tasks(job: Job, task_state: str, frame_state: str) -> list[LostLease]:
    lost: list[LostLease] = []
    for task in job.tasks:
        if task.state == TaskState.LEASED:
            lost.append(LostLease(task.id, task.worker_id or 0, f"job {job.state}"))
        for check in void_checks(task):
            lost.append(LostLease(0, check.verifier_id or 0, f"job {job.state}", check_id=check.id))
        if task.state in (TaskState.QUEUED, TaskState.LEASED, TaskState.VERIFYING):
            move_task(task, task_state)
    for frame in job.frames:
        if frame.state not in FrameState.HAVE_PIXELS:
            frame.state = frame_state
    return lost


def fail_job(job: Job, message: str) -> list[LostLease]:
    """Fail ``job`` and stop all its unfinished tasks as failed (job_control.requeue_job may restart them).
    No commit."""
    move_job(job, JobState.FAILED, message)
    current_app.logger.warning("job %s failed: %s", job.id, message)
    events.record(events.JOB_FAILED, f"job {job.id} ({job.name}) failed: {message}", job=job)
    return _stop_tasks(job, TaskState.FAILED, FrameState.FAILED)


def cancel_job(job: Job, by: str | None = None) -> list[LostLease]:
    """Cancel a live job (``by``: who did, when known); frames already rendered stay downloadable. Commits."""
    who = "its owner" if by is None or by == job.account.name else by
    move_job(job, JobState.CANCELLED, f"cancelled by {who}")
    events.record(events.JOB_CANCELLED, f"job {job.id} ({job.name}) cancelled", job=job, actor=by)
    lost = _stop_tasks(job, TaskState.CANCELLED, FrameState.CANCELLED)
    db.session.commit()
    return lost


def frame_rendered(task: Task, number: int, sha256: str, lease_timeout: float) -> bool:
    """Record an uploaded frame; False if the frame already had pixels (a harmless duplicate)."""
    frame = db.session.execute(select(Frame).filter_by(task_id=task.id, number=number)).scalar_one()
    if frame.state in FrameState.HAVE_PIXELS:
        db.session.commit()
        return False
    frame.state = FrameState.RENDERED
    frame.blob_sha256 = sha256
    frame.worker_id = task.worker_id
    frame.attempt = task.attempt
    frame.rendered_at = now()
    task.lease_expires = now() + lease_timeout
    db.session.commit()
    return True


def task_done(task: Task) -> list[int]:
    """The worker says it finished: commit if every frame is in, else count a failure. Returns missing."""
    missing = missing_frames(task)
    if missing:
        record_failure(task, "bad_result", f"reported done but frames {frameranges.format_frames(missing)} "
                                           "were never uploaded")
    else:
        commit_task(task)
    db.session.commit()
    return missing
