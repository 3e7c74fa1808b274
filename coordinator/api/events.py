"""The event log: admins read every event, anyone else those of its own jobs, workers and account."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .. import events, paging
from ..auth import current_caller, require
from ..db import db
from ..models import Account, Event

bp = Blueprint("events", __name__)
# A page of events is shorter than other pages by default: the newest are what people look at.
PAGE_SIZE = 50


def viewer_account() -> Account | None:
    """Whose view: None for admins (everything), else the caller's account."""
    caller = current_caller()
    return None if caller.is_admin else db.session.get(Account, caller.account_id)


@bp.get("/events")
@require("user", "worker")
def list_events():
    """The events the caller may read, newest first, a page at a time (?limit= up to the largest page)."""
    page = paging.paginate(events.visible(viewer_account()), Event.id, newest_first=True, default=PAGE_SIZE)
    return jsonify({"events": [events.event_json(e) for e in page.items], "next": page.next})
