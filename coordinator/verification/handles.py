"""Check handles: what a verifier knows a check by.

A check's id is sequential: a ringer, made at the moment it is leased, would carry the newest id of all, and a
retried check a higher attempt. So a verifier never sees either: every lease draws a fresh random handle (the
check and its attempt in one), and messages and URLs name the check by it. A handle from an earlier lease names
nothing any more, as a stale attempt did.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ..db import db
from ..models import Check, Frame
from ..states import CheckState

#: Bytes of randomness in a handle (secrets.token_urlsafe: 22 URL-safe characters).
HANDLE_BYTES = 16


def new_handle() -> str:
    return secrets.token_urlsafe(HANDLE_BYTES)


def held_check(worker_id: int, handle: str, *, with_parties: bool = False) -> Check | None:
    """The check this worker holds under ``handle`` (its current lease), or None. ``with_parties``: its renderer,
    verifier, task, frame and job come in the same statement (judging a result reads them all: one lazy load
    each before, issue 16)."""
    query = select(Check).where(Check.handle == handle)
    if with_parties:
        query = query.options(joinedload(Check.renderer), joinedload(Check.verifier), joinedload(Check.task),
                              joinedload(Check.frame).joinedload(Frame.job))
    check = db.session.execute(query).scalars().first()
    if check is None or check.state != CheckState.LEASED or check.verifier_id != worker_id:
        return None
    return check
