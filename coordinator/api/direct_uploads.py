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

    def __init__(self, sha256: str, size: int, upload: str) -> None:
        self.sha256, self.size, self.upload = sha256, size, upload
        self.done = False

    def __call__(self) -> int:
        store = object_store("this coordinator has no object store")  # the confirmation found it before the bytes
        store.promote(self.sha256, self.size, self.upload)  # deletes the staged object
        self.done = True
        return self.size


def discard(sha256: str, size: int, upload: str) -> None:
    """Delete a staged upload now, if this coordinator has an object store and there is one."""
    store = storage()
    if isinstance(store, S3Storage):
        with suppress(NotUploaded):  # a sha256 or handle that names no staging key
            store.discard(sha256, size, upload)


@contextmanager
def refusals_discard(sha256: str, size: int, upload: str) -> Iterator[None]:
    """A confirmation refused inside (the lease gone, a limit, the quota, the bytes) deletes its staged upload at
    once, not at the hourly sweep (S3Storage.sweep_staged): the uploader's next try is a new upload. But for 503
    (busy: try again), whose retry confirms the same staged object."""
    try:
        yield
    except ApiError as exc:
        if exc.status != 503:
            discard(sha256, size, upload)
        raise
    except BaseException:
        discard(sha256, size, upload)
        raise


@contextmanager
def staged(sha256: str, size: int, upload: str) -> Iterator[Promotion]:
    """A confirmation's promotion of the staged upload; unless it ran (refused, a duplicate, or the blob was stored
    already), the staged bytes are deleted on the way out: they are never kept (see refusals_discard)."""
    promotion = Promotion(sha256, size, upload)
    with refusals_discard(sha256, size, upload):
        yield promotion
    if not promotion.done:
        discard(sha256, size, upload)
