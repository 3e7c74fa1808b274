"""A poll of one job that sends what changed: the ETag of its whole answer (304 when the caller has it) and the
``since`` cursor (only the rows of the blocks that changed since the caller's last answer).

The ETag is a digest of the answer itself, the JSON the caller would be sent. So it changes exactly when something
the answer shows changes, whichever module made the change (a frame's state, a task's lease or attempts, a check's
verdict, the escrow, ``waiting``, an UPDATE of many rows at once): a per-job counter would have to be bumped by
every one of those writers, and one forgotten writer would leave a poller with a stale job and no sign of it. The
price is the coordinator's: the answer is still built on each poll (as it was before); what is saved is the bytes
sent and the caller's parsing.

The cursor: each list of the answer (``LISTS``) is cut into blocks of consecutive rows, and the cursor holds a
short digest of every block. Given back (``?since=<cursor>``), it gets an answer with the job's summary and counts
in full and, of each list, only the rows of the blocks whose digest differs or that are new; the caller replaces
its rows by key (``LISTS``) and adds the new ones. Rows are never removed from these lists (a job's frames and tasks
are fixed at submission; checks and failures are only added). A block holds ``BLOCK_ROWS`` rows, doubled until a
list has at most ``MAX_BLOCKS`` blocks, so the cursor stays short (a few hundred characters for a 10,000-frame job);
when a growing list (checks) doubles its block size, that list is sent whole once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from flask import Response, jsonify, request

from ..errors import ApiError

#: The lists a cursor covers, each with the field that keys its rows.
LISTS = {"frame_states": "frame", "tasks": "id", "checks": "id", "failures": "id", "assets": "path"}
#: Rows per block at the least, and the most blocks a list is cut into (the block size doubles to keep to it).
BLOCK_ROWS = 32
MAX_BLOCKS = 64
MAX_SHIFT = 24  # 32 << 24 rows in a block: far beyond any job (MAX_JOB_FRAMES); a bigger one is a forged cursor
DIGEST_BYTES = 4  # per block; a collision (1 in 2**32 per changed block) would hold back that block's change
VERSION = "1"
MAX_CURSOR = 4 * len(LISTS) * (2 + MAX_BLOCKS * DIGEST_BYTES) // 3 + 4  # base64 characters of the longest cursor
CURSOR_RE = re.compile(rf"\A{VERSION}\.[A-Za-z0-9_-]{{0,{MAX_CURSOR}}}\Z")


@dataclass(frozen=True)
class Blocks:
    """One list's cut: rows per block is ``BLOCK_ROWS << shift``; a digest per block, in order."""

    shift: int
    digests: tuple[bytes, ...]


def etag(body: dict[str, Any]) -> str:
    """The strong ETag of an answer: a digest of its canonical JSON."""
    return f'"{hashlib.blake2b(canonical(body), digest_size=16).hexdigest()}"'


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def cut(rows: list[Any]) -> Blocks:
    shift = 0
    while -(-len(rows) // (BLOCK_ROWS << shift)) > MAX_BLOCKS:
        shift += 1
    size = BLOCK_ROWS << shift
    return Blocks(shift, tuple(hashlib.blake2b(canonical(rows[i:i + size]), digest_size=DIGEST_BYTES).digest()
                               for i in range(0, len(rows), size)))


def cursor(body: dict[str, Any]) -> str:
    """The cursor of an answer: each list's block size and block digests, packed and base64url-encoded."""
    packed = bytearray()
    for name in LISTS:
        blocks = cut(body[name])
        packed += bytes((blocks.shift, len(blocks.digests))) + b"".join(blocks.digests)
    return f"{VERSION}.{base64.urlsafe_b64encode(bytes(packed)).decode().rstrip('=')}"


def parse_since(text: str | None) -> dict[str, Blocks] | None:
    """The blocks a caller's cursor names (None: no ``since``, the whole answer); 400 ``bad_since`` for anything
    that is not a cursor this module wrote (empty, a number, too long, a NUL, cut short, trailing bytes)."""
    if text is None:
        return None
    if not CURSOR_RE.match(text):
        raise _bad()
    data = text[len(VERSION) + 1:]
    try:
        packed = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        raise _bad() from None
    out, at = {}, 0
    for name in LISTS:
        if at + 2 > len(packed):
            raise _bad()
        shift, count = packed[at], packed[at + 1]
        end = at + 2 + count * DIGEST_BYTES
        if shift > MAX_SHIFT or count > MAX_BLOCKS or end > len(packed):
            raise _bad()
        out[name] = Blocks(shift, tuple(packed[i:i + DIGEST_BYTES] for i in range(at + 2, end, DIGEST_BYTES)))
        at = end
    if at != len(packed):
        raise _bad()
    return out


def _bad() -> ApiError:
    return ApiError(400, "bad_since", "'since' must be the 'cursor' of an earlier answer for this job, unchanged")


def changed_rows(rows: list[Any], had: Blocks) -> list[Any]:
    """The rows of the blocks that differ from ``had`` (all of them when the block size is not the same)."""
    now = cut(rows)
    if now.shift != had.shift:
        return rows
    size = BLOCK_ROWS << now.shift
    return [row for index, digest in enumerate(now.digests)
            if index >= len(had.digests) or had.digests[index] != digest
            for row in rows[index * size:(index + 1) * size]]


def answer(body: dict[str, Any]) -> Response:
    """A job detail poll's response: 304 with no body if the caller's If-None-Match names this answer's ETag;
    else the whole answer, or with ``?since=`` only what changed, each with its ``cursor``."""
    since = parse_since(request.args.get("since"))
    tag = etag(body)
    if request.if_none_match.contains_weak(tag.strip('"')):
        response = Response(status=304)
    else:
        sent = {**body, "cursor": cursor(body)}
        if since is not None:
            sent.update({name: changed_rows(body[name], since[name]) for name in LISTS}, since=True)
        response = jsonify(sent)
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = "private, no-cache"  # a cache asks again each time; none shares it
    return response
