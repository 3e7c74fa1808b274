"""Reading request bodies with a size limit (uploads are untrusted)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider

from ..errors import ApiError

DRAIN_CHUNK = 1024 * 1024


def read_limited(limit: int) -> bytes:
    """The request body, or 413 if it is larger than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"uploads are limited to {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "too_large", f"uploads are limited to {limit} bytes")
    return data


def drain(limit: int) -> None:
    """Read and drop a body nobody needs (so the client sees the answer), a chunk at a time: never all of it in
    memory. 413 if it is larger than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"uploads are limited to {limit} bytes")
    seen = 0
    while chunk := request.stream.read(DRAIN_CHUNK):
        seen += len(chunk)
        if seen > limit:
            raise ApiError(413, "too_large", f"uploads are limited to {limit} bytes")


def init_app(app: Flask) -> None:
    """JSON bodies: a size limit before they are read, a nesting limit when they are parsed."""
    app.json = GuardedJSONProvider(app)
    app.before_request(_limit_json_body)


def _limit_json_body() -> None:
    """413 ``too_large`` for a JSON body over ``FRAMEHIVE_MAX_JSON_BYTES``, before any of it is read (a body
    without a length is cut there too). Other bodies (blobs, frames) are streamed with their own limits."""
    if not request.is_json:
        return
    limit = current_app.config["FRAMEHIVE_MAX_JSON_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"JSON bodies are limited to {limit} bytes")
    request.max_content_length = limit


class GuardedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, refusing documents nested deeper than ``FRAMEHIVE_MAX_JSON_DEPTH`` with 400 ``too_deep``.

    Python's parser recurses per level and raises RecursionError (a 500) near a thousand; the views' bodies are
    a couple of levels deep, and anything deep is costly to walk for nothing."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        most = int(self._app.config["FRAMEHIVE_MAX_JSON_VALUES"])
        if values_at_most(s) > most:  # before parsing: millions of tiny values take ~20x their bytes once parsed
            raise ApiError(400, "too_many_values", f"a JSON body may hold at most {most} values")
        too_deep = ApiError(400, "too_deep", f"JSON may nest at most {self._limit()} levels deep")
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            raise too_deep from None
        if nesting(value) > self._limit():
            raise too_deep
        return value

    def _limit(self) -> int:
        return int(self._app.config["FRAMEHIVE_MAX_JSON_DEPTH"])


def values_at_most(text: str | bytes) -> int:
    """An upper bound of the values (arrays, objects and their items) a JSON text holds, counted on the text
    (a comma or bracket inside a string counts too): each value but the first is after a comma or opens a
    container."""
    if isinstance(text, str):
        return text.count(",") + text.count("[") + text.count("{") + 1
    return text.count(b",") + text.count(b"[") + text.count(b"{") + 1


def nesting(value: Any) -> int:
    """How many arrays and objects deep ``value`` goes (a scalar: 0), walked without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest
