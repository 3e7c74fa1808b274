"""What a caught renderer or verifier loses. No commits: callers commit.

A caught renderer: trust reset (suspended after repeated offences), blocklisted for the job, and every
frame of the job it rendered goes back to the queue for someone else (while the job runs). Frames a check
passed are not spared: a check covers one region, and a cheater is not trusted for the rest of the frame.
A caught verifier: trust reset (suspended after repeated offences).
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from .. import events, payments
from ..db import db
from ..models import Frame, Job, JobBlock, Task, Worker
from ..states import FrameState, JobState, TaskState
from ..transitions import LostLease, missing_frames, move_frame, move_task
from . import keys, trust
from .checks import void_checks


def renderer_caught(renderer: Worker, job: Job, reason: str) -> list[LostLease]:
    current_app.logger.warning("renderer %s (%s) caught on job %s: %s", renderer.id, renderer.name, job.id, reason)
    _caught(renderer, events.CHEAT_CAUGHT, f"renderer {renderer.name} caught cheating on job {job.id}: {reason}", job)
    payments.claw_back(renderer, job)  # forfeits what it earned here: to the escrow, or the artist if over
    payments.forfeit_stake(renderer, reason)
    if db.session.execute(select(JobBlock).filter_by(job_id=job.id, worker_id=renderer.id)).first() is None:
        db.session.add(JobBlock(job_id=job.id, worker_id=renderer.id))
    if job.state not in JobState.ACTIVE:
        return []
    lost: list[LostLease] = []
    bad = db.session.execute(select(Frame).where(
        Frame.job_id == job.id, Frame.worker_id == renderer.id,
        Frame.state.in_((FrameState.RENDERED, FrameState.VERIFIED)))).scalars().all()
    task_ids: dict[int, None] = {}  # the tasks to render again, in order, each once
    for frame in bad:
        move_frame(frame, FrameState.QUEUED)  # its pixels and renderer go with it
        task_ids[frame.task_id] = None
    held = db.session.execute(select(Task).where(Task.job_id == job.id, Task.state == TaskState.LEASED,
                                                 Task.worker_id == renderer.id)).scalars().all()
    for task in held:  # work still in its hands: taken away before it can upload more
        task_ids.setdefault(task.id)
        for frame in db.session.execute(select(Frame).filter_by(task_id=task.id,
                                                                state=FrameState.RENDERING)).scalars():
            move_frame(frame, FrameState.QUEUED)
    for task_id in task_ids:
        again = db.session.get(Task, task_id)
        assert again is not None
        lost.extend(_rerender(job, again))
    return lost


def _rerender(job: Job, task: Task) -> list[LostLease]:
    """Send a task back to the queue with fresh secret keys."""
    lost: list[LostLease] = []
    for check in void_checks(task):
        if check.verifier_id:
            lost.append(LostLease(0, check.verifier_id, "the frame under check is being rendered again",
                                  check_id=check.id))
    if task.state == TaskState.LEASED:
        lost.append(LostLease(task.id, task.worker_id or 0, "frames reassigned after a cheat"))
    if task.state != TaskState.QUEUED:
        move_task(task, TaskState.QUEUED)
    keys.redraw_keys(job, task, missing_frames(task) or task.frame_numbers)
    return lost


def verifier_caught(verifier: Worker, reason: str) -> None:
    current_app.logger.warning("verifier %s (%s) caught: %s", verifier.id, verifier.name, reason)
    _caught(verifier, events.VERIFIER_CAUGHT, f"verifier {verifier.name} caught: {reason}")
    payments.forfeit_stake(verifier, reason)


def _caught(worker: Worker, kind: str, message: str, job: Job | None = None) -> None:
    """Trust reset (and suspension after repeated offences), and the events saying so."""
    was_suspended = worker.suspended
    trust.caught(worker)
    events.record(kind, message, job=job, worker=worker)
    if worker.suspended and not was_suspended:
        events.record(events.WORKER_SUSPENDED, f"worker {worker.name} suspended after {worker.times_caught} "
                                               "offences", worker=worker)
