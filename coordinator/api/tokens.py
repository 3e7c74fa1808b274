"""Admin: list, create and revoke API tokens. Secrets are returned once, by create; listings never hold them."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from .. import events, paging
from ..auth import current_caller, issue_token, require, revoke_token, token_json, wrong_kind
from ..db import db
from ..errors import ApiError
from ..models import Account, ApiToken, now

bp = Blueprint("tokens", __name__)

CREATE_FIELDS = {"kind", "name", "account", "expires_in"}
# A token may be made to last a century at most: a lifetime past the calendar's end cannot be written as a date.


def _admin_only() -> None:
    # require("admin") already refuses user and worker tokens; this keeps the endpoints admin-only even if
    # require() ever learns to let other kinds through.
    if not current_caller().is_admin:
        raise wrong_kind("admin")


def _record(kind: str, message: str, listing: dict[str, Any]) -> None:
    """An event on the token's account, naming the admin who acted (its own transaction: the token's is over)."""
    account = db.session.execute(select(Account).filter_by(name=listing["account"])).scalar_one()
    events.record(kind, message, account=account, actor=current_caller().account_name)
    db.session.commit()


@bp.get("/admin/tokens")
@require("admin")
def list_all():
    """Every token (or one account's: ?account=NAME), oldest first, a page at a time; never a secret."""
    _admin_only()
    query = select(ApiToken)
    if name := request.args.get("account"):
        account = db.session.execute(select(Account).filter_by(name=name)).scalar_one_or_none()
        if account is None:
            raise ApiError(404, "not_found", f"no account named {name!r}")
        query = query.filter_by(account_id=account.id)
    page = paging.paginate(query, ApiToken.id, newest_first=False)
    at = now()
    return jsonify({"tokens": [token_json(token, at) for token in page.items], "next": page.next})


@bp.post("/admin/tokens")
@require("admin")
def create():
    _admin_only()
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "bad_json", "the body must be JSON (Content-Type: application/json)")
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", 'send {"kind": "user", "name": "alice", "account"?, "expires_in"?}')
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise ApiError(400, "bad_request", f"unknown field(s): {', '.join(unknown)}")
    try:
        secret, listing = issue_token(body.get("kind"), body.get("name"), body.get("account"),  # type: ignore[arg-type]
                                      expires_in=body.get("expires_in"))
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    _record(events.TOKEN_CREATED, f"{listing['kind']} token {listing['id']} ({listing['name']}) created", listing)
    return jsonify({"token": secret, **listing}), 201


@bp.delete("/admin/tokens/<int:token_id>")
@require("admin")
def revoke(token_id: int):
    _admin_only()
    listing = revoke_token(token_id)
    _record(events.TOKEN_REVOKED, f"{listing['kind']} token {listing['id']} ({listing['name']}) revoked", listing)
    if token_id == current_caller().token_id:
        listing["warning"] = ("you revoked the token this request was made with: it no longer works; "
                              "create a new admin token with 'framehive-coordinator token create --kind admin'")
    return jsonify(listing)
