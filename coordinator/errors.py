"""JSON errors for the API: ``{"error": {"code": ..., "message": ...}}`` with the right status code."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An error the caller can act on; raised anywhere inside a request."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class ActionRefused(ApiError):
    """An action that the state of its object does not allow (the job and worker controls): 409 unless said
    otherwise. A domain error first; being an ApiError, the API answers it as it is."""

    def __init__(self, code: str, message: str, status: int = 409, **details: Any) -> None:
        super().__init__(status, code, message, **details)


def error_response(status: int, code: str, message: str, **details: Any):
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return jsonify({"error": body}), status


def register_error_handlers(app: Flask) -> None:
    """Every error under /api becomes JSON, including Flask's own 404/405/413 and crashes."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, **exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not request.path.startswith("/api/"):
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _crash(exc: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the coordinator hit an internal error; see its log")
