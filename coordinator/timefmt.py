"""Times in the coordinator's JSON (the REST API, events, the dashboard): ISO 8601 in UTC, to the second.

Rows keep Unix seconds (``models.now``); this is the one place that writes them for people and scripts. The
dashboard's browser shows them in the viewer's zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def iso(ts: float) -> str: ...
@overload
def iso(ts: None) -> None: ...
@overload
def iso(ts: float | None) -> str | None: ...
def iso(ts: float | None) -> str | None:
    """``ts`` (Unix seconds) as ``2026-12-06T03:00:05+00:00``; None stays None."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts is not None else None
