"""Tier 0: checks on every uploaded frame, without rendering anything.

A frame must decode (with limits) at the job's resolution; then it is hashed (4x4 grid of tile pHashes)
and flagged when it is blank/uniform or a copy of another frame. A flag is not a rejection (a fade to black
or a still camera is honest): a flagged frame is always checked by a verifier, whatever the trust.
Copies are found by an exact index over the tile hashes across all jobs, plus a near-copy search (≤ 2 bits a
tile) within the job, where a swapped or duplicated frame would come from. The near-copy search is indexed
(copy_bands: a lookup per upload, not a scan of the job's frames, which made tier 0 quadratic in the job's
length and held SQLite's write lock while it ran; issue 16).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import event, select, union

from . import frame_analysis as fa
from .db import db
from .models import Frame


class FrameRejected(ValueError):
    """The upload is not a usable frame of this job (wrong format or size, does not decode)."""


@dataclass
class Tier0:
    tile_hashes: list[str]
    tile_key: str
    flags: list[str]


def inspect_frame(data: bytes, frame: Frame, max_pixels: int) -> Tier0:
    job = frame.job
    try:
        image = fa.decode(data, max_pixels)
    except fa.BadImage as exc:
        raise FrameRejected(str(exc)) from None
    if (image.shape[1], image.shape[0]) != (job.resolution_x, job.resolution_y):
        raise FrameRejected(f"frame is {image.shape[1]}x{image.shape[0]}, the job renders "
                            f"{job.resolution_x}x{job.resolution_y}")
    hashes = fa.tile_hashes(image)
    key = hashlib.sha256(",".join(hashes).encode()).hexdigest()
    flags = []
    if fa.is_uniform(image):
        flags.append("uniform")
    if _is_copy(frame, hashes, key):
        flags.append("copy")
    return Tier0(hashes, key, flags)


def _is_copy(frame: Frame, hashes: list[str], key: str) -> bool:
    exact = db.session.execute(select(Frame.id).where(Frame.tile_key == key, Frame.id != frame.id).limit(1)).first()
    if exact is not None:
        return True
    candidates = _near_copy_candidates(frame, hashes)
    return any(fa.tile_distance(hashes, other) <= fa.COPY_MAX_TILE_DISTANCE for other in candidates)


def _near_copy_candidates(frame: Frame, hashes: list[str]) -> list[list[str]]:
    """The tile hashes of the job's other frames that may be within the copy distance of ``hashes``: those sharing
    a band (copy_bands) of the anchor tile, through the band indexes, and those hashed before the band columns
    existed (no bands), as all frames were scanned before. Every near copy is among them; usually nothing else."""
    others = (Frame.job_id == frame.job_id) & (Frame.id != frame.id)
    columns = (Frame.copy_band_0, Frame.copy_band_1, Frame.copy_band_2)
    ids = [select(Frame.id).where(others, column == band) for column, band in zip(columns, copy_bands(hashes),
                                                                                   strict=True)]
    ids.append(select(Frame.id).where(others, Frame.copy_band_0.is_(None), Frame.tile_key.is_not(None)))
    found = db.session.execute(select(Frame.tile_hashes).where(Frame.id.in_(union(*ids)))).scalars()
    return [other for other in found if other]


#: The tile whose hash is banded: one of the four in the middle of the 4x4 grid, where the subject of a shot
#: usually is (a tile that is the same in every frame, like an empty sky, makes every frame a candidate).
ANCHOR_TILE = 5
#: Bands of the anchor's 64-bit hash, as (shift, bits). Two hashes at most COPY_MAX_TILE_DISTANCE bits apart
#: differ in at most that many bands, so with one band more than that they share one (the pigeonhole).
BANDS = ((0, 22), (22, 21), (43, 21))
assert len(BANDS) == fa.COPY_MAX_TILE_DISTANCE + 1 and sum(bits for _, bits in BANDS) == 64


def copy_bands(hashes: list[str]) -> tuple[int, int, int]:
    """The anchor tile's hash cut into the bands the near-copy index looks up (Frame.copy_band_0..2)."""
    value = int(hashes[min(ANCHOR_TILE, len(hashes) - 1)], 16)
    band_0, band_1, band_2 = ((value >> shift) & ((1 << bits) - 1) for shift, bits in BANDS)
    return band_0, band_1, band_2


@event.listens_for(Frame.tile_hashes, "set")
def _index_bands(frame: Frame, hashes: list[str] | None, _old: object, _initiator: object) -> None:
    """Whoever sets a frame's tile hashes (an upload, a caught renderer's frame cleared) sets its bands too."""
    frame.copy_band_0, frame.copy_band_1, frame.copy_band_2 = copy_bands(hashes) if hashes else (None, None, None)
