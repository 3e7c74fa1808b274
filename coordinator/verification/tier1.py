"""Tier 1: the whole frame re-rendered at low resolution, compared with the renderer's frame box-downscaled.

Region and spot checks see a cheat only where they overlap it, so a tampered rectangle or a still camera's next
frame slips past most of them. A tier-1 render sees every part of the frame for a per cent or two of its cost
(BENCHMARKS.md "Local cheats: tier 1": 0.009-0.017 of a 960x540 or 1920x1080 frame at 1/10). Low resolution is not
bit-exact against a downscaled full render (Cycles samples other points), so the comparison has a tolerance, and
a tolerance must never punish an honest worker: a tier-1 comparison blames nobody. It names the tile where the
frame strays most, and a strict region check of that spot, bit-exact and judged by the ordinary machinery
(decide.py), settles it. An honest frame that a tier-1 render happens to flag costs one region check more.

Scheduled from per-frame keys (keys.py) at FRAMEHIVE_TIER1_RATE, for frames :func:`factor_for` finds a factor for.
The verifier renders the low image by setting the scene's resolution to it (percentage 100), whatever
percentage the artist's scene uses, so the low image frames exactly what the full one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import frame_analysis as fa

#: The verifier renders at 1/factor of the job's resolution, the coarsest of these that divides the frame exactly
#: (an exact factor keeps the low image's framing and pixel grid those of the full frame) and leaves every tile
#: of the comparison MIN_TILE_SIDE pixels each way. 1/10 costs 0.9-1.7 % of a frame and sees a 1/16 tamper and
#: the adjacent frame as well as 1/4 does (BENCHMARKS.md "Local cheats: tier 1": d = 1 on six scenes at every
#: factor).
FACTORS = (10, 5, 4)
#: The comparison is made per tile of a TILES x TILES grid: a local cheat would be averaged away over the frame.
TILES = 8
#: A tile below this PSNR asks for a follow-up region check. Measured at 1/10, 1/5 and 1/4 on six scenes (plain
#: 4-8 spp, OIDN, the compositor's Denoise node; 960x540 and 1920x1080): honest frames at 4 spp and up stay above
#: 22.2 dB, a 1/16 tamper below 18.1 dB and the adjacent frame below 8.6 dB. A 2 spp frame without a denoiser is
#: flagged (19 dB): a flag only orders a bit-exact check, so that costs work, never a blame.
MIN_TILE_PSNR = 21.0


#: Each tile must hold at least this many low-resolution pixels each way: a tile of one or two pixels measures one
#: pixel's sampling noise, and honest 64x36 frames at 1/4 (tiles of 2x1 pixels) fell to 18-20 dB.
MIN_TILE_SIDE = 2


def factor_for(width: int, height: int) -> int | None:
    """The factor of a tier-1 render of a ``width`` x ``height`` frame; None when no factor of FACTORS divides
    both sides and leaves tiles of MIN_TILE_SIDE pixels each way (such a frame, 64x36 or 2048x858, gets region
    and spot checks only)."""
    for factor in FACTORS:
        if width % factor == 0 and height % factor == 0 and min(width, height) // factor >= TILES * MIN_TILE_SIDE:
            return factor
    return None


def low_size(width: int, height: int, factor: int) -> tuple[int, int]:
    """The size of the tier-1 render of a ``width`` x ``height`` frame (``factor`` divides both)."""
    return width // factor, height // factor


def overrides(low_width: int, low_height: int) -> dict[str, object]:
    """What the verifier's render_region changes for a tier-1 render of that size (worker
    render_runner.REGION_OVERRIDES): the resolution itself, at 100 %, and a box pixel filter (what
    :func:`frame_analysis.downscale_linear` averages with)."""
    return {"resolution_x": low_width, "resolution_y": low_height, "resolution_percentage": 100,
            "pixel_filter_type": "BOX"}


@dataclass(frozen=True)
class Tier1:
    min_tile_psnr: float
    worst: fa.Region  # the worst tile, in the full frame's pixels
    flagged: bool


def compare(frame: np.ndarray, low: np.ndarray, factor: int) -> Tier1:
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
