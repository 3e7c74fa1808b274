"""Reading request bodies with a size limit (uploads are untrusted)."""

from __future__ import annotations

from flask import request

from ..errors import ApiError


def read_limited(limit: int) -> bytes:
    """The request body, or 413 if it is larger than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"uploads are limited to {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "too_large", f"uploads are limited to {limit} bytes")
    return data
