"""The add-on's live state between Blender's main thread and its background threads.

One :class:`Session` exists while the add-on is enabled. Its main-thread timer (:meth:`Session.tick`, every
:data:`TICK` seconds) copies the preferences into plain values the threads may read, drains the job
watcher's statuses for the panel, refreshes the account's balance and prices now and then, and redraws the
Properties editor. Nothing here blocks Blender: network calls happen in threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy

from . import preferences
from .client import ApiError, Client, InvalidSetting
from .job_watch import JobStatus, JobWatcher
from .submission import Submission

TICK = 1.0  # seconds between timer runs: the panel's refresh rate
ACCOUNT_REFRESH = 30.0  # seconds between balance/price refreshes while the panel is in use
STATE_FILE = "jobs.json"


@dataclass
class Account:
    balance: int | None = None
    price_per_frame: int | None = None
    error: str = ""
    fetched_at: float = 0.0


@dataclass
class Session:
    watcher: JobWatcher
    statuses: dict[int, JobStatus] = field(default_factory=dict)
    account: Account = field(default_factory=Account)
    submission: Submission | None = None  # the one in flight, if any
    submission_text: str = ""
    submission_fraction: float = 0.0
    _settings: tuple[str, str] = ("", "")  # (url, token) as of the last tick: what threads may read
    _account_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ for threads

    def client(self) -> Client | None:
        """A client for the preferences' coordinator and token, or None if they are unset or unusable."""
        try:
            return self.require_client()
        except InvalidSetting:
            return None

    def require_client(self) -> Client:
        """A client for the preferences' coordinator and token; InvalidSetting says what is wrong with them."""
        url, token = self._settings
        client = Client(url, token)
        if client.token is None:
            raise InvalidSetting("bad_token", "set your token (fhu_...) in the add-on's preferences")
        return client

    def client_for(self, base_url: str) -> Client | None:
        client = self.client()
        return client if client is not None and client.base_url == base_url.rstrip("/") else None

    # ------------------------------------------------------------------ main thread

    def sync(self, prefs: preferences.FRAMEHIVE_AP_preferences) -> Session:
        """Copy URL and token from the preferences (main thread) for the threads to read."""
        self._settings = (prefs.coordinator_url.strip().rstrip("/"), prefs.token.strip())
        return self

    def tick(self) -> float:
        self.sync(preferences.get())
        online = bpy.app.online_access
        if online and self.watcher.followed():
            self.watcher.start()
        for status in self.watcher.drain():
            self.statuses[status.job_id] = status
        if online and time.monotonic() - self.account.fetched_at > ACCOUNT_REFRESH:
            self.refresh_account()
        _redraw_properties()
        return TICK

    def refresh_account(self) -> None:
        """Fetch balance and price in the background (the panel shows them)."""
        if self._account_thread is not None and self._account_thread.is_alive():
            return
        self.account.fetched_at = time.monotonic()
        client = self.client()
        if client is None:
            return

        def fetch() -> None:
            try:
                balance = client.balance().get("balance")
                price = client.pricing().get("job_price_per_frame")
                self.account = Account(balance, price, "", time.monotonic())
            except ApiError as exc:
                self.account = Account(None, None, str(exc), time.monotonic())

        self._account_thread = threading.Thread(target=fetch, name="framehive-account", daemon=True)
        self._account_thread.start()


_session: Session | None = None


def state_dir() -> Path:
    """A writable folder of this add-on's own (the extension's user folder, or Blender's config folder)."""
    try:
        return Path(bpy.utils.extension_path_user(preferences.PACKAGE, path="", create=True))
    except (ValueError, RuntimeError):  # loaded as a plain add-on (tests, development)
        return Path(bpy.utils.user_resource("CONFIG", path="framehive", create=True))


def get() -> Session:
    assert _session is not None, "the Framehive add-on is not enabled"
    return _session


def start() -> Session:
    global _session
    if _session is None:
        holder: dict[str, Any] = {}
        watcher = JobWatcher(state_dir() / STATE_FILE, lambda url: holder["session"].client_for(url))
        _session = holder["session"] = Session(watcher)
        bpy.app.timers.register(_tick, first_interval=TICK, persistent=True)
    return _session


def stop() -> None:
    global _session
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    if _session is not None:
        if _session.submission is not None:
            _session.submission.abort()
        _session.watcher.stop()
        _session = None


def _tick() -> float | None:
    if _session is None:
        return None
    try:
        return _session.tick()
    except KeyError:  # preferences gone: the add-on is being disabled
        return None


def _redraw_properties() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in wm.windows if wm else []:
        for area in window.screen.areas:
            if area.type == "PROPERTIES":
                area.tag_redraw()
