"""Tier 1: the whole frame re-rendered at low resolution, compared with the renderer's frame box-downscaled.

Region and spot checks see a cheat only where they overlap it, so a tampered rectangle or a still camera's next
frame slips past most of them. A tier-1 render sees every part of the frame for a few per cent of its cost
(benchmarks/local_cheats.py: 0.08 of a 320x180 frame at 1/4 resolution, 0.04 at 1/5). Low resolution is not
bit-exact against a downscaled full render (Cycles samples other points), so the comparison has a tolerance, and
a tolerance must never punish an honest worker: a tier-1 comparison blames nobody. It names the tile where the
frame strays most, and a strict region check of that spot, bit-exact and judged by the ordinary machinery
(decide.py), settles it. An honest frame that a tier-1 render happens to flag costs one region check more.

Not yet scheduled (keys, check kind and the agent's overrides are the next step): this module is the comparison
and the follow-up region, tested on real renders (tests/coordinator/test_tier1.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import frame_analysis as fa

#: The verifier renders at 1/FACTOR of the job's resolution (resolution_percentage 100 // FACTOR, exact).
FACTOR = 4
#: The comparison is made per tile of a TILES x TILES grid: a local cheat would be averaged away over the frame.
TILES = 8
#: A tile below this PSNR asks for a follow-up region check. Honest pairs of the 32 spp sample scene stay above
#: 30.5 dB at 1/4 resolution; a tamper or the adjacent frame fall far below (benchmarks/local_cheats.py). Since a
#: flag only orders a bit-exact check, a threshold close to the honest floor costs a little work, never a blame.
MIN_TILE_PSNR = 27.0


def overrides(factor: int = FACTOR) -> dict[str, object]:
    """What the verifier's render_region changes for a tier-1 render (worker render_runner.REGION_OVERRIDES)."""
    return {"resolution_percentage": 100 // factor, "pixel_filter_type": "BOX"}


def low_size(width: int, height: int, factor: int = FACTOR) -> tuple[int, int]:
    """The size Blender renders at ``resolution_percentage = 100 // factor`` (its integer rule)."""
    percentage = 100 // factor
    return width * percentage // 100, height * percentage // 100


@dataclass(frozen=True)
class Tier1:
    min_tile_psnr: float
    worst: fa.Region  # the worst tile, in the full frame's pixels
    flagged: bool


def compare(frame: np.ndarray, low: np.ndarray, factor: int = FACTOR) -> Tier1:
    """The renderer's full ``frame`` against the verifier's ``low`` render of it."""
    ours = fa.downscale_linear(frame, factor)
    if ours.shape != low.shape:
        raise fa.BadImage(f"the tier-1 render is {low.shape[1]}x{low.shape[0]}, expected "
                          f"{ours.shape[1]}x{ours.shape[0]}")
    h, w = ours.shape[:2]
    worst, where = math.inf, (0, 0)
    for i in range(TILES):
        for j in range(TILES):
            ys, xs = slice(i * h // TILES, (i + 1) * h // TILES), slice(j * w // TILES, (j + 1) * w // TILES)
            diff = ours[ys, xs].astype(np.float64) - low[ys, xs].astype(np.float64)
            mse = float(np.mean(diff * diff)) if diff.size else 0.0
            psnr = fa.PSNR_IDENTICAL if mse == 0 else 10 * math.log10(255 * 255 / mse)
            if psnr < worst:
                worst, where = psnr, (i, j)
    full_h, full_w = frame.shape[:2]
    i, j = where
    y0, y1 = i * h // TILES * full_h // h, (i + 1) * h // TILES * full_h // h
    x0, x1 = j * w // TILES * full_w // w, (j + 1) * w // TILES * full_w // w
    tile = fa.Region(x0, y0, max(1, x1 - x0), max(1, y1 - y0))
    return Tier1(min_tile_psnr=worst, worst=tile, flagged=worst < MIN_TILE_PSNR)


def follow_up_region(result: Tier1, width: int, height: int) -> fa.Region:
    """The region a strict check of a flagged frame covers: the worst tile, grown to a region check's 1/16 of the
    frame around its centre (inside the frame)."""
    target_w = max(result.worst.width, round(width / 4))
    target_h = max(result.worst.height, round(height / 4))
    cx = result.worst.x + result.worst.width // 2
    cy = result.worst.y + result.worst.height // 2
    x = min(max(0, cx - target_w // 2), width - target_w)
    y = min(max(0, cy - target_h // 2), height - target_h)
    return fa.Region(x, y, target_w, target_h)
