"""Worker tokens recently found active, so that a worker agent's HTTP requests need no read of its token.

Every frame upload and check result read the caller's token (a transaction and a SELECT, about 5 of a frame's
statements at a fleet's scale: issue 16, benchmarks/fleet.py). A worker token found active is remembered by its
hash for at most ``FRAMEHIVE_TOKEN_RECHECK_INTERVAL`` seconds: the bound a connected agent's channel already has
(channel_upkeep re-reads the tokens of every connection at that interval, confirms the active ones here and
forgets the others). So a worker token revoked on another coordinator, or by ``framehive-coordinator token revoke``,
stops working over HTTP within that interval, as its channel does; one revoked through this process's API stops at
once (auth.revoke_token forgets it), and an expired one at its expiry (kept with the entry). User and admin tokens
are read on every request, as before.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from .auth import Caller

#: Entries kept at most; a full cache starts again empty (only active worker tokens get in: an attacker's made-up
#: secrets never do).
MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class _Entry:
    caller: Caller
    expires_at: float | None  # the token's expiry (UNIX seconds), or None


class CallerCache:
    """By token hash: the caller of a worker token and its expiry; by token id: when it was last found active
    (time.monotonic()). Thread-safe: request threads and the channel's upkeep use it at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._found: dict[int, float] = {}

    def get(self, digest: str, at: float, within: float) -> Caller | None:
        """The caller of the token hashed ``digest`` if it was found active less than ``within`` seconds ago and has
        not expired by ``at`` (UNIX seconds); None: read the token."""
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            found = self._found.get(entry.caller.token_id)
        if found is None or time.monotonic() - found >= within:
            return None
        if entry.expires_at is not None and entry.expires_at < at:
            return None
        return entry.caller

    def put(self, digest: str, caller: Caller, expires_at: float | None) -> None:
        """``caller``'s worker token (hashed ``digest``) was just read and found active."""
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
                self._found.clear()
            self._entries[digest] = _Entry(caller, expires_at)
            self._found[caller.token_id] = time.monotonic()

    def confirm(self, token_ids: set[int]) -> None:
        """These tokens were just read and found active (channel_upkeep's recheck)."""
        at = time.monotonic()
        with self._lock:
            for token_id in token_ids & self._found.keys():
                self._found[token_id] = at

    def forget(self, token_ids: set[int]) -> None:
        """These tokens are no longer active (revoked here, or found so by a recheck): read them again."""
        with self._lock:
            for token_id in token_ids:
                self._found.pop(token_id, None)


def callers() -> CallerCache | None:
    """This app's cache (create_app makes it), or None outside a serving app (a script using auth's functions)."""
    try:
        return current_app.extensions.get("framehive_callers")
    except RuntimeError:  # no app context
        return None
