"""Reading request bodies with a size limit, and what else a stranger's request may not hold (uploads and
arguments are untrusted)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider

from .. import work_slots
from ..errors import ApiError

DRAIN_CHUNK = 1024 * 1024


def read_limited(limit: int) -> bytes:
    """The request body, or 413 if it is larger than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"uploads are limited to {limit} bytes")
    with work_slots.released():  # a stranger's body may trickle in: no slot is held meanwhile
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
    with work_slots.released():
        while chunk := request.stream.read(DRAIN_CHUNK):
            seen += len(chunk)
            if seen > limit:
                raise ApiError(413, "too_large", f"uploads are limited to {limit} bytes")


NUL_REFUSED = "NUL bytes are not allowed in names, arguments or text"


def init_app(app: Flask) -> None:
    """JSON bodies: a size limit before they are read, a nesting limit and no NUL when they are parsed; query
    arguments: no NUL."""
    app.json = GuardedJSONProvider(app)
    app.before_request(_limit_json_body)
    app.before_request(_refuse_nul_arguments)


def _refuse_nul_arguments() -> None:
    """400 ``bad_request`` for a NUL in a query argument: PostgreSQL refuses one in a text parameter with an
    error (a 500), not with "no such row", and no name, state or token holds one."""
    if any("\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)):
        raise ApiError(400, "bad_request", NUL_REFUSED)


def _limit_json_body() -> None:
    """413 ``too_large`` for a JSON body over ``FRAMEHIVE_MAX_JSON_BYTES``, before any of it is read (a body
    without a length is cut there too). Other bodies (blobs, frames) are streamed with their own limits."""
    if not request.is_json:
        return
    limit = current_app.config["FRAMEHIVE_MAX_JSON_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"JSON bodies are limited to {limit} bytes")
    request.max_content_length = limit
    request.get_data(cache=True)  # read here, before the request takes a work slot (work_slots.init_app)


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
        if holds_nul(value):  # a text column on PostgreSQL refuses it with an error: a 500 later
            raise ApiError(400, "bad_request", NUL_REFUSED)
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


def holds_nul(value: Any) -> bool:
    """Whether any string in ``value`` (keys included) holds a NUL, walked without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
