"""Times for the dashboard's JSON: ISO 8601 in UTC (the browser shows them in the viewer's zone)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts is not None else None
