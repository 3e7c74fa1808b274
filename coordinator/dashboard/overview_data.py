"""The overview page's numbers: the backend's network statistics, scoped to the viewer."""

from __future__ import annotations

from typing import Any

from .. import stats
from ..auth import Caller
from ..db import db
from ..models import Account


def overview(viewer: Caller) -> dict[str, Any]:
    return stats.overview(None if viewer.is_admin else db.session.get(Account, viewer.account_id))
