"""What the agent earned: new ledger entries of this worker, read over HTTP with its own token, as lines for
the owner ("earned 12 points (job 7, frames 3-6 verified); balance 340").

Frames are paid when they are verified, which may be seconds or hours after the agent uploaded them (another
owner's agent re-renders a region first). So the agent polls ``GET /api/v1/ledger`` (newest first, a page at a
time) soon after each piece of work, then less and less often, and reports what is new since the last look.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import requests
from framehive.protocol.frameranges import format_frames

from . import coordinator_urls
from .http_errors import refusal

log = logging.getLogger("framehive.worker")

#: After work is done, the first look: verification of a frame takes a few seconds on a live network.
EARNINGS_SOON = 3.0
#: The looks then double in spacing up to this, and stay there while the agent is connected.
EARNINGS_MAX = 300.0
#: Pages read per look at most (a busy account with several agents): older entries are left unreported.
MAX_PAGES = 5
REQUEST_TIMEOUT = 30.0

# Ledger reasons of a worker's entries, and the words for them: (one, several).
_COUNTED = {"render": ("frame verified", "frames verified"), "check": ("check", "checks"),
            "arbitration": ("arbitration", "arbitrations")}
_UNCOUNTED = {"clawback": "taken back: frames of this agent were found wrong", "stake": "stake forfeited"}


@dataclass
class _Group:
    amount: int = 0
    count: int = 0
    frames: set[int] | None = None


class EarningsWatch:
    """Reports the ledger entries of ``worker_id`` newer than the last look; the first look only notes where
    the ledger stands (what was earned before this agent started is not news)."""

    def __init__(self, session: requests.Session, base_url: str) -> None:
        self.session = session
        self.base_url = base_url
        self.worker_id = 0
        self.seen: int | None = None  # newest ledger id looked at

    def look(self) -> list[str]:
        """Lines for what is new (blocking: run it in a thread). Raises requests.RequestException or
        ValueError when the coordinator cannot be asked."""
        book, entries = self._new_entries()
        if self.seen is None:
            self.seen = max((e["id"] for e in entries), default=0)
            return []
        if not entries:
            return []
        self.seen = max(self.seen, *(e["id"] for e in entries))
        lines = describe([e for e in entries if e.get("worker") == self.worker_id], book)
        if lines:
            balance = self._get("/api/v1/balance").get("balance")
            lines = [f"{line}; balance {balance}" for line in lines]
        return lines

    def _new_entries(self) -> tuple[str, list[dict[str, Any]]]:
        """The account's book and its entries newer than ``seen`` (just the newest page on the first look)."""
        entries: list[dict[str, Any]] = []
        after: int | None = None
        for _ in range(1 if self.seen is None else MAX_PAGES):
            page = self._get("/api/v1/ledger" + (f"?after={after}" if after is not None else ""))
            items = [e for e in page.get("entries", []) if _entry(e)]
            fresh = [e for e in items if self.seen is None or e["id"] > self.seen]
            entries += fresh
            if len(fresh) < len(items) or not page.get("next") or not items:
                break
            after = min(e["id"] for e in items)  # the cursor is the last id of this page (newest first)
        return str(page.get("account", "")), entries

    def _get(self, path: str) -> dict[str, Any]:
        url = coordinator_urls.base_url(self.base_url) + path
        response = self.session.get(url, timeout=REQUEST_TIMEOUT, allow_redirects=False)
        if response.status_code != 200:
            raise ValueError(refusal("reading the ledger", response))
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("the coordinator's ledger answer is not an object")
        return body


def describe(entries: list[dict[str, Any]], book: str) -> list[str]:
    """One line per job and kind of earning (or loss), oldest job first."""
    groups: dict[tuple[Any, str, str], _Group] = defaultdict(_Group)
    for e in entries:
        sign = "earned" if e["to"] == book else "lost" if e["from"] == book else None
        if sign is None or (e["reason"] not in _COUNTED and e["reason"] not in _UNCOUNTED):
            continue  # not this account's, or a kind this agent has no words for (never echoed as sent)
        job = e.get("job") if isinstance(e.get("job"), int) else None
        group = groups[(job, e["reason"], sign)]
        group.amount += e["amount"]
        group.count += 1
        if e["reason"] == "render" and isinstance(e.get("frame"), int):
            group.frames = (group.frames or set()) | {e["frame"]}
    return [_line(job, reason, sign, group)
            for (job, reason, sign), group in sorted(groups.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1]))]


def _line(job: Any, reason: str, sign: str, group: _Group) -> str:
    where = f"job {job}, " if job is not None else ""
    if reason == "render" and group.frames:
        noun = "frame" if len(group.frames) == 1 else "frames"
        what = f"{noun} {format_frames(sorted(group.frames))} verified"
    elif reason in _COUNTED:
        one, several = _COUNTED[reason]
        what = f"{group.count} {one if group.count == 1 else several}"
    else:
        what = _UNCOUNTED[reason]
    points = "point" if group.amount == 1 else "points"
    return f"{sign} {group.amount} {points} ({where}{what})"


def _entry(value: Any) -> bool:
    """A ledger entry as the coordinator sends them (anything else is skipped, not trusted)."""
    return (isinstance(value, dict) and isinstance(value.get("id"), int) and isinstance(value.get("amount"), int)
            and isinstance(value.get("reason"), str) and isinstance(value.get("to"), str)
            and isinstance(value.get("from"), str))
