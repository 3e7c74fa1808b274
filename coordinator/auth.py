"""Who is calling: bearer tokens, stored as sha256 hashes, and the per-endpoint kind check."""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import g, request

from .db import db
from .errors import ApiError
from .models import Account, ApiToken, now

TOKEN_KINDS = ("user", "worker", "admin")


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(kind: str, name: str, account_name: str | None = None, trusted: bool = False) -> str:
    """Create a token (and its account if new); return the secret, which is never stored."""
    if kind not in TOKEN_KINDS:
        raise ValueError(f"kind must be one of {', '.join(TOKEN_KINDS)}")
    account_name = account_name or name
    account = db.session.execute(db.select(Account).filter_by(name=account_name)).scalar_one_or_none()
    if account is None:
        account = Account(name=account_name)
        db.session.add(account)
        db.session.flush()
    if trusted:
        account.trusted = True
    secret = f"fh{kind[0]}_{secrets.token_urlsafe(32)}"
    db.session.add(ApiToken(account_id=account.id, kind=kind, name=name, token_hash=hash_token(secret)))
    db.session.commit()
    return secret


@dataclass(frozen=True)
class Caller:
    token_id: int
    account_id: int
    account_name: str
    kind: str

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


def caller_from_header(header: str | None) -> Caller:
    """Resolve an ``Authorization: Bearer`` header, or raise 401."""
    if not header or not header.startswith("Bearer "):
        raise ApiError(401, "missing_token", "send 'Authorization: Bearer <token>'")
    token = db.session.execute(
        db.select(ApiToken).filter_by(token_hash=hash_token(header[len("Bearer "):].strip()))
    ).scalar_one_or_none()
    if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at < now()):
        raise ApiError(401, "bad_token", "the token is not valid (unknown, revoked or expired)")
    return Caller(token.id, token.account_id, token.account.name, token.kind)


def require(*kinds: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the caller must hold a valid token of one of ``kinds`` (admin always passes)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = caller_from_header(request.headers.get("Authorization"))
            db.session.commit()  # end the lookup's transaction: views open their own, short ones
            if caller.kind not in kinds and not caller.is_admin:
                raise ApiError(403, "forbidden", f"this endpoint is for {' or '.join(kinds)} tokens")
            g.caller = caller
            return view(*args, **kwargs)

        return wrapper

    return decorator


def current_caller() -> Caller:
    return g.caller
