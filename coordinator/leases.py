"""Claiming tasks for workers and keeping, losing and expiring their leases.

The claim is a compare-and-set ``UPDATE … WHERE state='queued'``: two claimers (threads, or coordinators
sharing one PostgreSQL) can never both win the same task.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

from flask import current_app
from sqlalchemy import CursorResult, func, select, tuple_, update

from . import capabilities, events, failure_accounting
from .db import ROW_LOCK, db, reading
from .models import AccountBlock, Check, Frame, Job, JobBlock, Task, Worker, now
from .outcomes import fail_job, record_failure, requeue
from .states import CheckState, FrameState, JobState, TaskState
from .transitions import LostLease, move_job, move_where
from .verification import leasing, waits

CLAIM_CANDIDATES = 20
#: The reason of a task lease that ran out (expire_leases), which the reaper logs with what it knows of the agent.
EXPIRED = "lease expired"


def lease_timeout() -> float:
    return float(current_app.config["FRAMEHIVE_LEASE_TIMEOUT"])


def claim_task(worker_id: int) -> Task | None:
    """Lease the best queued task this worker may run (:func:`lease_task`), or return None. Commits."""
    worker = db.session.get(Worker, worker_id)
    task = lease_task(worker) if worker is not None and _anything_queued() else None
    db.session.commit()
    return task


def lease_task(worker: Worker) -> Task | None:
    """Lease the best queued task this worker may run, or return None. No commit: the dispatcher's pass leases to
    several agents in one transaction (dispatch.Dispatcher._lease_to), :func:`claim_task` to one.

    Only tasks of queued or running jobs are leased (not of paused ones), highest job priority first. The
    claim repeats the job-state condition, so a pause that commits between the choice and the claim wins on
    one database; across coordinators a claim that raced a pause is a lease in flight, which may finish.
    Jobs the worker or its account is blocklisted for are skipped, and tasks its account failed come last, only
    if no online agent of another account may take them (failure_accounting.claim_order).
    """
    if worker.suspended or (worker.roles and "render" not in worker.roles):
        return None  # suspended, or a verify-only agent
    blocked = select(JobBlock.job_id).where(JobBlock.worker_id == worker.id)
    blocked_account = select(AccountBlock.job_id).where(AccountBlock.account_id == worker.account_id)
    fits = capabilities.render_condition(worker)  # its Blender, its device, the job's cap on agents
    dispatchable = select(Job.id).where(Job.state.in_(JobState.DISPATCHABLE), fits)
    candidates = db.session.execute(
        select(Task.id, failure_accounting.failed_by(worker.account_id))
        .join(Job, Job.id == Task.job_id)
        .where(Task.state == TaskState.QUEUED, Job.state.in_(JobState.DISPATCHABLE), Job.id.not_in(blocked),
               Job.id.not_in(blocked_account), fits)
        .order_by(Job.priority.desc(), Job.id, Task.id)
        .limit(CLAIM_CANDIDATES)
    ).all()
    failed = {task_id for task_id, failed_here in candidates if failed_here}
    for task_id in failure_accounting.claim_order([task_id for task_id, _ in candidates], worker.account_id, failed):
        won = move_where(Task, TaskState.QUEUED, TaskState.LEASED, Task.id == task_id, Task.job_id.in_(dispatchable),
                         worker_id=worker.id, attempt=Task.attempt + 1, lease_expires=now() + lease_timeout(),
                         updated_at=now())
        if won == 1:
            task = db.session.get(Task, task_id, populate_existing=True)
            assert task is not None
            if task.job.state == JobState.QUEUED:
                move_job(task.job, JobState.RUNNING)
            return task
    return None


def _anything_queued() -> bool:
    """Whether any task of a job that may be dispatched is queued. A claim on its own (claim_task) asks this first:
    when nothing is queued (every task leased, the jobs waiting for their checks), it ends here instead of building
    and running the per-agent candidate query (its SQL expression alone was 4 % of the coordinator's time at 100
    agents, benchmarks/fleet.py). The dispatcher's pass counts the queued work once for all its agents instead
    (queued_work)."""
    return db.session.execute(select(Task.id).join(Job, Job.id == Task.job_id).where(
        Task.state == TaskState.QUEUED, Job.state.in_(JobState.DISPATCHABLE)).limit(1)).first() is not None


def queued_work() -> tuple[int, int]:
    """How many tasks and checks are queued that an idle agent might lease now: tasks as claim_task finds them
    (of jobs that may be dispatched), checks as verification.leasing.claim_check does (of active jobs, or of the
    kinds that outlive their job). One read, and on SQLite without the write lock (db.reading: it only reads), for
    the dispatcher's pass (dispatch.Dispatcher._dispatch_to_idle), which asks no agent when both are 0."""
    with reading():
        tasks = db.session.execute(select(func.count()).select_from(Task).join(Job, Job.id == Task.job_id).where(
            Task.state == TaskState.QUEUED, Job.state.in_(JobState.DISPATCHABLE))).scalar_one()
        checks = db.session.execute(select(func.count()).select_from(Check).join(Job, Job.id == Check.job_id).where(
            Check.state == CheckState.QUEUED,
            Job.state.in_(JobState.ACTIVE) | Check.kind.in_(leasing.AFTER_THE_JOB))).scalar_one()
        db.session.commit()
    return tasks, checks


def held_task(worker_id: int, task_id: int, attempt: int | None = None) -> Task | None:
    """The task if ``worker_id`` holds its lease (for ``attempt``, when given), else None.

    Read under the task's row lock (_locked_task): the reaper or a disconnect that would take the lease waits for
    this transaction, and one that took it first is seen here (the lease is lost: None)."""
    task = _locked_task(task_id)
    if task is None or task.state != TaskState.LEASED or task.worker_id != worker_id:
        return None
    if attempt is not None and task.attempt != attempt:
        return None
    return task


def _locked_task(task_id: int) -> Task | None:
    """Reload the task from its row and hold the row until the transaction ends (db.ROW_LOCK on PostgreSQL), so a
    decision about its lease is made on its state now, not on what this session read before. Changes this
    transaction made are flushed first, so they are what is reloaded. Locking the task before its frames is the
    order every lease change follows (a heartbeat's renew, a result, a failure, the reaper, a disconnect)."""
    db.session.flush()
    return db.session.get(Task, task_id, populate_existing=True, with_for_update=ROW_LOCK)


def renew(worker_id: int, task_id: int, attempt: int | None, rendering_frame: int | None = None) -> bool:
    """Extend the lease ``worker_id`` holds on the task (for ``attempt``, when given), and optionally mark the frame
    it just started: two compare-and-set UPDATEs, the task's row first as every lease change locks it, and no row
    read (a heartbeat was a locked read of the task, a read of the frame and two writes: issue 16). False, and
    nothing written, if the worker does not hold that lease. Commits."""
    held = [Task.id == task_id, Task.worker_id == worker_id] + ([Task.attempt == attempt] if attempt is not None
                                                                 else [])
    renewed = cast(CursorResult[Any], db.session.execute(
        update(Task).where(Task.state == TaskState.LEASED, *held).values(lease_expires=now() + lease_timeout())
        .execution_options(synchronize_session=False))).rowcount
    if renewed and rendering_frame is not None:
        move_where(Frame, FrameState.QUEUED, FrameState.RENDERING, Frame.task_id == task_id,
                   Frame.number == rendering_frame)
    db.session.commit()
    return bool(renewed)


def renew_held(held: list[tuple[int, int, int]]) -> None:
    """Extend the leases (task id, worker id, attempt) whose holder still holds them, in one UPDATE (the rows
    whose lease changed meanwhile are left alone). No commit. channel_upkeep's, for every connected agent's task."""
    if held:
        db.session.execute(update(Task).where(Task.state == TaskState.LEASED,
                                              tuple_(Task.id, Task.worker_id, Task.attempt).in_(held))
                           .values(lease_expires=now() + lease_timeout()).execution_options(synchronize_session=False))


def hand_back(task: Task) -> None:
    """The worker gives the task back (graceful shutdown): requeue, no failure counted. Commits."""
    requeue(task)
    db.session.commit()


def release_worker(worker_id: int, reason: str, handed_back: tuple[int, int] | None = None) -> list[LostLease]:
    """The worker disconnected: every lease it holds is lost (counted as a failure), but for ``handed_back`` (task
    id, attempt), requeued without one if the worker holds that very lease (worker_channel: what a hello says its
    agent dropped when its connection was lost). Commits."""
    lost: list[LostLease] = []
    held = db.session.execute(select(Task.id).filter_by(worker_id=worker_id, state=TaskState.LEASED)).scalars().all()
    for task_id in held:
        task = held_task(worker_id, task_id)
        if task is None:
            _race_lost(task_id, f"worker {worker_id} disconnected")
            continue
        if handed_back == (task.id, task.attempt):
            requeue(task)
            continue
        lost.extend(record_failure(task, "lease_lost", reason))
    db.session.commit()
    return lost


def expire_leases(still_working: Callable[[int, str, int], bool] | None = None) -> list[LostLease]:
    """Requeue tasks whose lease ran out (a silent worker). Commits. ``still_working(worker id, "task", task id)``
    (Dispatcher.still_working): a lease whose agent is connected here with the task in hand and alive is renewed
    instead.

    Each lease is looked at again under its task's row lock: a result, a failure or a heartbeat that came in
    since the expired leases were listed (another thread, or another coordinator on the same database), or this
    pass's own requeue of the task (its account was blocklisted by an earlier failure in the pass), wins, and the
    lease is left as it now is."""
    lost: list[LostLease] = []
    expired = db.session.execute(
        select(Task.id).where(Task.state == TaskState.LEASED, Task.lease_expires < now())
    ).scalars().all()
    for task_id in expired:
        task = _locked_task(task_id)
        if task is None or task.state != TaskState.LEASED or task.lease_expires is None \
                or task.lease_expires >= now():
            _race_lost(task_id, "its lease expired")
            continue
        if still_working is not None and task.worker_id is not None \
                and still_working(task.worker_id, "task", task.id):
            current_app.logger.info("task %s: the lease of worker %s ran out while its agent works; renewed", task.id,
                                    task.worker_id)
            task.lease_expires = now() + lease_timeout()
            continue
        lost.append(LostLease(task.id, task.worker_id or 0, EXPIRED))
        lost.extend(record_failure(task, "lease_lost", "no heartbeat before the lease expired"))
    db.session.commit()
    return lost


def _race_lost(task_id: int, what: str) -> None:
    current_app.logger.info("task %s: %s, but its lease had already changed (finished, failed, renewed or taken "
                            "back); nothing to do", task_id, what)


def settle_jobs_nobody_may_run() -> list[LostLease]:
    """Live jobs with queued work whose every online agent is blocklisted for them: fail those whose blocks are
    conclusive (agents of two accounts, the job's own or a trusted one failed them), and let the others wait,
    saying why in ``Job.waiting`` (and an event) until an agent that may take them is online. A paused job
    waits as it is: nobody is meant to run it now, and an admin may unblock agents before resuming it.
    Frames waiting for checks nobody online may take (yet) are said there too (verification/waits.py)."""
    queued = set(db.session.execute(select(Task.job_id).where(Task.state == TaskState.QUEUED)).scalars())
    checking = waits.jobs_with_queued_checks()
    jobs = db.session.execute(select(Job).where(
        (Job.state.in_(JobState.DISPATCHABLE) & Job.id.in_(queued)) | Job.id.in_(checking)
        | Job.waiting.is_not(None))).scalars().all()
    # Every online agent read once, and only when a job is to be looked at (every second, twice, before: 2,000
    # rows a second at 1,000 agents, issue 16).
    agents = failure_accounting.online_agents() if jobs else []
    online, verifiers = failure_accounting.online_renderers(agents), waits.online_verifiers(agents)
    lost: list[LostLease] = []
    for job in jobs:
        live = job.state in JobState.DISPATCHABLE and job.id in queued
        verdict = _nobody_may_take(job, online) if live else None
        if verdict is not None and verdict.fail is not None:
            lost.extend(fail_job(job, verdict.fail))
            continue
        checks = waits.why_checks_wait(job, verifiers) if job.id in checking else None
        _say_why_waiting(job, "; ".join(r for r in (verdict.wait if verdict else None, checks) if r) or None)
    db.session.commit()
    return lost


def _nobody_may_take(job: Job, online: list[Worker]) -> failure_accounting.Waiting | None:
    """No online agent fits the job (its Blender, its device), or every one that fits is blocklisted for it."""
    reason = capabilities.waiting_reason(job, online)
    if reason is not None:
        return failure_accounting.Waiting(wait=reason)
    return failure_accounting.waiting_verdict(job, capabilities.able(job, online))


def _say_why_waiting(job: Job, reason: str | None) -> None:
    if reason == job.waiting:
        return
    before, job.waiting = job.waiting, reason
    # The reason names the waiting frames and a time, which change as frames come in one by one: a new event
    # only when what the job waits for changes, not for every frame that joins the wait.
    if reason is not None and (before is None or _gist(before) != _gist(reason)):
        current_app.logger.info("job %s waits: %s", job.id, reason)
        events.record(events.JOB_WAITING, f"job {job.id} ({job.name}) waits: {reason}", job=job)


def _gist(reason: str) -> str:
    """A waiting reason without its frame numbers and times."""
    return re.sub(r"\bframes? [\d,-]+|\d\d:\d\d UTC", "#", reason)


def mark_silent_workers_offline() -> int:
    """Workers not heard from for two lease timeouts are offline (their coordinator may have died). Commits."""
    stale = cast(CursorResult[Any], db.session.execute(
        update(Worker).where(Worker.online.is_(True), Worker.last_seen < now() - 2 * lease_timeout())
        .values(online=False).execution_options(synchronize_session=False)
    )).rowcount
    db.session.commit()
    return stale
