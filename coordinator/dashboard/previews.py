"""Frames and crops as small PNGs for the browser, made with Pillow from blobs nobody trusts yet.

Every blob is decoded with frame_analysis.decode (PNG checks, a pixel limit before decompression), one at a
time (a big frame takes hundreds of MB while decoded), and each result is cached on disk under the data dir:
blobs never change, so neither do their previews.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
from flask import current_app
from PIL import Image

from .. import frame_analysis as fa
from ..storage_access import storage

# Longest side of each preview size, in pixels.
SIZES = {"thumb": 160, "preview": 640}
# Frames bigger than this are not previewed (16 bit RGBA at this size is already half a GB decoded).
MAX_PREVIEW_PIXELS = 64 * 1024 * 1024
_decoding = threading.BoundedSemaphore(1)


class NoPreview(Exception):
    """The blob cannot be shown: missing, too big, or not a PNG that decodes."""


def preview(sha256: str, region: fa.Region | None = None, max_side: int | None = None) -> bytes:
    """A PNG of blob ``sha256``, cut to ``region`` and shrunk to fit ``max_side`` (never enlarged)."""
    key = f"{sha256}-{'full' if region is None else '-'.join(map(str, region.as_list()))}-{max_side or 0}.png"
    cached = cache_dir() / key
    if cached.is_file():
        return cached.read_bytes()
    with _decoding:
        pixels = _decode(sha256)
        try:
            pixels = fa.crop(pixels, region) if region is not None else pixels
        except ValueError as exc:
            raise NoPreview(str(exc)) from None
        image = Image.fromarray(pixels)
        if max_side:
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, format="PNG")
    _store(cached, out.getvalue())
    return out.getvalue()


def cache_dir() -> Path:
    return Path(current_app.config["FRAMEHIVE_DATA_DIR"]) / "dashboard-cache"


def _decode(sha256: str) -> np.ndarray:
    limit = min(MAX_PREVIEW_PIXELS, current_app.config["FRAMEHIVE_MAX_FRAME_PIXELS"])
    try:
        store = storage()
        size = store.size(sha256)
        if size is None:
            raise NoPreview("the blob is not in storage")
        if size > current_app.config["FRAMEHIVE_MAX_FRAME_BYTES"]:
            raise NoPreview("the blob is larger than any frame may be")
        with store.open(sha256) as handle:
            return fa.decode(handle.read(), limit)
    except (OSError, ValueError) as exc:  # BadImage is a ValueError
        raise NoPreview(str(exc)) from None


def _store(path: Path, data: bytes) -> None:
    """Write through a temp file and rename, so a concurrent reader never sees half a preview."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
