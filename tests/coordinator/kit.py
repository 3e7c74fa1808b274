"""Helpers for driving verification and payments through the scheduler functions on a real database.

Frames are noise images (a seed per frame): the plumbing is what these tests are about; decisions on
real renders are tested end to end and in test_frame_analysis.py.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import outcomes
from framehive.coordinator.db import db
from framehive.coordinator.models import Blob, Check, Frame, Job, Task
from framehive.coordinator.states import CheckState
from framehive.coordinator.storage_access import storage
from framehive.coordinator.tier0 import inspect_frame
from framehive.coordinator.verification import decide, keys
from sqlalchemy import select


def noise_png(seed: int, width: int = 64, height: int = 36) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return fa.encode_png(pixels)


def store(data: bytes, uploader_id: int | None = None) -> str:
    """The blob row as an upload makes it (``uploader_id``: the sending account, a renderer's for a frame)."""
    sha = hashlib.sha256(data).hexdigest()
    if db.session.get(Blob, sha) is None:
        storage().put(sha, io.BytesIO(data), len(data))
        db.session.add(Blob(sha256=sha, size=len(data), uploader_id=uploader_id))
    return sha


def stored_bytes(app, sha: str) -> bytes:  # type: ignore[no-untyped-def]
    """A stored blob's bytes: what another account must send itself before its jobs may name that blob."""
    return app.extensions["framehive_storage"].path(sha).read_bytes()


def render(task: Task, image=None) -> None:  # type: ignore[no-untyped-def]
    """Upload every frame of the task the way the frame endpoint does (tier 0 included), then task_done. Frames
    are ``image(number)``, by default the noise of their number at the job's size."""
    job = task.job
    for frame in db.session.execute(select(Frame).filter_by(task_id=task.id)).scalars():
        data = image(frame.number) if image else noise_png(frame.number, job.resolution_x, job.resolution_y)
        info = inspect_frame(data, frame, 10**8)
        frame.tile_hashes, frame.tile_key, frame.flags = info.tile_hashes, info.tile_key, info.flags
        outcomes.frame_rendered(task, frame.number, store(data, task.worker.account_id), 30)
    outcomes.task_done(task)


#: The noise frames' size where tier 1 looks (tier1.factor_for: 1/5, a 32x18 low image); the sample scene's
#: 64x36 is too small for it.
TIER1_SIZE = (160, 90)


def tier1_on(app, job: Job) -> None:  # type: ignore[no-untyped-def]
    """Tier 1 for every frame of ``job``, made a TIER1_SIZE job (noise frames have any size), its keys drawn anew."""
    app.config["FRAMEHIVE_TIER1_RATE"] = 1.0
    job.resolution_x, job.resolution_y = TIER1_SIZE
    for task in job.tasks:
        keys.redraw_keys(job, task, task.frame_numbers)
    db.session.commit()


def judge(check: Check, result: bytes) -> None:
    """decide.judge on a verifier's result, as its upload does: the check is leased first if a test left it queued
    (only a leased check is judged: states.CHECK_TRANSITIONS)."""
    if check.state == CheckState.QUEUED:
        check.state = CheckState.LEASED  # a verifier of the test's took it
    decide.judge(check, result)


def answer(check: Check, seed_of_truth: int | None = None) -> None:
    """The verifier uploads its render of the check's rect: the truth (noise of the frame), or a lie."""
    frame = check.frame
    job = frame.job
    truth = fa.decode(noise_png(frame.number if seed_of_truth is None else seed_of_truth, job.resolution_x,
                                job.resolution_y), 10**8)
    judge(check, fa.encode_png(fa.crop(truth, fa.Region.from_list(check.render_rect))))
    db.session.commit()
    decide.apply(check)
    db.session.commit()
