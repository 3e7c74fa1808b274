"""Health, identity and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .. import __version__
from ..auth import current_caller, require
from .openapi import openapi_document

bp = Blueprint("meta", __name__)


@bp.get("/health")
def health():
    """Public liveness probe; tells clients which version they talk to."""
    return jsonify({"status": "ok", "version": __version__})


@bp.get("/me")
@require("user", "worker", "admin")
def me():
    caller = current_caller()
    return jsonify({"account": {"id": caller.account_id, "name": caller.account_name}, "token": {"kind": caller.kind}})


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
