"""How many agents one worker token may have online, and under how many names it may ever sign on.

Each name a token says hello with is a worker of its own, with no history: without a bound, a griefing token
makes a fresh identity for every failure (issue 12 measured 200 in 6 s) and escapes every per-worker record.
``FRAMEHIVE_MAX_NAMES_PER_TOKEN`` bounds the names (reconnecting under a name the token already has is always
fine; a worker made before this limit existed, with no token on record, is adopted by the first token that
signs on as it); ``FRAMEHIVE_MAX_AGENTS_PER_TOKEN`` bounds the agents connected at once (the reconnecting agent
itself not counted). 0 means no limit. Refusals are the hello's answer: an ``error`` message saying which limit
and what to do, which the agent prints and stops on.
"""

from __future__ import annotations

from flask import current_app
from framehive.protocol import messages as m
from sqlalchemy import func, select

from .db import db, lock
from .models import ApiToken, Worker


def refusal(token_id: int, account_id: int, name: str) -> m.Error | None:
    """Why an agent of this token may not sign on as ``name`` now, or None. Holds the token's row until the
    caller's transaction ends, so two agents saying hello at once are counted one after the other."""
    token = db.session.get(ApiToken, token_id)
    assert token is not None
    lock(token)
    config = current_app.config
    existing = db.session.execute(select(Worker).filter_by(account_id=account_id, name=name)).scalar_one_or_none()
    max_names = int(config["FRAMEHIVE_MAX_NAMES_PER_TOKEN"])
    new_name = existing is None or existing.token_id not in (None, token_id)
    if max_names and new_name and _count(Worker.token_id == token_id) >= max_names:
        return m.Error(code="too_many_names", message=(
            f"this worker token already signed on under {max_names} agent names, the most one token may use; "
            "reconnect under one of them (--name), or ask the coordinator's admin for another token"))
    max_agents = int(config["FRAMEHIVE_MAX_AGENTS_PER_TOKEN"])
    others = Worker.id != existing.id if existing is not None else Worker.id.is_not(None)
    if max_agents and _count(Worker.token_id == token_id, Worker.online.is_(True), others) >= max_agents:
        return m.Error(code="too_many_agents", message=(
            f"{max_agents} agents are already connected with this worker token, the most one token may have online "
            "at once; stop one of them, or ask the coordinator's admin for another token"))
    return None


def _count(*conditions) -> int:
    return int(db.session.execute(select(func.count()).select_from(Worker).where(*conditions)).scalar_one())
