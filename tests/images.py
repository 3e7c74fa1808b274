"""Decoded-pixel comparison: PNG bytes carry timestamps, so frames are compared as pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA"))


def colours(path: Path) -> set[tuple[int, int, int]]:
    """Every RGB colour that occurs in the image."""
    rgb = pixels(path)[:, :, :3].reshape(-1, 3)
    return {(int(r), int(g), int(b)) for r, g, b in np.unique(rgb, axis=0)}


def same_pixels(a: Path, b: Path) -> bool:
    pa, pb = pixels(a), pixels(b)
    return pa.shape == pb.shape and bool(np.array_equal(pa, pb))
