"""The coordinator's web dashboard, at /dashboard.

Server-rendered pages (templates/) whose small scripts (static/, no build step) poll JSON endpoints of this
blueprint and keep the page live, retrying with backoff while the coordinator is away. Sign-in is by
pasting a token (login.py); the session cookie remembers only which token (sessions.py). Admins see and act
on everything; any other token sees only its own account's jobs and workers (scope.py); a user may act on its
own jobs (pause, resume, cancel, requeue, priority, as the REST API allows), and the worker actions are for
admins only (actions.py). Every POST needs the session's CSRF token (security.py).
"""

from __future__ import annotations

from flask import Flask

from . import actions, images, live, login, pages, security  # noqa: F401 - each registers its routes on bp
from .blueprint import bp
from .sessions import configure


def init_app(app: Flask) -> None:
    """Configure sessions and register the blueprint."""
    configure(app)
    app.register_blueprint(bp)
