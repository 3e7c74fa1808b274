"""Decoded-pixel comparison: PNG bytes carry timestamps, so frames are compared as pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA"))


def same_pixels(a: Path, b: Path) -> bool:
    pa, pb = pixels(a), pixels(b)
    return pa.shape == pb.shape and bool(np.array_equal(pa, pb))
