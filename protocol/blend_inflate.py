""".blend files as Blender reads them: plain, gzip- or zstd-compressed, inflated under a cap before a parser sees them.

A compressed .blend is a few kilobytes that may inflate to gigabytes (a zstd "scene" of 4 KB holding 128 MiB of
zeros). blender-asset-tracer inflates whatever it is given, whole, before reading a byte of it; so untrusted files
are inflated here instead, into a file of the caller's, stopping as soon as the output passes ``limit`` bytes (and
at once when a zstd frame header announces more). Memory stays bounded whatever the input: zstd's window is
capped too, and the output is streamed to disk in chunks.

Runs inside the child process of :mod:`framehive.protocol.untrusted_parse`; ``zstandard`` is imported only for zstd
files.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import zstandard

BLENDER_MAGIC = b"BLENDER"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Skippable zstd frames: 0x184D2A50..5F, little-endian (the low nibble of the first byte is free).
_SKIPPABLE_LOW = 0x184D2A50
CHUNK = 1024 * 1024
# The largest zstd window accepted: Blender writes with small windows (a few MiB); a frame may ask for up to
# 3.75 TiB, which the decompressor would try to allocate.
MAX_ZSTD_WINDOW = 128 * 1024 * 1024


class TooLarge(ValueError):
    """The file inflates to more than the limit."""


class NotABlend(ValueError):
    """The file is not a .blend Blender could read (or its compressed stream is broken)."""


def compression(head: bytes) -> str | None:
    """``"none"``, ``"gzip"`` or ``"zstd"`` from a file's first bytes, or None when it cannot be a .blend."""
    if head.startswith(BLENDER_MAGIC):
        return "none"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC) or (len(head) >= 4 and int.from_bytes(head[:4], "little") & ~0xF
                                       == _SKIPPABLE_LOW):
        return "zstd"
    return None


def may_be_blend(path: Path) -> bool:
    """Whether Blender would try to read ``path`` as a .blend (its first bytes say so); reads 8 bytes."""
    with path.open("rb") as file:
        return compression(file.read(8)) is not None


def inflate(path: Path, target: Path, limit: int) -> Path:
    """``path`` itself if it is a plain .blend, else its inflated bytes written to ``target``; raises TooLarge
    when either holds more than ``limit`` bytes, NotABlend when it is not a .blend."""
    with path.open("rb") as file:
        kind = compression(file.read(8))
        if kind is None:
            raise NotABlend("not a .blend file (no BLENDER, gzip or zstd header)")
        if kind == "none":
            size = file.seek(0, 2)
            if size > limit:
                raise TooLarge(f"the .blend is {size} bytes, more than the {limit} allowed")
            return path
        file.seek(0)
        if kind == "zstd":
            _check_zstd_header(file.read(18), limit)
            file.seek(0)
        with target.open("wb") as out:
            head = b""
            for chunk in _chunks(file, kind, CHUNK, limit):
                if len(head) < len(BLENDER_MAGIC):
                    head += chunk[:len(BLENDER_MAGIC)]
                    if not BLENDER_MAGIC.startswith(head[:len(BLENDER_MAGIC)]):
                        raise NotABlend(f"a {kind}-compressed file that is not a .blend")
                out.write(chunk)
    if not head.startswith(BLENDER_MAGIC):
        raise NotABlend(f"a {kind}-compressed file that is not a .blend")
    return target


def _check_zstd_header(head: bytes, limit: int) -> None:
    """Refuse at once a zstd frame that announces more than ``limit`` bytes (frames need not announce it)."""
    import zstandard

    try:
        size = zstandard.frame_content_size(head)
    except zstandard.ZstdError:
        return  # a skippable frame first, or a header the stream will refuse
    if size > limit:
        raise TooLarge(f"the zstd frame announces {size} bytes inflated, more than the {limit} allowed")


def _chunks(file: BinaryIO, kind: str, size: int, limit: int) -> Iterator[bytes]:
    """The inflated bytes in chunks of at most ``size``; TooLarge past ``limit``, NotABlend on a broken stream."""
    total = 0
    with _reader(file, kind) as reader:
        while True:
            try:
                chunk = reader.read(size)
            except Exception as exc:  # gzip's OSError/EOFError/zlib.error, zstandard.ZstdError: hostile bytes
                raise NotABlend(f"a broken {kind} stream: {exc}") from None
            if not chunk:
                return
            total += len(chunk)
            if total > limit:
                raise TooLarge(f"the file inflates to more than the {limit} bytes allowed")
            yield chunk


def _reader(file: BinaryIO, kind: str) -> gzip.GzipFile | zstandard.ZstdDecompressionReader:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=file, mode="rb")
    if kind == "zstd":
        import zstandard

        decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_ZSTD_WINDOW)
        return decompressor.stream_reader(file, read_across_frames=True)
    raise ValueError(f"no reader for {kind}")
