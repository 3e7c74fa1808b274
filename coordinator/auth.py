"""Who is calling: bearer tokens, stored as sha256 hashes, and the per-endpoint kind check."""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from flask import current_app, g, request
from framehive.protocol.json_numbers import is_number
from sqlalchemy import CursorResult, orm, update

from .caller_cache import callers
from .db import db, reading
from .errors import ApiError
from .models import Account, ApiToken, now
from .timefmt import iso

TOKEN_KINDS = ("user", "worker", "admin")
# What a caller is told when its token is refused (the REST API's 401, the dashboard's sign-in page).
NOT_VALID = "the token is not valid (unknown, revoked or expired)"


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


NAME_MAX = 120  # Account.name and ApiToken.name are String(120)
# The longest lifetime a token may be given: far enough for "never in practice", near enough that its expiry is a
# date every platform can print (a datetime past year 9999 overflows).
MAX_EXPIRES_IN = 100 * 365 * 86400


def _clean_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    value = value.strip()
    if len(value) > NAME_MAX:
        raise ValueError(f"{what} must be at most {NAME_MAX} characters")
    return value


def issue_token(kind: str, name: str, account_name: str | None = None, trusted: bool = False,
                expires_in: float | None = None) -> tuple[str, dict[str, Any]]:
    """Create a token (and its account if new); return its secret, which is never stored, and its listing.

    ``expires_in`` is in seconds from now; ``None`` means the token never expires. Raises ValueError on bad
    input (nothing is created then).
    """
    if kind not in TOKEN_KINDS:
        raise ValueError(f"kind must be one of {', '.join(TOKEN_KINDS)}")
    name = _clean_name(name, "name")
    account_name = _clean_name(account_name, "account") if account_name is not None else name
    if expires_in is not None and (
            not is_number(expires_in) or not math.isfinite(expires_in) or expires_in <= 0):
        raise ValueError("expires_in must be a positive number of seconds")
    if expires_in is not None and expires_in > MAX_EXPIRES_IN:
        raise ValueError(f"expires_in must be at most 100 years ({MAX_EXPIRES_IN} seconds); leave it out for a "
                         "token that never expires")
    account = db.session.execute(db.select(Account).filter_by(name=account_name)).scalar_one_or_none()
    if account is None:
        account = Account(name=account_name)
        db.session.add(account)
        db.session.flush()
    if trusted:
        account.trusted = True
    secret = f"fh{kind[0]}_{secrets.token_urlsafe(32)}"
    created = now()
    token = ApiToken(account_id=account.id, kind=kind, name=name, token_hash=hash_token(secret), created_at=created,
                     expires_at=created + expires_in if expires_in is not None else None)
    db.session.add(token)
    db.session.commit()
    return secret, token_json(token)


def create_token(kind: str, name: str, account_name: str | None = None, trusted: bool = False,
                 expires_in: float | None = None) -> str:
    """Create a token (and its account if new); return the secret, which is never stored."""
    return issue_token(kind, name, account_name, trusted=trusted, expires_in=expires_in)[0]


def token_state(token: ApiToken, at: float | None = None) -> str:
    """``revoked`` wins over ``expired``; a token works only while ``active``."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at < (now() if at is None else at):
        return "expired"
    return "active"


def token_json(token: ApiToken, at: float | None = None) -> dict[str, Any]:
    """A token's listing: never its secret or its hash."""
    return {
        "id": token.id, "account": token.account.name, "kind": token.kind, "name": token.name,
        "created_at": iso(token.created_at), "expires_at": iso(token.expires_at),
        "revoked_at": iso(token.revoked_at), "state": token_state(token, at),
    }


def list_tokens(account_name: str | None = None) -> list[dict[str, Any]]:
    """Every token (or one account's), oldest first, without secrets. Unknown account: ApiError 404."""
    query = db.select(ApiToken).order_by(ApiToken.id)
    if account_name is not None:
        account = db.session.execute(db.select(Account).filter_by(name=account_name)).scalar_one_or_none()
        if account is None:
            raise ApiError(404, "not_found", f"no account named {account_name!r}")
        query = query.filter_by(account_id=account.id)
    at = now()
    return [token_json(token, at) for token in db.session.execute(query).scalars()]


def revoke_token(token_id: int) -> dict[str, Any]:
    """Revoke a token at once; return its listing. Unknown id: ApiError 404; already revoked: ApiError 409.

    The conditional UPDATE makes two concurrent revocations of one token end in one success and one 409.
    """
    token = db.session.get(ApiToken, token_id)
    if token is None:
        db.session.rollback()
        raise ApiError(404, "not_found", f"no token with id {token_id}")
    revoked = cast(CursorResult[Any], db.session.execute(
        update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None)).values(revoked_at=now())))
    if revoked.rowcount == 0:
        db.session.rollback()
        db.session.refresh(token)
        raise ApiError(409, "already_revoked", f"token {token_id} was already revoked at {iso(token.revoked_at)}")
    db.session.commit()
    cache = callers()
    if cache is not None:
        cache.forget({token_id})  # refused from now on here; other coordinators within their recheck interval
    db.session.refresh(token)
    return token_json(token)


@dataclass(frozen=True)
class Caller:
    token_id: int
    account_id: int
    account_name: str
    kind: str

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


def _active_caller(token: ApiToken | None) -> Caller | None:
    if token is None or token_state(token) != "active":
        return None
    return Caller(token.id, token.account_id, token.account.name, token.kind)


def caller_for_secret(secret: str) -> Caller | None:
    """The caller holding ``secret``, or None if it is not an active token (unknown, revoked or expired).

    One statement: the token with its account (every authenticated request and WebSocket upgrade asks); none for a
    worker token found active within the recheck interval (caller_cache)."""
    digest = hash_token(secret.strip())
    cache = callers()
    if cache is not None:
        remembered = cache.get(digest, now(), float(current_app.config["FRAMEHIVE_TOKEN_RECHECK_INTERVAL"]))
        if remembered is not None:
            return remembered
    query = db.select(ApiToken).filter_by(token_hash=digest).options(orm.joinedload(ApiToken.account))
    token = db.session.execute(query).scalar_one_or_none()
    caller = _active_caller(token)
    if cache is not None and caller is not None and token is not None and caller.kind == "worker":
        cache.put(digest, caller, token.expires_at)
    return caller


def caller_for_token_id(token_id: int) -> Caller | None:
    """The caller of token ``token_id`` while it is active (a dashboard session remembers only the id)."""
    return _active_caller(db.session.get(ApiToken, token_id))


def caller_from_header(header: str | None) -> Caller:
    """Resolve an ``Authorization: Bearer`` header, or raise 401."""
    if not header or not header.startswith("Bearer "):
        raise ApiError(401, "missing_token", "send 'Authorization: Bearer <token>'")
    caller = caller_for_secret(header[len("Bearer "):])
    if caller is None:
        raise ApiError(401, "bad_token", NOT_VALID)
    return caller


def require(*kinds: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the caller must hold a valid token of one of ``kinds`` (admin always passes)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with reading():  # on SQLite the lookup waits for no writer (db.reading)
                try:
                    caller = caller_from_header(request.headers.get("Authorization"))
                finally:
                    db.session.commit()  # end the lookup's transaction: views open their own, short ones
            if caller.kind not in kinds and not caller.is_admin:
                raise wrong_kind(*kinds)
            g.caller = caller
            return view(*args, **kwargs)

        return wrapper

    return decorator


def wrong_kind(*kinds: str) -> ApiError:
    """The 403 for a valid token of a kind the endpoint does not serve."""
    return ApiError(403, "forbidden", f"this endpoint is for {' or '.join(kinds)} tokens")


def current_caller() -> Caller:
    return g.caller
