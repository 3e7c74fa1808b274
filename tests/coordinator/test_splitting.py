from __future__ import annotations

import pytest
from framehive.coordinator.splitting import default_chunk, split
from framehive.protocol import frameranges
from hypothesis import given
from hypothesis import strategies as st


def test_split_in_order_with_a_short_last_chunk():
    assert split([1, 2, 3, 4, 5, 6, 7], 3) == [[1, 2, 3], [4, 5, 6], [7]]
    assert split([10, 3, 3, 5], 2) == [[3, 5], [10]]
    with pytest.raises(ValueError):
        split([1], 0)


@given(st.sets(st.integers(0, 5000), min_size=1, max_size=300), st.integers(1, 50))
def test_every_frame_in_exactly_one_chunk(frames, chunk):  # type: ignore[no-untyped-def]
    groups = split(list(frames), chunk)
    flat = [f for g in groups for f in g]
    assert flat == sorted(frames)
    assert all(1 <= len(g) <= chunk for g in groups)


def test_default_chunk_spreads_small_jobs_over_all_workers():
    assert default_chunk(12, 2) == 3  # 4 tasks: 2 per worker
    assert default_chunk(12, 6) == 1
    assert default_chunk(1, 10) == 1
    assert default_chunk(100_000, 1) == 20  # capped


@given(st.sets(st.integers(0, 10_000), min_size=1, max_size=200))
def test_frame_range_round_trip(frames):  # type: ignore[no-untyped-def]
    assert frameranges.parse(frameranges.format_frames(sorted(frames))) == sorted(frames)


@pytest.mark.parametrize("spec", ["", " ", "a", "3-1", "1,,2", "-1", "1-", "1-2-3"])
def test_bad_specs_raise(spec):  # type: ignore[no-untyped-def]
    with pytest.raises(frameranges.FrameRangeError):
        frameranges.parse(spec)
