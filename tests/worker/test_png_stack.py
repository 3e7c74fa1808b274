"""framehive.worker_agent.png_stack joins two PNGs without an image library: the result decodes to the two images, one
above the other, for every filter Pillow and Blender choose and every colour type a render can have."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from framehive.coordinator import frame_analysis as fa
from framehive.worker_agent.png_stack import PngStackError, stack
from PIL import Image


def _png(array: np.ndarray, **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG", **options)
    return out.getvalue()


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("optimize", [False, True])  # Pillow picks other filters per row when optimising
def test_stacked_png_decodes_to_both_images(channels: int, optimize: bool) -> None:
    rng = np.random.default_rng(channels)
    top = rng.integers(0, 256, (9, 17, channels), dtype=np.uint8)
    bottom = np.cumsum(rng.integers(0, 3, (7, 17, channels)), axis=1).astype(np.uint8)  # smooth: Sub/Paeth rows
    joined = fa.decode(stack(_png(top, optimize=optimize), _png(bottom, optimize=optimize)), 10_000)
    assert np.array_equal(joined, np.concatenate([top, bottom]))


def _filtered_png(array: np.ndarray, kind: int) -> bytes:
    """An RGB PNG whose every row uses PNG filter ``kind`` (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    height, width, bpp = array.shape
    flat = array.reshape(height, width * bpp).astype(np.int32)
    rows = b""
    for y in range(height):
        line, up = flat[y], flat[y - 1] if y else np.zeros_like(flat[0])
        left = np.concatenate([np.zeros(bpp, dtype=np.int32), line[:-bpp]])
        corner = np.concatenate([np.zeros(bpp, dtype=np.int32), up[:-bpp]])
        if kind == 4:
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, corner))
        else:
            predictor = [0 * line, left, up, (left + up) // 2][kind]
        rows += bytes([kind]) + ((line - predictor) % 256).astype(np.uint8).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(name: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4])
def test_every_png_filter_of_the_lower_images_first_row_is_undone(kind: int) -> None:
    """The lower image's first row referred to a zero row above it; joined, it would see the top image's last row."""
    rng = np.random.default_rng(kind)
    top = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    bottom = rng.integers(0, 256, (3, 6, 3), dtype=np.uint8)
    assert np.array_equal(fa.decode(_filtered_png(bottom, kind), 1000), bottom)  # the helper writes valid PNGs
    joined = fa.decode(stack(_filtered_png(top, kind), _filtered_png(bottom, kind)), 1000)
    assert np.array_equal(joined, np.concatenate([top, bottom]))


def test_images_of_different_widths_or_kinds_are_refused() -> None:
    rgb = _png(np.zeros((4, 6, 3), dtype=np.uint8))
    with pytest.raises(PngStackError):
        stack(rgb, _png(np.zeros((4, 7, 3), dtype=np.uint8)))
    with pytest.raises(PngStackError):
        stack(rgb, _png(np.zeros((4, 6, 4), dtype=np.uint8)))
    with pytest.raises(PngStackError):
        stack(rgb, rgb[:-5])
