"""Tier 1 on real Cycles renders (the sample scene at 320x180, 32 spp, CPU): a frame tampered away from the region a
check looks at passes that check; the low-resolution whole-frame render flags it, points at the tampered tile, and
a strict region check there fails it. The honest frame passes both, also when the artist's scene renders at 50 %
of a larger resolution. (What tier 1 catches over many placements and frames, and what it costs, is measured by
benchmarks/local_cheats.py.)"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases
from framehive.coordinator.db import db
from framehive.coordinator.dispatch import verify_message
from framehive.coordinator.models import Check, Job, VerificationKey
from framehive.coordinator.verification import decide, leasing, tier1
from framehive.coordinator.verification.checks import MARGIN
from framehive.worker_agent.blender import BlenderLauncher, RenderProcess
from sqlalchemy import select

from tests.coordinator.kit import TIER1_SIZE, answer, judge, noise_png, render, tier1_on
from tests.farm import make_scene

WIDTH, HEIGHT = 320, 180
KEY = fa.Region(16, 12, 80, 45)  # the region a check's key drew: the top left
TAMPER = fa.Region(220, 120, 80, 45)  # 1/16 of the frame, far from it: the bottom right


def tampered(image: np.ndarray, rect: fa.Region) -> np.ndarray:
    """``rect`` filled with its own mean colour (the benchmark's tamper)."""
    out = image.copy()
    patch = out[rect.y:rect.y + rect.height, rect.x:rect.x + rect.width]
    patch[...] = patch.reshape(-1, patch.shape[2]).mean(axis=0).round().astype(np.uint8)
    return out


async def region_render(process: RenderProcess, region: fa.Region, out: Path) -> np.ndarray:
    """What a verifier uploads for a region check (region plus margin), cut to the region."""
    rect = region.expanded(MARGIN, WIDTH, HEIGHT)
    await process.render_region(1, rect.as_list(), out)
    return fa.crop(fa.decode(out.read_bytes(), 10**8), region.relative_to(rect))


def strict_passes(frame: np.ndarray, region: fa.Region, rendered: np.ndarray) -> bool:
    return fa.decide(fa.strict_metrics(fa.crop(frame, region), rendered), "strict").passed


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scene(tmp_path_factory.mktemp("tier1") / "scene.blend", width=WIDTH, height=HEIGHT, samples=32,
                      frames=2)


# The artist's own resolution settings: the scene's, or twice its size at 50 % (the same 320x180 output).
RESOLUTIONS = {"100 %": {}, "50 %": {"resolution_x": 2 * WIDTH, "resolution_y": 2 * HEIGHT,
                                     "resolution_percentage": 50}}


def test_the_tier1_factor_divides_the_frame_and_leaves_a_pixel_a_tile() -> None:
    assert tier1.factor_for(1920, 1080) == 10 and tier1.low_size(1920, 1080, 10) == (192, 108)
    assert tier1.factor_for(320, 180) == 10
    assert tier1.factor_for(2048, 1080) == 4, "10 and 5 do not divide 2048x1080"
    assert tier1.factor_for(160, 90) == 5, "1/10 leaves tiles of one row"
    assert tier1.factor_for(2048, 858) is None, "no factor divides 858 and 2048 both"
    assert tier1.factor_for(64, 36) is None, "at 1/4 the tiles would be 2x1 pixels: one pixel's noise"
    assert tier1.overrides(32, 18) == {"resolution_x": 32, "resolution_y": 18, "resolution_percentage": 100,
                                      "pixel_filter_type": "BOX"}


@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
def test_tier1_catches_a_local_tamper_that_a_region_check_misses(scene: Path, tmp_path: Path,
                                                                  resolution: str) -> None:
    async def run() -> None:
        async with RenderProcess(BlenderLauncher.discover(None)) as process:
            await process.open(scene, device="CPU", threads=2, settings=RESOLUTIONS[resolution])
            await process.render(1, tmp_path / "full.png")
            honest = fa.decode((tmp_path / "full.png").read_bytes(), 10**8)[:, :, :3]
            faked = tampered(honest, TAMPER)
            assert np.abs(faked.astype(int) - honest).max() > 32, "the tamper changes what the artist sees"
            key_render = await region_render(process, KEY, tmp_path / "key.png")
            assert strict_passes(faked, KEY, key_render), "the region check sees only honest pixels"

            factor = tier1.factor_for(WIDTH, HEIGHT)
            assert factor is not None
            w, h = tier1.low_size(WIDTH, HEIGHT, factor)
            await process.render_region(1, [0, 0, w, h], tmp_path / "low.png", overrides=tier1.overrides(w, h))
            low = fa.decode((tmp_path / "low.png").read_bytes(), 10**8)[:, :, :3]
            clean = tier1.compare(honest, low, factor)
            assert not clean.flagged, f"honest frame flagged at {clean.min_tile_psnr:.1f} dB"
            caught = tier1.compare(faked, low, factor)
            assert caught.flagged and caught.min_tile_psnr < clean.min_tile_psnr - 3
            follow = tier1.follow_up_region(caught, WIDTH, HEIGHT)
            assert follow.fits(WIDTH, HEIGHT) and _overlap(follow, TAMPER) > 0
            rendered = await region_render(process, follow, tmp_path / "follow.png")
            assert not strict_passes(faked, follow, rendered), "the follow-up region check fails the fake"
            assert strict_passes(honest, follow, rendered), "and passes the honest frame"

    asyncio.run(run())


def _overlap(a: fa.Region, b: fa.Region) -> int:
    w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    return max(0, w) * max(0, h)


def answer_tier1(check: Check) -> None:
    """An honest verifier's tier-1 render of a noise frame: the frame at low resolution."""
    truth = fa.decode(noise_png(check.frame.number, *TIER1_SIZE), 10**8)
    judge(check, fa.encode_png(fa.downscale_linear(truth, 5)))  # 160x90: tier1.factor_for gives 1/5
    db.session.commit()
    decide.apply(check)
    db.session.commit()


def test_tier1_checks_are_scheduled_and_a_flag_orders_a_strict_check_of_the_worst_tile(v, app):  # type: ignore[no-untyped-def]
    """Noise frames (``kit``), real database: with FRAMEHIVE_TIER1_RATE every frame of a new renderer gets a tier-1
    check beside its region check; a frame tampered away from the region passes that and is flagged by tier 1,
    which blames nobody but queues a region check of the worst tile, and that one fails the frame."""
    tier1_on(app, db.session.get(Job, v["job_id"]))
    task = leases.claim_task(v["renderer"].id)
    region_key = db.session.execute(select(VerificationKey).filter_by(task_id=task.id, kind="region",
                                                                      state="sealed")).scalar_one()
    region_key.region = [0, 0, 40, 22]  # the top left; the tamper is at the bottom right
    db.session.commit()
    faked = {region_key.frame}

    def image(number: int) -> bytes:
        pixels = fa.decode(noise_png(number, *TIER1_SIZE), 10**8).copy()
        if number in faked:
            pixels[60:90, 110:160] = 255 - pixels[60:90, 110:160]
        return fa.encode_png(pixels)

    render(task, image=image)
    checks = db.session.execute(select(Check).filter_by(task_id=task.id)).scalars().all()
    assert sorted(c.kind for c in checks) == ["tier1"] * len(task.frame_numbers) + ["verify"]
    tier1_checks = [c for c in checks if c.kind == "tier1"]
    for check in tier1_checks:
        assert (check.region, check.render_rect) == ([0, 0, 160, 90], [0, 0, 32, 18])
    leased = leasing.claim_check(v["verifier"])
    order = verify_message(leased)
    assert order.rect == leased.render_rect
    assert order.overrides == (tier1.overrides(32, 18) if leased.kind == "tier1" else {})
    leased.state = "queued"  # answered below in a fixed order
    db.session.commit()
    answer(next(c for c in checks if c.kind == "verify"))
    assert next(c for c in checks if c.kind == "verify").verdict == "pass", "the region check sees honest pixels"
    for check in tier1_checks:
        answer_tier1(check)
    flagged = [c for c in tier1_checks if c.verdict == "fail"]
    assert [c.frame.number for c in flagged] == sorted(faked), "only the faked frame is flagged"
    assert v["renderer"].times_caught == 0 and task.state == "verifying", "a flag blames nobody"
    follow = db.session.execute(select(Check).filter_by(parent_id=flagged[0].id)).scalar_one()
    assert follow.kind == "verify" and _overlap(fa.Region.from_list(follow.region), fa.Region(110, 60, 50, 30)) > 0
    answer(follow)
    assert follow.verdict == "fail", "the strict region check of the worst tile fails the fake"
    arbitration = db.session.execute(select(Check).filter_by(parent_id=follow.id)).scalar_one()
    assert arbitration.kind == "arbitration" and task.state == "verifying"


def test_the_dashboard_shows_a_tier1_check_as_the_whole_frame_and_the_whole_low_render(v, app, tokens):  # type: ignore[no-untyped-def]
    """A tier-1 check's region is the whole frame and its upload the whole low render (its render_rect is the low
    size, not a part of the frame): each side is shown whole."""
    tier1_on(app, db.session.get(Job, v["job_id"]))
    task = leases.claim_task(v["renderer"].id)
    render(task)
    check = db.session.execute(select(Check).filter_by(task_id=task.id, kind="tier1")).scalars().first()
    answer_tier1(check)
    assert check.verdict == "pass"
    check_id = check.id

    def browse() -> dict[str, tuple[int, bytes]]:
        """An admin's browser: its own requests, outside this test's app context (whose ``g`` would keep the
        dashboard's viewer of the first request)."""
        client = app.test_client()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/dashboard/login").text)
        assert csrf is not None
        client.post("/dashboard/login", data={"token": tokens["admin"], "csrf_token": csrf.group(1)})
        return {side: ((r := client.get(f"/dashboard/img/checks/{check_id}/{side}.png")).status_code, r.data)
                for side in ("renderer", "verifier")}

    db.session.commit()  # no transaction of this test's open while the browser's requests write (SQLite)
    with ThreadPoolExecutor(1) as pool:
        images = pool.submit(browse).result()
    for side, size in (("renderer", TIER1_SIZE), ("verifier", (32, 18))):
        status, data = images[side]
        assert status == 200, (side, data[:300])
        assert fa.decode(data, 10**8).shape[:2] == size[::-1], side
