"""Sign in by pasting a token; sign out. The token is checked and forgotten: only its id is kept."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for

from ..auth import NOT_VALID, caller_for_secret
from ..db import db
from .blueprint import bp
from .sessions import csrf_token, sign_in, sign_out, viewer

# A pasted token longer than this is not one of ours; refuse it before hashing anything big.
MAX_TOKEN_LENGTH = 200


def login_page(message: str | None = None, status: int = 200) -> Any:
    return render_template("dashboard/login.html", message=message, csrf=csrf_token(),
                           next=safe_next(request.values.get("next"))), status


def safe_next(target: str | None) -> str:
    """Where to go after login: a dashboard path only (no open redirect to another site)."""
    if target and target.startswith("/dashboard") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.overview")


@bp.get("/login")
def login():
    if viewer() is not None:
        return redirect(safe_next(request.args.get("next")))
    return login_page()


@bp.post("/login")
def login_submit():
    secret = request.form.get("token", "").strip()
    caller = caller_for_secret(secret) if 0 < len(secret) <= MAX_TOKEN_LENGTH else None
    db.session.commit()
    if caller is None:
        return login_page(f"{NOT_VALID[0].upper()}{NOT_VALID[1:]}.", 401)
    sign_in(caller)
    return redirect(safe_next(request.form.get("next")), 303)


@bp.post("/logout")
def logout():
    sign_out()
    return redirect(url_for("dashboard.login"), 303)
