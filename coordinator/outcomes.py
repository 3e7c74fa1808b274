"""What happens to tasks and jobs when results, failures and cancels come in.

Three are whole transactions and commit before returning: ``cancel_job``, ``frame_rendered`` and ``task_done``.
The others (``requeue``, ``record_failure``, ``check_limit_hit``, ``take_back``, ``fail_job``) are steps of their
caller's transaction and leave the commit to it. Those that take leases away return them (``LostLease``), so the
dispatcher can tell the agents that must drop them; the database stays the source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from framehive.protocol import frameranges
from sqlalchemy import select

from . import events, failure_accounting
from .db import db
from .models import Check, Frame, Job, Task, TaskFailure, Worker, now
from .states import CheckState, FrameState, JobState, TaskState
from .transitions import LostLease, missing_frames, move_frame, move_job, move_task, rendered
from .verification import leasing as check_leasing
from .verification.checks import void_checks
from .verification.commit import commit_task, frames_of

__all__ = ["Done", "LostLease", "cancel_job", "check_limit_hit", "fail_job", "frame_rendered", "record_failure",
           "requeue", "take_back", "task_done"]


def requeue(task: Task) -> None:
    """Put a leased task back in the queue or, if every frame already came in, take it to its commit point
    (``commit_task``: its keys are used, its checks queued). No database commit."""
    for frame in db.session.execute(select(Frame).filter_by(task_id=task.id, state=FrameState.RENDERING)).scalars():
        move_frame(frame, FrameState.QUEUED)
    if missing_frames(task):
        move_task(task, TaskState.QUEUED)
    else:
        commit_task(task)


def record_failure(task: Task, reason: str, error: str = "", log_tail: str = "",
                   limit: str | None = None) -> list[LostLease]:
    """Count a failed attempt: retry elsewhere, blocklist the agent's account, or fail the job
    (failure_accounting says which). ``limit``: the agent's limit the scene exceeded, if that was why. No commit."""
    worker = db.session.get(Worker, task.worker_id) if task.worker_id is not None else None
    assert worker is not None, "only a leased task can fail"
    if limit == failure_accounting.UNSAFE_SCENE:  # its reference check refused the tree: the error says why
        reason = limit
    elif limit is not None:
        reason, error = "limit", f"exceeded the agent's {limit.replace('_', ' ')} limit: {error}"
    db.session.add(TaskFailure(task_id=task.id, job_id=task.job_id, worker_id=worker.id, attempt=task.attempt,
                               reason=reason, error=error[:2000], log_tail=log_tail[-8000:]))
    task.failures += 1
    requeue(task)
    db.session.flush()
    verdict = failure_accounting.task_failed(task, worker, reason, error, limit)
    lost = _take_back_job(task.job, verdict.blocked) if verdict.blocked is not None else []
    lost += [lease for suspended in verdict.suspended for lease in take_back(suspended, "its account was suspended")]
    if verdict.fail is not None and task.job.state in JobState.ACTIVE:  # requeue may have committed the last task
        lost.extend(fail_job(task.job, verdict.fail))
    return lost


def check_limit_hit(check: Check, worker: Worker, limit: str) -> list[LostLease]:
    """A verifier hit one of its limits on ``check`` (already released): no other agent of its account gets the
    check, and the job fails if the scene exceeds the limits of two accounts' agents. No commit."""
    if worker.account_id not in check.excluded_accounts:
        check.excluded_accounts = [*check.excluded_accounts, worker.account_id]
    job = check.frame.job
    failure_accounting.record_limit(job, worker, limit, task_id=check.task_id, check_id=check.id)
    exceeded = failure_accounting.limits_exceeded(job)
    if exceeded is None or job.state not in JobState.ACTIVE:
        return []
    return fail_job(job, exceeded)


def _take_back_job(job: Job, account_id: int) -> list[LostLease]:
    """The leases agents of ``account_id`` hold on ``job`` go back to the queue (the account was blocklisted)."""
    held = db.session.execute(select(Task).join(Worker, Worker.id == Task.worker_id).where(
        Task.job_id == job.id, Task.state == TaskState.LEASED, Worker.account_id == account_id)).scalars().all()
    lost = [LostLease(task.id, task.worker_id or 0, "your account is blocklisted for this job") for task in held]
    for task in held:
        requeue(task)
    return lost


def take_back(worker: Worker, reason: str) -> list[LostLease]:
    """Its task leases back to the queue (no failure counted) and its check leases back to other verifiers. No
    commit."""
    tasks = db.session.execute(select(Task).filter_by(worker_id=worker.id, state=TaskState.LEASED)).scalars().all()
    checks = db.session.execute(select(Check).filter_by(verifier_id=worker.id, state=CheckState.LEASED)).scalars().all()
    for task in tasks:
        requeue(task)
    released = [check for check in checks if check_leasing.release(check)]  # a check judged meanwhile stays done
    return [LostLease(task.id, worker.id, reason) for task in tasks] + \
        [LostLease(0, worker.id, reason, check_id=check.id) for check in released]


def _stop_tasks(job: Job, task_state: str, frame_state: str) -> list[LostLease]:
    lost: list[LostLease] = []
    for task in job.tasks:
        if task.state == TaskState.LEASED:
            lost.append(LostLease(task.id, task.worker_id or 0, f"job {job.state}"))
        # A claim, a ringer, an audit or an arbitration still matters once the job is over (it decides who lied,
        # and a claim holds its claimant's points until it is settled): only checks that hold frames back go.
        for check in void_checks(task, keep=check_leasing.AFTER_THE_JOB):
            lost.append(LostLease(0, check.verifier_id or 0, f"job {job.state}", check_id=check.id))
        if task.state in (TaskState.QUEUED, TaskState.LEASED, TaskState.VERIFYING):
            move_task(task, task_state)
    for frame in job.frames:
        if frame.state not in FrameState.HAVE_PIXELS:
            move_frame(frame, frame_state)
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


def frame_rendered(task: Task, number: int, sha256: str, lease_timeout: float, frame: Frame | None = None) -> bool:
    """Record an uploaded frame (``frame``: its row, if the caller has it loaded in this transaction); False if the
    frame already had pixels (a harmless duplicate)."""
    if frame is None or (frame.task_id, frame.number) != (task.id, number):
        frame = db.session.execute(select(Frame).filter_by(task_id=task.id, number=number)).scalar_one()
    if frame.state in FrameState.HAVE_PIXELS:
        db.session.commit()
        return False
    rendered(frame, sha256, task.worker_id, task.attempt)
    task.lease_expires = now() + lease_timeout
    db.session.commit()
    return True


@dataclass(frozen=True)
class Done:
    """What a worker's task_done came to: the frames it never uploaded (then a failure was counted) and the leases
    that failure took away (its account blocklisted or suspended, the job failed), for their agents to be told."""

    missing: list[int]
    lost: list[LostLease]


def task_done(task: Task) -> Done:
    """The worker says it finished: commit if every frame is in, else count a failure. The frames are read once,
    for both."""
    frames = frames_of(task)
    missing = missing_frames(task, frames)
    lost: list[LostLease] = []
    if missing:
        lost = record_failure(task, "bad_result", f"reported done but frames {frameranges.format_frames(missing)} "
                                                  "were never uploaded")
    else:
        commit_task(task, frames)
    db.session.commit()
    return Done(missing, lost)
