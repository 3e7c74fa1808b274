"""What an admin (or a job's owner) does to a job: pause, resume, requeue, change its priority, cancel.

Each action is one transaction: it reloads the job under a row lock, refuses with :class:`JobControlError` when
the job's state does not allow it (before anything is written), changes the job, records an event naming who
acted (``by``), commits, and then tells the dispatcher, which hands out the work the action made available.

- **pause**: a queued or running job's queued tasks are leased to nobody; leases in flight may finish, their
  frames are checked and paid as usual, and the escrow stays with the job. A paused job whose last work
  finishes is completed (transitions.finish_job_if_complete).
- **resume**: back to running (or queued, if no task was ever leased).
- **requeue**: tasks that failed get a fresh start (see :func:`requeue_job`); a failed job lives again if its
  owner can pay again for the frames it still owes.
- **priority**: higher first, from config.MIN_PRIORITY to config.MAX_PRIORITY.
- **cancel**: outcomes.cancel_job, the one cancel there is; when the owner cancels, payments.cancel_fee first.
"""

from __future__ import annotations

from typing import NoReturn

from framehive.protocol.json_numbers import is_int
from sqlalchemy import select

from . import config, events, ledger, outcomes, payments
from .db import db, lock
from .dispatch import dispatcher
from .errors import ActionRefused
from .models import Frame, Job, Task
from .states import FrameState, JobState, TaskState
from .transitions import finish_job_if_complete, missing_frames, move_frame, move_job, move_task
from .verification.commit import commit_task
from .verification.keys import redraw_keys


class JobControlError(ActionRefused):
    """The action is not allowed in the job's state (409), or its argument is bad (400), or the owner cannot
    pay for a requeue (402). ``code`` and ``message`` say which."""


def pause_job(job: Job, *, by: str | None = None) -> None:
    """Stop leasing the job's queued tasks; leases in flight may finish. Refused unless queued or running."""
    lock(job)
    if job.state not in JobState.DISPATCHABLE:
        _refuse("not_pausable", f"job {job.id} is {job.state}; only a queued or running job can be paused")
    move_job(job, JobState.PAUSED)
    events.record(events.JOB_PAUSED, f"job {job.id} ({job.name}) paused", job=job, actor=by)
    db.session.commit()


def resume_job(job: Job, *, by: str | None = None) -> None:
    """Lease the job's queued tasks again. Refused unless paused."""
    lock(job)
    if job.state != JobState.PAUSED:
        _refuse("not_paused", f"job {job.id} is {job.state}, not paused")
    move_job(job, _live_state(job))
    events.record(events.JOB_RESUMED, f"job {job.id} ({job.name}) resumed", job=job, actor=by)
    dispatcher().kick()  # commits


def requeue_job(job: Job, *, by: str | None = None) -> int:
    """Give the job's failed tasks a fresh start; returns how many tasks got one.

    - A **failed** job: every task its failure stopped (state ``failed``) goes back to the queue with its
      failure count cleared and fresh secret keys; a task whose frames had all come in goes straight to its
      checks. The failure refunded the escrow, so the owner pays again for the frames the job still owes
      (unverified ones, at the submit price); if the balance does not cover that, 402 ``insufficient_points``
      and nothing changes. The job is then running again (queued if it never started). If every online worker
      is still blocklisted for it, the reaper fails it again: unblock one first.
    - A **queued, running or paused** job: tasks waiting for a retry after failed attempts get their failure
      count cleared (the three-strikes budget starts again); the job's state does not change.

    The attempt counter is never reset: it is the idempotency key of worker reports (a late report of an old
    lease must never match a new one). Failure history (the log tails) and per-job blocklists stay
    (worker_control.unblock_worker lifts those). Refused for completed and cancelled jobs.
    """
    lock(job)
    if job.state in (JobState.COMPLETED, JobState.CANCELLED):
        _refuse("job_finished", f"job {job.id} is {job.state}; there is nothing to requeue")
    if job.files_collected_at is not None:
        _refuse("files_collected", f"job {job.id}'s files were deleted after the retention period; submit it anew")
    count = _revive(job) if job.state == JobState.FAILED else _fresh_budgets(job)
    events.record(events.JOB_REQUEUED, f"job {job.id} ({job.name}): {count} task(s) requeued", job=job, actor=by)
    dispatcher().kick()  # commits
    return count


def set_priority(job: Job, priority: object, *, by: str | None = None) -> None:
    """Change a live job's priority (higher is leased first). Refused for finished jobs and bad values (400)."""
    if not is_int(priority) or not config.MIN_PRIORITY <= priority <= config.MAX_PRIORITY:
        raise JobControlError("bad_priority", f"the priority must be an integer from {config.MIN_PRIORITY} to "
                                              f"{config.MAX_PRIORITY}", status=400)
    lock(job)
    if job.state in JobState.FINAL:
        _refuse("job_finished", f"job {job.id} is already {job.state}")
    old, job.priority = job.priority, priority
    events.record(events.JOB_PRIORITY, f"job {job.id} ({job.name}) priority {old} -> {priority}", job=job, actor=by)
    dispatcher().kick()  # commits


def cancel_job(job: Job, *, by: str | None = None) -> None:
    """Cancel a live job and tell the workers holding its leases to stop. Refused for finished jobs. The owner
    (``by`` is its account's name) pays the cancel fee out of the escrow, whatever it cancels through (the API,
    the dashboard): creating and cancelling jobs in a loop writes rows that stay. An admin's cancel is free."""
    lock(job)
    if job.state in JobState.FINAL:
        _refuse("job_finished", f"job {job.id} is already {job.state}")
    if by is not None and by == job.account.name:
        payments.cancel_fee(job)
    lost = outcomes.cancel_job(job, by)  # commits
    dispatcher().drop_leases(lost)
    dispatcher().kick()


def _refuse(code: str, message: str, status: int = 409, **details: object) -> NoReturn:
    db.session.rollback()  # release the row lock; nothing was written
    raise JobControlError(code, message, status, **details)


def _live_state(job: Job) -> str:
    return JobState.RUNNING if job.started_at is not None else JobState.QUEUED


def _revive(job: Job) -> int:
    """A failed job: charge what it still owes, then restart its stopped tasks. No commit."""
    tasks = [t for t in job.tasks if t.state == TaskState.FAILED]
    if not tasks:
        _refuse("nothing_to_requeue", f"job {job.id} has no failed tasks")
    owed = sum(1 for t in tasks for f in _frames(t) if f.state != FrameState.VERIFIED)
    price = payments.job_price(owed)
    available = ledger.balance(ledger.account_book(job.account_id))
    if available < price:
        _refuse("insufficient_points", f"requeueing job {job.id} costs {price} points for its {owed} unverified "
                                            f"frames and the balance is {available}", 402, balance=available,
                price=price)
    move_job(job, _live_state(job))
    payments.charge(job, owed)
    for task in tasks:
        _restart(job, task)
    finish_job_if_complete(job)  # every restarted task may have been accepted at once
    return len(tasks)


def _restart(job: Job, task: Task) -> None:
    """Back to the queue with a fresh failure budget and fresh keys (the old ones' checks were voided when the
    job failed); a task with every frame in goes straight to its checks. No commit."""
    task.failures = 0
    missing = missing_frames(task)
    frames = _frames(task)
    for frame in frames:
        if frame.number in missing and frame.state != FrameState.QUEUED:
            move_frame(frame, FrameState.QUEUED)
    pending = [frame.number for frame in frames if frame.state != FrameState.VERIFIED]
    if not pending:
        redraw_keys(job, task, [])
        move_task(task, TaskState.DONE)
        return
    redraw_keys(job, task, pending)
    db.session.flush()
    if missing:
        move_task(task, TaskState.QUEUED)
    else:
        commit_task(task)


def _fresh_budgets(job: Job) -> int:
    """A live job: clear the failure count of its tasks awaiting a retry. No commit."""
    waiting = [t for t in job.tasks if t.state == TaskState.QUEUED and t.failures > 0]
    for task in waiting:
        task.failures = 0
    return len(waiting)


def _frames(task: Task) -> list[Frame]:
    return list(db.session.execute(select(Frame).filter_by(task_id=task.id).order_by(Frame.number)).scalars())
