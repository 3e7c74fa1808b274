"""Previews are made from untrusted blobs: decoded with limits, cut and shrunk, cached. A real app and storage."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from framehive.coordinator import create_app
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator.dashboard.previews import SIZES, NoPreview, cache_dir, preview
from framehive.coordinator.db import db
from framehive.coordinator.storage_access import storage
from PIL import Image


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"FRAMEHIVE_START_REAPER": False, "FRAMEHIVE_MAX_FRAME_PIXELS": 400 * 300},
                     data_dir=tmp_path / "coordinator")
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def store(data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    storage().put(sha, io.BytesIO(data), len(data))
    return sha


def gradient(width: int, height: int) -> bytes:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
    return fa.encode_png(np.broadcast_to(x, (height, width, 3)).copy())


def decoded(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)))


def test_a_thumbnail_fits_its_size_and_a_crop_is_the_exact_pixels(app: Flask):
    sha = store(gradient(400, 225))
    thumb = decoded(preview(sha, None, SIZES["thumb"]))
    assert thumb.shape == (90, 160, 3)
    region = fa.Region(10, 20, 30, 15)
    cut = decoded(preview(sha, region))
    assert np.array_equal(cut, fa.crop(fa.decode(gradient(400, 225), 10**6), region))
    assert len(list(cache_dir().iterdir())) == 2  # both kept: blobs never change


@pytest.mark.parametrize(("data", "why"), [
    (gradient(500, 300), "more than"),  # past the coordinator's frame pixel limit: never decompressed
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "IHDR"),
    (b"<svg onload=alert(1)>", "not a PNG"),
])
def test_blobs_that_are_not_acceptable_frames_get_no_preview(app: Flask, data: bytes, why: str):
    with pytest.raises(NoPreview, match=why):
        preview(store(data), None, SIZES["preview"])


def test_a_region_outside_the_frame_gets_no_preview(app: Flask):
    with pytest.raises(NoPreview, match="does not fit"):
        preview(store(gradient(64, 36)), fa.Region(60, 30, 10, 10))
