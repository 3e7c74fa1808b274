"""Limits on what one account submits, against a real coordinator whose limits are set in its environment.

- The frame limit applies however the frames are given: leaving ``frames`` out used to take the scene's whole
  range with no limit at all (a scene ending at frame 1 048 574 is a million-frame job).
- An account has at most so many jobs queued, running or paused at once (each holds rows, escrow and scheduler
  time); another account is not affected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from framehive.addon.client import ApiError, Client
from framehive.coordinator import config

from tests.farm import Farm, make_scene
from tests.live import mint_tokens

from .conftest import Api

FRAME_LIMIT = 10  # the sample scene has 12 frames
LIVE_LIMIT = 2


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Farm, dict[str, str]]]:
    monkeypatch.setenv("FRAMEHIVE_MAX_JOB_FRAMES", str(FRAME_LIMIT))
    monkeypatch.setenv("FRAMEHIVE_MAX_LIVE_JOBS", str(LIVE_LIMIT))
    farm = Farm(tmp_path / "farm")
    farm.start_coordinator()
    try:
        yield farm, mint_tokens(farm, alice=("user", "alice"), bob=("user", "bob"))
    finally:
        farm.stop()


def refusal(call) -> ApiError:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_the_frame_limit_holds_when_frames_are_left_out(site, sample_scene: Path) -> None:  # type: ignore[no-untyped-def]
    farm, tokens = site
    alice = Client(farm.url, tokens["alice"])
    for frames in (None, "1-12"):
        error = refusal(lambda frames=frames: alice.submit(sample_scene, frames=frames))
        assert (error.status, error.code) == (400, "too_many_frames"), error
        assert (error.details["frames"], error.details["limit"]) == (12, FRAME_LIMIT)
    assert alice.jobs() == [], "nothing was created"
    assert alice.submit(sample_scene, frames="1-10")["total"] == FRAME_LIMIT


def test_live_jobs_per_account_are_capped(site, sample_scene: Path) -> None:  # type: ignore[no-untyped-def]
    farm, tokens = site
    alice, bob = Client(farm.url, tokens["alice"]), Client(farm.url, tokens["bob"])
    first, _second = (alice.submit(sample_scene, frames="1") for _ in range(LIVE_LIMIT))
    alice.pause(first["id"])  # a paused job still holds its escrow and rows: it counts
    error = refusal(lambda: alice.submit(sample_scene, frames="1"))
    assert (error.status, error.code, error.details) == (409, "too_many_jobs", {"live": 2, "limit": LIVE_LIMIT})
    assert len(alice.jobs()) == LIVE_LIMIT, "nothing was created"
    assert bob.submit(sample_scene, frames="1")["owner"] == "bob", "another account has its own count"
    alice.cancel(first["id"])
    assert alice.submit(sample_scene, frames="1")["state"] == "queued", "a finished job frees its place"


def test_the_default_limit_refuses_a_scene_range_beyond_it(app, api: Api, tokens: dict[str, str],  # type: ignore[no-untyped-def]
                                                          tmp_path: Path) -> None:
    """With points enough to pay for it, a scene of 100 001 frames submitted without ``frames`` is refused at
    once, before a single row is written."""
    long = make_scene(tmp_path / "long.blend", frames=config.MAX_JOB_FRAMES + 1)
    sha = api.upload(long.read_bytes())
    Api(app, tokens["admin"]).post("/api/v1/admin/grants", json={"account": "alice", "amount": 10**9})
    response = api.post("/api/v1/jobs", json={"scene": sha})
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] == "too_many_frames"
    assert api.get("/api/v1/jobs").get_json()["jobs"] == []
