"""Frames delivered before any check, on the artist's request: marked in their own bytes.

A frame nobody has verified yet (its checks wait for a verifier, or the network has a single owner) may be
wrong or faked. The artist may still want it (to look at a long job while it waits), so it is served, but never
as it is: a PNG ``tEXt`` chunk ``Framehive`` saying UNVERIFIED goes right after the header, which every image
tool shows and which changes its sha256, so a copy can never pass for the verified frame (the job's frame list
gives the verified frame's hash, and a download of it is never skipped because an unverified copy is on disk).
The response says it too (``X-Framehive-Verified: no``, a ``.UNVERIFIED.png`` file name).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER_BYTES = len(SIGNATURE) + 4 + 4 + 13 + 4  # the signature and the IHDR chunk, always first
KEYWORD = b"Framehive"
CHUNK = 1 << 20


class NotAPng(ValueError):
    pass


def notice(job_id: int, frame: int) -> str:
    return (f"UNVERIFIED: frame {frame} of Framehive job {job_id}, delivered before any other owner checked it; "
            "it may be wrong or faked")


def text_chunk(keyword: bytes, text: str) -> bytes:
    data = keyword + b"\0" + text.encode("latin-1")
    return struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))


def marked(open_frame: Callable[[], BinaryIO], text: str) -> tuple[str, int, Iterator[bytes]]:
    """The marked PNG's sha256, size and bytes (a stream), from a stored frame opened by ``open_frame``.

    Two passes over the stored frame, the first for the hash: a frame may be hundreds of megabytes, so it is never
    held in memory whole. Raises NotAPng if the stored bytes do not start with a PNG header (they always do: the
    frame was decoded when it arrived)."""
    digest, size = hashlib.sha256(), 0
    for piece in _pieces(open_frame, text):
        digest.update(piece)
        size += len(piece)
    return digest.hexdigest(), size, _pieces(open_frame, text)


def _pieces(open_frame: Callable[[], BinaryIO], text: str) -> Iterator[bytes]:
    with open_frame() as handle:
        head = handle.read(HEADER_BYTES)
        if len(head) != HEADER_BYTES or not head.startswith(SIGNATURE) or head[12:16] != b"IHDR":
            raise NotAPng("the stored frame does not start with a PNG header")
        yield head
        yield text_chunk(KEYWORD, text)
        while piece := handle.read(CHUNK):
            yield piece
