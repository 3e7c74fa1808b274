"""Direct uploads to the object store: a presigned PUT handed out, then the staged object read back before it
counts. Shared by artists' blobs (blobs.py), agents' frames (worker_frames.py) and check results (worker_checks.py);
each endpoint keeps its own limits and checks of the bytes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from flask import Response, jsonify, request
from framehive.protocol.json_numbers import is_int

from ..errors import ApiError
from ..storage import BlobTooLarge, NotUploaded, S3Storage
from ..storage_access import storage


def announced_size() -> int:
    """The ``size`` of a direct upload's JSON body."""
    body = request.get_json(silent=True)
    size = body.get("size") if isinstance(body, dict) else None
    if not is_int(size) or size < 0:
        raise ApiError(400, "bad_request", 'send {"size": <bytes>}')
    return size


def presigned_answer(sha256: str, size: int, content_type: str) -> tuple[Response, int]:
    """A presigned PUT of ``size`` bytes to a staging key (201), or ``{"url": null}`` (200): PUT them here."""
    direct = storage().presigned_put(sha256, size, content_type)
    if direct is None:
        return jsonify({"url": None}), 200
    return jsonify({"url": direct.url, "method": "PUT", "headers": direct.headers, "upload": direct.handle,
                    "expires_in": direct.expires_in}), 201


def object_store(takes_by_put: str) -> S3Storage:
    """The store a direct upload was staged in; 404 saying ``takes_by_put`` when this coordinator has none."""
    store = storage()
    if not isinstance(store, S3Storage):
        raise ApiError(404, "not_found", takes_by_put)
    return store


def not_uploaded() -> ApiError:
    return ApiError(404, "not_found", "nothing was uploaded under this handle (or its URL expired)")


def read_staged(store: S3Storage, sha256: str, size: int, upload: str, other_size_code: str) -> bytes:
    """The staged bytes (small objects: frames, check results); a staged object of another size than announced is
    deleted and answered 400 ``other_size_code``."""
    try:
        return store.read_staged(sha256, size, upload)
    except NotUploaded:
        raise not_uploaded() from None
    except BlobTooLarge as exc:
        raise ApiError(400, other_size_code, str(exc)) from None


class Promotion:
    """Keeps a checked staged object as its blob (copied inside the store, the staged one deleted), when called."""

    def __init__(self, store: S3Storage, sha256: str, size: int, upload: str) -> None:
        self.store, self.sha256, self.size, self.upload = store, sha256, size, upload
        self.done = False

    def __call__(self) -> int:
        self.store.promote(self.sha256, self.size, self.upload)  # deletes the staged object
        self.done = True
        return self.size


@contextmanager
def staged(store: S3Storage, sha256: str, size: int, upload: str) -> Iterator[Promotion]:
    """The staged object's promotion; unless it ran (refused, or the blob was stored already), the staged bytes are
    deleted on the way out: they are never kept."""
    promotion = Promotion(store, sha256, size, upload)
    try:
        yield promotion
    finally:
        if not promotion.done:
            with suppress(NotUploaded):
                store.discard(sha256, size, upload)
