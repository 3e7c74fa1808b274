"""The HTML pages: server-rendered shells that their scripts fill from the JSON endpoints and keep live."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template

from . import scope
from .actions_allowed import acts_on_jobs
from .blueprint import bp
from .job_detail import GRID_STATES
from .sessions import csrf_token, current_viewer, page_view

NAV = (("overview", "Overview"), ("jobs", "Jobs"), ("workers", "Workers"), ("accounts", "Accounts & ledger"))


def page(template: str, section: str, **context: Any) -> str:
    viewer = current_viewer()
    return render_template(f"dashboard/{template}", viewer=viewer, csrf=csrf_token(), nav=NAV,
                           section=section, job_actions=acts_on_jobs(viewer), **context)


@bp.get("/")
@page_view
def overview():
    return page("overview.html", "overview")


@bp.get("/jobs")
@page_view
def jobs():
    return page("jobs.html", "jobs")


@bp.get("/jobs/<int:job_id>")
@page_view
def job(job_id: int):
    found = scope.job(current_viewer(), job_id)
    if found is None:
        abort(404)
    return page("job.html", "jobs", job_id=found.id, job_name=found.name, frame_states=list(GRID_STATES))


@bp.get("/workers")
@page_view
def workers():
    return page("workers.html", "workers")


@bp.get("/accounts")
@page_view
def accounts():
    return page("accounts.html", "accounts")
