"""The REST API under /api/v1, one blueprint per resource."""

from __future__ import annotations

from flask import Flask

from . import blobs, jobs, meta, worker_frames, workers


def register(app: Flask) -> None:
    for module in (meta, blobs, jobs, worker_frames, workers):
        app.register_blueprint(module.bp, url_prefix="/api/v1")
