"""The REST API under /api/v1, one blueprint per resource."""

from __future__ import annotations

from flask import Flask

from . import blobs, claims, jobs, meta, points, tokens, worker_checks, worker_frames, workers


def register(app: Flask) -> None:
    for module in (meta, blobs, jobs, claims, worker_frames, worker_checks, workers, tokens, points):
        app.register_blueprint(module.bp, url_prefix="/api/v1")
