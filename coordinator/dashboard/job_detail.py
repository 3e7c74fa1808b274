"""One job in full for its dashboard page: the frame grid, thumbnails, tasks with log tails, and checks; and its
poll's answer, which is a few bytes while the job is unchanged (job_data)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, jsonify, request, url_for
from framehive.protocol.vocabulary import CheckState, Verdict
from sqlalchemy import select

from .. import capabilities
from ..api.job_changes import etag
from ..api.jobs import check_json
from ..auth import Caller
from ..db import db
from ..models import Check, Frame, Job, TaskFailure, Worker
from ..states import FrameState
from ..timefmt import iso
from . import scope
from .jobs_data import job_rows

# How many of the latest frames are shown as thumbnails (the grid shows every frame's state).
THUMBNAILS = 12
# The grid's states, in a frame's order: the stored ones and two the grid adds (frame_grid). The job page's legend
# (job.js) is given them by the page (pages.job).
VERIFYING, REJECTED = "verifying", "rejected"
GRID_STATES = (FrameState.QUEUED, FrameState.RENDERING, FrameState.RENDERED, VERIFYING, FrameState.VERIFIED, REJECTED,
               FrameState.FAILED, FrameState.CANCELLED)
LOG_TAIL_CHARS = 2000
# Up to this many frames the grid has a cell per frame; a bigger job's grid is its runs of frames of one state
# (frame_runs), which a 10,000-frame job's poll would otherwise send 10,000 of.
GRID_FRAMES = 500


def job_data(viewer: Caller, job: Job) -> Response:
    """The job page's poll: the job in full with its ``version`` (the answer's ETag, also sent as the header); a
    poll that names the version it has (``?known=`` from the page, or If-None-Match) and is still current gets
    ``{"unchanged": true}`` (or 304): the page keeps what it shows. The version is a digest of the answer itself,
    so it changes whenever anything on the page would (api/job_changes.py says why)."""
    body = job_detail(viewer, job)
    version = etag(body)
    if request.if_none_match.contains_weak(version.strip('"')):
        response = Response(status=304)
    elif request.args.get("known") == version:
        response = jsonify({"unchanged": True, "version": version})
    else:
        response = jsonify({**body, "version": version})
    response.headers["ETag"] = version
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def job_detail(viewer: Caller, job: Job) -> dict[str, Any]:
    checks = db.session.execute(select(Check).filter_by(job_id=job.id).order_by(Check.id)).scalars().all()
    frames = list(job.frames)
    shown = sorted((f for f in frames if scope.frame_pixels(viewer, f) and f.rendered_at is not None),
                   key=lambda f: f.rendered_at or 0.0, reverse=True)
    return {
        **job_rows(viewer, [job])[0],
        "needs": capabilities.summary(job),  # what an agent needs to be given it (Blender, device, cap)
        "waiting": job.waiting,  # why its frames wait (no verifier of another owner online, ...), or None
        "unverified": sum(1 for f in frames if f.state == FrameState.RENDERED),
        # a cell per frame, or for a big job a cell per run of frames of one state (``last``: its last frame)
        "frame_grid": frame_grid(viewer, frames, checks) if len(frames) <= GRID_FRAMES else
        frame_runs(frames, frame_grid_states(frames, checks)),
        "last_frame": frame_image(viewer, shown[0], "preview") if shown else None,
        "thumbnails": [frame_image(viewer, f, "thumb") for f in shown[:THUMBNAILS]],
        "tasks": tasks(job, frames),
        "checks": [{**check_json(c), "created_at": iso(c.created_at), "decided_at": iso(c.decided_at),
                    "images": check_images(viewer, c)} for c in reversed(checks)],
    }


def frame_grid(viewer: Caller, frames: Sequence[Frame], checks: Sequence[Check]) -> list[dict[str, Any]]:
    """Every frame with the state the grid colours it by (frame_grid_states), who rendered it and its image."""
    return [{"n": frame.number, "state": state, "worker": frame.worker.name if frame.worker else None,
             "verified_by": frame.verified_by, "flags": frame.flags or [],
             "image": frame_url(frame, sha, "preview") if (sha := scope.frame_pixels(viewer, frame)) else None}
            for frame, state in zip(frames, frame_grid_states(frames, checks), strict=True)]


def frame_grid_states(frames: Sequence[Frame], checks: Sequence[Check]) -> list[str]:
    """Each frame's state as the grid colours it, which adds two to the stored ones: ``verifying`` (rendered, a
    check on it under way) and ``rejected`` (its pixels were thrown out after a failed check)."""
    checking = {c.frame_id for c in checks if c.state in CheckState.OPEN}
    failed = {c.frame_id for c in checks if c.verdict == Verdict.FAIL}
    states = []
    for frame in frames:
        state = frame.state
        if state == FrameState.RENDERED and frame.id in checking:
            state = VERIFYING
        elif state in (FrameState.QUEUED, FrameState.RENDERING) and frame.id in failed:
            state = REJECTED
        states.append(state)
    return states


def frame_runs(frames: Sequence[Frame], states: Sequence[str]) -> list[dict[str, Any]]:
    """The grid of a big job: consecutive frames of one state as one cell, from frame ``n`` to ``last``."""
    runs: list[dict[str, Any]] = []
    for frame, state in zip(frames, states, strict=True):
        if runs and runs[-1]["state"] == state:
            runs[-1]["last"], runs[-1]["count"] = frame.number, runs[-1]["count"] + 1
        else:
            runs.append({"n": frame.number, "last": frame.number, "count": 1, "state": state})
    return runs


def frame_image(viewer: Caller, frame: Frame, size: str) -> dict[str, Any]:
    """A frame ``viewer`` may see, with the address of its image at ``size``."""
    sha = scope.frame_pixels(viewer, frame)
    assert sha is not None
    return {"n": frame.number, "state": frame.state, "worker": frame.worker.name if frame.worker else None,
            "rendered_at": iso(frame.rendered_at), "url": frame_url(frame, sha, size)}


def frame_url(frame: Frame, sha256: str, size: str) -> str:
    """The blob's hash is part of the address: a re-rendered frame gets a new one, so images can be cached."""
    return url_for("dashboard.frame_image", job_id=frame.job_id, number=frame.number, sha256=sha256, size=size)


def tasks(job: Job, frames: list[Frame]) -> list[dict[str, Any]]:
    """Each task: who holds it now, who rendered its frames, attempts, and its last failure's log tail."""
    last_failure = {f.task_id: f for f in db.session.execute(
        select(TaskFailure).filter_by(job_id=job.id).order_by(TaskFailure.id)).scalars()}
    renderers: dict[int, set[str]] = {}
    for frame in frames:
        if frame.worker is not None:
            renderers.setdefault(frame.task_id, set()).add(frame.worker.name)
    rows = []
    for task in job.tasks:
        failure = last_failure.get(task.id)
        failed_on = db.session.get(Worker, failure.worker_id) if failure else None
        rows.append({
            "id": task.id, "frames": task.frames_spec, "state": task.state, "attempts": task.attempt,
            "failures": task.failures, "worker": task.worker.name if task.worker else None,
            "rendered_by": sorted(renderers.get(task.id, ())),
            "last_failure": None if failure is None else {
                "worker": failed_on.name if failed_on else None, "reason": failure.reason, "error": failure.error,
                "log_tail": failure.log_tail[-LOG_TAIL_CHARS:], "at": iso(failure.created_at)},
        })
    return rows


def check_images(viewer: Caller, check: Check) -> dict[str, str] | None:
    """The renderer's frame cut to the region and the verifier's upload cut to it, side by side."""
    if not scope.check_images(viewer, check):
        return None
    return {side: url_for("dashboard.check_image", check_id=check.id, side=side)
            for side in ("renderer", "verifier")}
