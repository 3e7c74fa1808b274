"""The commit point: a task's frames are all uploaded (their hashes recorded), so its keys may be revealed.

Only now does the coordinator look at the secret keys: each is used if its pre-drawn dice fall under the
renderer's check rate (the task's region key: adaptive trust; each frame's spot key: the spot rate, for frames
no region check covers). Used keys become checks for blind verifiers; without any, the frames are accepted
on the renderer's trust. Frames that tier 0 flagged (blank, or a copy of another frame) are always checked.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from .. import payments
from ..db import db
from ..models import Check, Frame, Job, Task, VerificationKey, Worker
from ..states import FrameState, KeyState, TaskState
from ..transitions import accepted, finish_job_if_complete, move_key, move_task
from . import keys, trust
from .checks import new_check, task_checks
from .reexamine import reexamine


def frames_of(task: Task) -> list[Frame]:
    """The task's frames in number order, with their renderers and the renderers' accounts (committing reads them
    all: they were a lazy load each, issue 16)."""
    return list(db.session.execute(select(Frame).filter_by(task_id=task.id).order_by(Frame.number)
                                   .options(joinedload(Frame.worker).joinedload(Worker.account))).scalars())


def commit_task(task: Task, frames_read: list[Frame] | None = None) -> None:
    """Use the task's keys, queue checks or accept the frames. ``frames_read``: frames_of(task), when the caller has
    read them in this transaction. No commit: the caller's transaction."""
    job: Job = task.job
    frames = {f.number: f for f in (frames_of(task) if frames_read is None else frames_read)}
    sealed = list(db.session.execute(
        select(VerificationKey).filter_by(task_id=task.id, state=KeyState.SEALED)).scalars())
    used: list[VerificationKey] = []
    for key in (k for k in sealed if k.kind not in ("spot", "tier1")):
        renderer = frames[key.frame].worker
        _use_if(key, renderer is not None and key.draw < _rate(job, renderer), used)
    covered = {k.frame for k in used}
    for frame in frames.values():
        if frame.flags and frame.number not in covered and frame.worker is not None \
                and not frame.worker.account.trusted:
            key = keys.extra_key(job, task, frame.number)
            move_key(key, KeyState.USED)
            db.session.add(key)
            db.session.flush()
            used.append(key)
            covered.add(frame.number)
    # Spots look at the frames no region check covers (one check per frame is what the escrow pays for).
    for key in (k for k in sealed if k.kind == "spot"):
        renderer = frames[key.frame].worker
        _use_if(key, renderer is not None and key.frame not in covered and key.draw < spot_rate(renderer), used)
    # Tier 1 looks at the whole frame, on top of the checks above: it sees local cheats they miss (tier1.py).
    for key in (k for k in sealed if k.kind == "tier1"):
        renderer = frames[key.frame].worker
        _use_if(key, renderer is not None and key.draw < tier1_rate(renderer), used)
    for key in used:
        frame = frames[key.frame]
        assert frame.worker is not None  # every key above was used only for a frame with a renderer
        # Neither the renderer's owner nor the job's owner may verify it (no self-dealing on checks).
        new_check(key.kind if key.kind in ("spot", "tier1") else "verify", frame, key.region,
                  [frame.worker.account_id, job.account_id], renderer=frame.worker, key=key)
    if used:
        move_task(task, TaskState.VERIFYING)
    else:
        accept_task(task)


def _use_if(key: VerificationKey, use: bool, used: list[VerificationKey]) -> None:
    move_key(key, KeyState.USED if use else KeyState.UNUSED)
    if use:
        used.append(key)


def accept_task(task: Task, checks: list[Check] | None = None) -> None:
    """Every frame of the task is accepted; the task is done. ``checks``: every check of the task, when the caller
    has read them (checks.task_checks), else read here."""
    if checks is None:
        checks = task_checks(task)
    checked = {c.frame_id for c in checks if c.verdict == "pass"}
    for frame in db.session.execute(select(Frame).filter_by(task_id=task.id)).scalars():
        if frame.state == FrameState.RENDERED:
            accepted(frame, "check" if frame.id in checked else "trust")
            reexamine(frame, checks)
            payments.pay_frame(frame)
    move_task(task, TaskState.DONE)
    finish_job_if_complete(task.job)


def spot_rate(renderer: Worker) -> float:
    """Share of a renderer's frames that get a spot check (when no region check covers them)."""
    return 0.0 if renderer.account.trusted else float(current_app.config["FRAMEHIVE_SPOT_RATE"])


def tier1_rate(renderer: Worker) -> float:
    """Share of a renderer's frames that get a tier-1 check (whole frame, low resolution)."""
    return 0.0 if renderer.account.trusted else float(current_app.config["FRAMEHIVE_TIER1_RATE"])


def _rate(job: Job, renderer: Worker) -> float:
    if renderer.account.trusted:
        return 0.0
    if job.policy == "full":
        return 1.0
    if job.policy == "circle":
        # fRender's circle: every renderer's first committed work in a job is checked, the rest is not.
        earlier = db.session.execute(
            select(func.count()).select_from(Check).filter_by(job_id=job.id, renderer_id=renderer.id)
        ).scalar_one()
        return 1.0 if earlier == 0 else 0.0
    return trust.rate_for(renderer)
