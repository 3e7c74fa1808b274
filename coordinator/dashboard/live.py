"""The small JSON endpoints the pages poll (session-authenticated, read-only, scoped to the viewer)."""

from __future__ import annotations

from flask import jsonify, request
from sqlalchemy import select

from ..db import db
from ..models import LedgerEntry
from . import accounts_data, jobs_data, scope, workers_data
from .blueprint import bp
from .job_detail import job_data as job_data_answer
from .overview_data import overview
from .sessions import current_viewer, data_view, error


@bp.get("/data/overview")
@data_view
def overview_data():
    return jsonify(overview(current_viewer()))


@bp.get("/data/jobs")
@data_view
def jobs_data_view():
    args = request.args
    return jsonify({"jobs": jobs_data.list_jobs(current_viewer(), args.get("state", ""), args.get("owner", ""),
                                                args.get("q", ""))})


@bp.get("/data/jobs/<int:job_id>")
@data_view
def job_data(job_id: int):
    job = scope.job(current_viewer(), job_id)
    if job is None:
        return error(404, "not_found", f"no job {job_id}")
    return job_data_answer(current_viewer(), job)  # unchanged since ?known=: a few bytes (job_detail.job_data)


@bp.get("/data/workers")
@data_view
def workers_data_view():
    return jsonify({"workers": workers_data.list_workers(current_viewer())})


@bp.get("/data/accounts")
@data_view
def accounts_data_view():
    viewer = current_viewer()
    args = request.args
    reasons = db.session.execute(select(LedgerEntry.reason).distinct().order_by(LedgerEntry.reason)).scalars()
    return jsonify({
        "accounts": accounts_data.list_accounts(viewer),
        "ledger": accounts_data.ledger_entries(viewer, args.get("account", ""), args.get("job", type=int),
                                               args.get("reason", "")),
        "reasons": list(reasons),
        "claims": accounts_data.list_claims(viewer),
    })
