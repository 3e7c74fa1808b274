"""Tier 0's near-copy search through the band index: the same frames are copies as with the scan of every
frame of the job it replaces (≤ COPY_MAX_TILE_DISTANCE bits in every tile), and an upload reads only its
candidates, not the whole job."""

from __future__ import annotations

import hashlib
import random

import pytest
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import tier0
from framehive.coordinator.db import db
from framehive.coordinator.models import Frame
from sqlalchemy import select, update

FRAMES = 12  # the sample scene's range


def _random_hashes(rng: random.Random) -> list[str]:
    return [f"{rng.getrandbits(64):016x}" for _ in range(16)]


def _flip(hashes: list[str], bits_by_tile: dict[int, list[int]]) -> list[str]:
    return [f"{int(h, 16) ^ sum(1 << b for b in bits_by_tile.get(i, [])):016x}" for i, h in enumerate(hashes)]


@pytest.fixture
def frames(app, api, scene_sha):  # type: ignore[no-untyped-def]
    """A job of FRAMES frames, every one hashed (random tile hashes, as distinct frames have), in an app context."""
    app.config.update(FRAMEHIVE_FRAME_PRICE=0, FRAMEHIVE_CHECK_PRICE=0)  # the starting grant pays for fewer
    response = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": f"1-{FRAMES}", "chunk": 10})
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    rng = random.Random(16)
    with app.app_context():
        rows = db.session.execute(select(Frame).filter_by(job_id=job["id"]).order_by(Frame.number)).scalars().all()
        for frame in rows:  # as an upload sets them (tier0.inspect_frame, then the frame endpoint)
            frame.tile_hashes = _random_hashes(rng)
            frame.tile_key = hashlib.sha256(",".join(frame.tile_hashes).encode()).hexdigest()
        db.session.commit()
        yield rows
        db.session.remove()


def _is_copy(frame: Frame, hashes: list[str]) -> bool:
    return tier0._is_copy(frame, hashes, f"key of {hashes}")  # a key no frame has: only near copies count


def test_a_near_copy_is_found_whichever_bands_of_the_anchor_differ(frames) -> None:  # type: ignore[no-untyped-def]
    original, upload = frames[5], frames[-1]
    anchor = tier0.ANCHOR_TILE
    for shifts in ((0, 22), (22, 43), (0, 43)):  # two of the three bands of the anchor tile differ
        near = _flip(original.tile_hashes, {anchor: list(shifts), 0: [1, 2], 15: [63]})
        assert fa.tile_distance(near, original.tile_hashes) == fa.COPY_MAX_TILE_DISTANCE
        assert _is_copy(upload, near)
    assert not _is_copy(upload, _flip(original.tile_hashes, {anchor: [0], 3: [1, 2, 3]})), "3 bits off in a tile"
    assert not _is_copy(upload, _flip(original.tile_hashes, {anchor: [0, 22, 43]})), "3 bits off in the anchor"
    assert not _is_copy(original, original.tile_hashes), "a frame is no copy of itself"


def test_an_upload_reads_its_candidates_not_the_whole_job(frames) -> None:  # type: ignore[no-untyped-def]
    upload = frames[-1]
    assert tier0._near_copy_candidates(upload, _random_hashes(random.Random(7))) == []
    near = _flip(frames[4].tile_hashes, {tier0.ANCHOR_TILE: [5, 30]})
    assert tier0._near_copy_candidates(upload, near) == [frames[4].tile_hashes]


def test_frames_hashed_before_the_band_index_are_still_searched(frames) -> None:  # type: ignore[no-untyped-def]
    """A database upgraded in place: frames hashed before have tile hashes and no bands (schema.upgrade adds the
    columns empty)."""
    old, upload = frames[3], frames[-1]
    db.session.execute(update(Frame).where(Frame.id == old.id).values(copy_band_0=None, copy_band_1=None,
                                                                        copy_band_2=None))
    db.session.commit()
    assert _is_copy(upload, _flip(old.tile_hashes, {tier0.ANCHOR_TILE: [1]}))


def test_a_frame_whose_hashes_are_cleared_leaves_the_index(frames) -> None:  # type: ignore[no-untyped-def]
    cleared, upload = frames[7], frames[-1]
    hashes = cleared.tile_hashes
    cleared.tile_hashes = None  # a caught renderer's frame, to be rendered again (penalties.py)
    db.session.commit()
    assert (cleared.copy_band_0, cleared.copy_band_1, cleared.copy_band_2) == (None, None, None)
    assert not _is_copy(upload, hashes)
