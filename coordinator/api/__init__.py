"""The REST API under /api/v1, one blueprint per resource."""

from __future__ import annotations

from flask import Flask

from . import (
    blobs,
    claims,
    events,
    job_control,
    jobs,
    meta,
    points,
    stats,
    tokens,
    unverified,
    worker_checks,
    worker_control,
    worker_frames,
    workers,
)


def register(app: Flask) -> None:
    for module in (meta, blobs, jobs, job_control, claims, worker_frames, worker_checks, workers, worker_control,
                   tokens, points, events, stats, unverified):
        app.register_blueprint(module.bp, url_prefix="/api/v1")
