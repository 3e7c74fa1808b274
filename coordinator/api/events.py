"""The event log: admins read every event, anyone else those of its own jobs, workers and account."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from .. import events
from ..auth import current_caller, require
from ..db import db
from ..errors import ApiError
from ..models import Account

bp = Blueprint("events", __name__)
MAX_LIMIT = 500


def viewer_account() -> Account | None:
    """Whose view: None for admins (everything), else the caller's account."""
    caller = current_caller()
    return None if caller.is_admin else db.session.get(Account, caller.account_id)


@bp.get("/events")
@require("user", "worker")
def list_events():  # type: ignore[no-untyped-def]
    limit = request.args.get("limit", 50, type=int)
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "bad_request", f"'limit' must be from 1 to {MAX_LIMIT}")
    return jsonify({"events": [events.event_json(e) for e in events.recent(limit, viewer_account())]})
