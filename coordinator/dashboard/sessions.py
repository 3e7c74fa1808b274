"""Dashboard sessions: a signed cookie that remembers which token logged in, never the token itself.

Every request looks the token up again, so revoking it (or its expiry) ends the session at once. Each session
is also a row on the server (``DashboardSession``, keyed by the sha256 of a random key the cookie holds): signing
out deletes it, so a copy of the cookie taken before stops working too. Cookies are HttpOnly, SameSite=Lax,
limited to /dashboard, Secure whenever the request came over https (or always, with FRAMEHIVE_SECURE_COOKIES=1
behind a TLS proxy), and stop working a fixed time after login.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import delete, select

from ..auth import Caller, caller_for_token_id
from ..db import db
from ..errors import error_response
from ..models import DashboardSession, now
from .secret import server_secret

# A session ends this long after login, however active: a copied cookie is not good forever.
SESSION_LIFETIME = timedelta(hours=12)
COOKIE_NAME = "framehive_session"
# Set to 1 behind a proxy that terminates TLS: the coordinator then sees plain http but the browser uses https.
SECURE_ENV_VAR = "FRAMEHIVE_SECURE_COOKIES"


class DashboardSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, marked Secure whenever the request itself came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def configure(app: Flask) -> None:
    """Session cookie settings and the signing key."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = server_secret(app.config)
    app.config.update({
        "SESSION_COOKIE_NAME": COOKIE_NAME,
        "SESSION_COOKIE_PATH": "/dashboard",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": SESSION_LIFETIME,
        "SESSION_REFRESH_EACH_REQUEST": False,  # the lifetime counts from login, not from the last poll
    })
    if os.environ.get(SECURE_ENV_VAR, "").lower() in ("1", "true", "yes"):
        app.config["SESSION_COOKIE_SECURE"] = True
    app.session_interface = DashboardSessionInterface()


def csrf_token() -> str:
    """This session's CSRF token (created for a visitor who has none yet, e.g. on the login page)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def sign_in(caller: Caller) -> None:
    """Start a fresh session for ``caller``: a new CSRF token, nothing kept from before (no fixation), and a new
    server-side record (sessions past their lifetime are swept out meanwhile). Commits."""
    sign_out()
    key = secrets.token_urlsafe(32)
    started = now()
    db.session.execute(delete(DashboardSession).where(DashboardSession.expires_at < started))
    db.session.add(DashboardSession(key_hash=_hash(key), token_id=caller.token_id, created_at=started,
                                    expires_at=started + SESSION_LIFETIME.total_seconds()))
    db.session.commit()
    session.permanent = True
    session["token_id"] = caller.token_id
    session["key"] = key
    session["csrf"] = secrets.token_urlsafe(32)


def sign_out() -> None:
    """End the session here and on the server (its record goes, whatever copies of the cookie exist). Commits."""
    key = session.get("key")
    if isinstance(key, str):
        db.session.execute(delete(DashboardSession).where(DashboardSession.key_hash == _hash(key)))
        db.session.commit()
    session.clear()


def viewer() -> Caller | None:
    """Who is signed in: a session the server still holds, of a token still active."""
    if "viewer" not in g:
        token_id = session.get("token_id")
        g.viewer = caller_for_token_id(token_id) if isinstance(token_id, int) and _held(token_id) else None
        db.session.commit()  # end the lookup's transaction (on SQLite it holds the write lock)
        if g.viewer is None and token_id is not None:
            sign_out()
    return g.viewer


def _held(token_id: int) -> bool:
    """Whether the cookie's session is on record, for this token, and not past its lifetime."""
    key = session.get("key")
    if not isinstance(key, str):
        return False
    record = db.session.execute(select(DashboardSession).filter_by(key_hash=_hash(key))).scalar_one_or_none()
    return record is not None and record.token_id == token_id and record.expires_at > now()


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def current_viewer() -> Caller:
    """The signed-in caller inside a view guarded by one of the decorators below."""
    caller = viewer()
    assert caller is not None, "guard the view with page_view, data_view or admin_action"
    return caller


def page_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """An HTML page: visitors without a session go to the login page, and come back after."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if viewer() is None:
            return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper


def data_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """A JSON endpoint, an image, or an action whose view checks what it acts on: 401 without a session (the
    page's script then goes to the login page)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if viewer() is None:
            return error(401, "signed_out", "sign in again")
        return view(*args, **kwargs)

    return wrapper


def admin_action(view: Callable[..., Any]) -> Callable[..., Any]:
    """A state-changing endpoint: admins only (others get 403, whatever their page shows)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        caller = viewer()
        if caller is None:
            return error(401, "signed_out", "sign in again")
        if not caller.is_admin:
            return error(403, "forbidden", "only admins may act on workers")
        return view(*args, **kwargs)

    return wrapper


def error(status: int, code: str, message: str) -> Any:
    """The API's error shape, for the dashboard's scripts."""
    return error_response(status, code, message)
