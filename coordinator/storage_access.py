"""The app's blob storage, opened once per app from ``FRAMEHIVE_STORAGE``, and how a blob reaches a client."""

from __future__ import annotations

from flask import current_app, redirect, send_file
from werkzeug.wrappers import Response

from .storage import LocalStorage, Storage


def storage() -> Storage:
    return current_app.extensions["framehive_storage"]


def serve(sha256: str, mimetype: str, download_name: str | None = None) -> Response:
    """The blob's bytes from local disk, or a redirect to a short-lived presigned URL of the object store (the
    coordinator stays off the byte path; the client's bearer token is not sent there: see README)."""
    store = storage()
    url = store.presigned_get(sha256, mimetype, download_name)
    if url is not None:
        response = redirect(url, 307)
        response.headers["Cache-Control"] = "no-store"  # the URL expires: never cache the redirect
        return response
    if not isinstance(store, LocalStorage):
        raise TypeError(f"{type(store).__name__} gave no URL for blob {sha256}")
    return send_file(store.path(sha256), mimetype=mimetype, max_age=0, download_name=download_name)
