"""Request checks and response headers for every dashboard route.

- CSRF: every POST (login and logout included) must carry the session's token, in the ``X-CSRF-Token``
  header (scripts) or a ``csrf_token`` form field (forms). SameSite cookies already stop most cross-site
  posts; the token also covers browsers and proxies that do not honour SameSite.
- Headers: a strict Content-Security-Policy (scripts and styles only from the dashboard's own files, so an
  injected ``<script>`` does not run), no framing, no sniffing, no caching of pages and data.
"""

from __future__ import annotations

import hmac

from flask import Response, request, session

from .blueprint import bp
from .login import login_page
from .sessions import error

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@bp.before_request
def _check_csrf():
    if request.method in SAFE_METHODS:
        return None
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    expected = session.get("csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        if request.mimetype == "application/x-www-form-urlencoded":  # a form (login, logout): a page again
            return login_page("The form had expired. Please try again.", 403)
        return error(403, "csrf", "missing or wrong CSRF token: reload the page and try again")
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if "Cache-Control" not in response.headers or response.mimetype in ("text/html", "application/json"):
        response.headers["Cache-Control"] = "no-store"
    return response
