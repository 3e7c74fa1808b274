"""Tier 0: checks on every uploaded frame, without rendering anything.

A frame must decode (with limits) at the job's resolution; then it is hashed (4x4 grid of tile pHashes)
and flagged when it is blank/uniform or a copy of another frame. A flag is not a rejection (a fade to black
or a still camera is honest): a flagged frame is always checked by a verifier, whatever the trust.
Copies are found by an exact index over the tile hashes across all jobs, plus a near-copy scan (≤ 2 bits a
tile) within the job, where a swapped or duplicated frame would come from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select

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
    siblings = db.session.execute(select(Frame.tile_hashes).where(
        Frame.job_id == frame.job_id, Frame.id != frame.id, Frame.tile_hashes.is_not(None))).scalars()
    return any(other and fa.tile_distance(hashes, other) <= fa.COPY_MAX_TILE_DISTANCE for other in siblings)
