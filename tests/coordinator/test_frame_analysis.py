"""framehive.coordinator.frame_analysis against real Cycles renders of the sample scene (64x36, 8 spp, CPU).

One module-scoped fixture builds the scene and renders every variant in a single bpy subprocess: honest
re-renders, other seeds, adjacent frames, cheats (1 spp, half resolution), render-border crops, a denoised crop
with and without a margin, a transparent render and a tier-1 low-resolution render.
"""

from __future__ import annotations

import io
import json
import random
import secrets
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import imagehash
import numpy as np
import pytest
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator.frame_analysis import BadImage, Region
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
W, H = 64, 36
MAX_PIXELS = 10**6

#: A crop over the cube in frame 6 (where every cheat of the scene shows).
CUBE = Region(20, 6, 24, 14)
#: Regions rendered with a render border: centre, the four corners' neighbourhoods, odd sizes.
BORDER_REGIONS = [Region(21, 7, 19, 11), Region(0, 0, 16, 9), Region(48, 27, 16, 9), Region(5, 13, 33, 17)]
#: A denoised crop: the inner region is compared, the render covers it plus a margin.
OIDN_INNER = Region(26, 12, 12, 10)
#: At 1920x1080, exact border fractions put these crops one pixel off (measured); the fixed fractions must not.
HD = (1920, 1080)
HD_CASES = [(Region(59, 454, 40, 40), 24, 14), (Region(1015, 477, 40, 40), 11, 7)]

RENDER_SCRIPT = r"""
import json, sys
import bpy

scene_path, out_dir, jobs = sys.argv[-3], sys.argv[-2], json.loads(sys.argv[-1])
for job in jobs:
    bpy.ops.wm.open_mainfile(filepath=scene_path, load_ui=False, use_scripts=False)
    scene = bpy.context.scene
    render, cycles = scene.render, scene.cycles
    render.threads_mode = "FIXED"
    render.threads = 2
    cycles.seed = job.get("seed", 0)
    cycles.samples = job.get("samples", cycles.samples)
    cycles.use_denoising = job.get("denoise", False)
    cycles.pixel_filter_type = job.get("pixel_filter", cycles.pixel_filter_type)
    render.resolution_percentage = job.get("percentage", 100)
    if "resolution" in job:
        render.resolution_x, render.resolution_y = job["resolution"]
    if job.get("transparent"):
        render.film_transparent = True
        render.image_settings.color_mode = "RGBA"
    if "border" in job:
        render.use_border = True
        render.use_crop_to_border = True
        (render.border_min_x, render.border_max_x, render.border_min_y, render.border_max_y) = job["border"]
    scene.frame_set(job["frame"])
    render.filepath = f"{out_dir}/{job['name']}.png"
    bpy.ops.render.render(write_still=True)
"""


def _jobs() -> list[dict]:
    jobs: list[dict] = [
        {"name": "f1", "frame": 1},
        {"name": "f6", "frame": 6},
        {"name": "f6b", "frame": 6},
        {"name": "f7", "frame": 7},
        {"name": "f1_s1", "frame": 1, "seed": 1},
        {"name": "f6_s1", "frame": 6, "seed": 1},
        {"name": "f7_s1", "frame": 7, "seed": 1},
        {"name": "f6_1spp", "frame": 6, "samples": 1},
        {"name": "f6_half", "frame": 6, "percentage": 50},
        {"name": "t6", "frame": 6, "transparent": True},
        # Denoised (OIDN): full frame, and the inner region rendered without and with a 16 px margin.
        {"name": "e6", "frame": 6, "denoise": True},
        {"name": "e6_m0", "frame": 6, "denoise": True, "border": OIDN_INNER.blender_border(W, H)},
        {"name": "e6_m16", "frame": 6, "denoise": True, "border": OIDN_INNER.expanded(16, W, H).blender_border(W, H)},
        # Tier 1: 64 spp frames and the verifier's 50% BOX-filter render (another seed, as another device).
        {"name": "n6", "frame": 6, "samples": 64},
        {"name": "n7", "frame": 7, "samples": 64},
        {"name": "n6_low", "frame": 6, "samples": 64, "seed": 1, "percentage": 50, "pixel_filter": "BOX"},
    ]
    for i, region in enumerate(BORDER_REGIONS):
        jobs.append({"name": f"border{i}", "frame": 6, "border": region.blender_border(W, H)})
    for i, (outer, dx, dy) in enumerate(HD_CASES):
        inner = Region(outer.x + dx, outer.y + dy, 9, 7)
        for name, region in ((f"hd{i}_outer", outer), (f"hd{i}_inner", inner)):
            jobs.append(
                {"name": name, "frame": 6, "samples": 1, "resolution": HD, "border": region.blender_border(*HD)}
            )
    return jobs


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """PNG bytes of every render in :func:`_jobs`, keyed by name (rendered once for the module)."""
    tmp = tmp_path_factory.mktemp("frame_analysis")
    scene = tmp / "sample.blend"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_scene.py"), str(scene), "--frames", "12",
         "--width", str(W), "--height", str(H), "--samples", "8"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    script = tmp / "render_variants.py"
    script.write_text(RENDER_SCRIPT)
    out = tmp / "out"
    out.mkdir()
    subprocess.run(
        [sys.executable, str(script), str(scene), str(out), json.dumps(_jobs())],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    return {job["name"]: (out / f"{job['name']}.png").read_bytes() for job in _jobs()}


@pytest.fixture(scope="module")
def img(renders: dict[str, bytes]) -> dict[str, np.ndarray]:
    """Decoded renders, plus derived cheats: the half-resolution render upscaled, a tampered frame 6."""
    images = {name: fa.decode(data, MAX_PIXELS) for name, data in renders.items()}
    half = images["f6_half"]
    assert half.shape == (H // 2, W // 2, 3)
    images["f6_upscaled"] = np.asarray(Image.fromarray(half).resize((W, H), Image.BICUBIC))
    tampered = images["f6"].copy()
    patch = tampered[12:17, 26:32]  # a 6x5 px rectangle on the cube, filled with its mean colour
    patch[...] = patch.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    images["f6_tampered"] = tampered
    return images


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _drawn(seed: int, count: int, fraction: float = 1 / 16) -> list[Region]:
    rng = random.Random(seed)
    return [fa.draw_region(rng, W, H, fraction) for _ in range(count)]


# --- decode -----------------------------------------------------------------------------------------------------


def test_decode_real_render(renders: dict[str, bytes], img: dict[str, np.ndarray]) -> None:
    frame = img["f6"]
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    assert img["t6"].shape == (H, W, 4)  # film transparency: alpha is kept
    assert (img["t6"][:, :, 3] < 255).any()
    for name in ("f6", "t6"):
        assert np.array_equal(fa.decode(fa.encode_png(img[name]), MAX_PIXELS), img[name])


def test_decode_refuses_non_png(renders: dict[str, bytes]) -> None:
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(renders["f6"])).save(jpeg, format="JPEG")
    for data in (b"", b"hello", b"GIF89a" + b"\0" * 40, jpeg.getvalue(), renders["f6"][1:]):
        with pytest.raises(BadImage, match="not a PNG"):
            fa.decode(data, MAX_PIXELS)


def test_decode_refuses_truncated_and_corrupt(renders: dict[str, bytes]) -> None:
    data = renders["f6"]
    corrupt = bytearray(data)
    corrupt[data.index(b"IDAT") + 20] ^= 0xFF
    for bad in (data[:20], data[:40], data[: len(data) // 2], data[:-12], bytes(corrupt)):
        with pytest.raises(BadImage):
            fa.decode(bad, MAX_PIXELS)


def test_decode_refuses_oversized_header() -> None:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + _png_chunk(b"IEND", b"")
    )
    with pytest.raises(BadImage, match="100000x100000"):
        fa.decode(bomb, MAX_PIXELS)
    # Even a caller allowing 10^12 pixels is protected by Pillow's own guard (global state left unchanged).
    with pytest.raises(BadImage):
        fa.decode(bomb, 10**12)
    assert Image.MAX_IMAGE_PIXELS is not None


def test_decode_refuses_more_pixels_than_allowed(renders: dict[str, bytes]) -> None:
    with pytest.raises(BadImage, match="64x36"):
        fa.decode(renders["f6"], W * H - 1)
    assert fa.decode(renders["f6"], W * H).shape == (H, W, 3)


# --- strict and cross comparisons -------------------------------------------------------------------------------


def test_same_seed_rerender_is_bit_identical(img: dict[str, np.ndarray]) -> None:
    full = Region(0, 0, W, H)
    for region in [full, CUBE, *_drawn(1, 20)]:
        metrics = fa.strict_metrics(fa.crop(img["f6b"], region), fa.crop(img["f6"], region))
        assert metrics["maxabs"] == 0 and metrics["frac_over_4"] == 0.0
        assert metrics["psnr"] == fa.PSNR_IDENTICAL
        verdict = fa.decide(metrics, "strict")
        assert verdict.passed, verdict.reason


def test_border_crop_render_matches_the_full_frame(img: dict[str, np.ndarray]) -> None:
    """Region's top-left origin and blender_border agree with what Blender renders (dither 0, no denoiser)."""
    for i, region in enumerate(BORDER_REGIONS):
        rendered = img[f"border{i}"]
        assert rendered.shape == (region.height, region.width, 3)
        verdict = fa.compare(rendered, fa.crop(img["f6"], region), "strict")
        assert verdict.passed and verdict.metrics["maxabs"] == 0, (region, verdict)


def test_border_fractions_hold_at_1920x1080(img: dict[str, np.ndarray]) -> None:
    for i, (outer, dx, dy) in enumerate(HD_CASES):
        big, small = img[f"hd{i}_outer"], img[f"hd{i}_inner"]
        assert big.shape == (outer.height, outer.width, 3) and small.shape == (7, 9, 3)
        inner = Region(outer.x + dx, outer.y + dy, 9, 7)
        assert np.array_equal(fa.crop(big, inner.relative_to(outer)), small)


def test_denoised_crop_needs_its_margin(img: dict[str, np.ndarray]) -> None:
    reference = fa.crop(img["e6"], OIDN_INNER)
    outer = OIDN_INNER.expanded(16, W, H)
    with_margin = fa.crop(img["e6_m16"], OIDN_INNER.relative_to(outer))
    verdict = fa.compare(with_margin, reference, "strict")
    assert verdict.passed, verdict.reason
    assert 0 < verdict.metrics["maxabs"] <= fa.STRICT_MAX_ABS  # OIDN is not bit-exact across crops
    assert not fa.compare(img["e6_m0"], reference, "strict").passed


def test_adjacent_frame_fails_strict_and_cross(img: dict[str, np.ndarray], tolerance: fa.CrossTolerance) -> None:
    for region in (CUBE, Region(0, 0, W, H)):
        worker, verifier = fa.crop(img["f7"], region), fa.crop(img["f6"], region)
        assert not fa.compare(worker, verifier, "strict").passed
        for tol in (None, tolerance):
            verdict = fa.compare(worker, fa.crop(img["f6_s1"], region), "cross", tol)
            assert not verdict.passed and "psnr" in verdict.reason, verdict


@pytest.mark.parametrize("cheat", ["f6_1spp", "f6_upscaled", "f6_tampered"])
def test_cheats_fail_strict(img: dict[str, np.ndarray], cheat: str) -> None:
    verdict = fa.compare(fa.crop(img[cheat], CUBE), fa.crop(img["f6"], CUBE), "strict")
    assert not verdict.passed, verdict
    assert verdict.metrics["frac_over_4"] > 0.01


def test_low_sample_render_fails_cross(img: dict[str, np.ndarray], tolerance: fa.CrossTolerance) -> None:
    verdict = fa.compare(fa.crop(img["f6_1spp"], CUBE), fa.crop(img["f6_s1"], CUBE), "cross", tolerance)
    assert not verdict.passed, verdict


@pytest.fixture(scope="module")
def tolerance(img: dict[str, np.ndarray]) -> fa.CrossTolerance:
    """The job's calibrated tolerance: honest seed-0/seed-1 pairs of frames 1 and 7 (frame 6 is what is tested).

    200 crops per pair, as the calibration script would draw them (40 per pair left the worst honest crop of
    another pair up to 2.75 dB below the calibrated worst, see CALIBRATION_MARGIN_DB).
    """
    regions = _drawn(7, 200)
    return fa.calibrate_cross(
        fa.cross_metrics(fa.crop(img[a], r), fa.crop(img[b], r))
        for a, b in (("f1", "f1_s1"), ("f7", "f7_s1"))
        for r in regions
    )


def test_other_seed_fails_strict_but_passes_cross(img: dict[str, np.ndarray], tolerance: fa.CrossTolerance) -> None:
    for region in [CUBE, *_drawn(11, 40)]:
        worker, verifier = fa.crop(img["f6"], region), fa.crop(img["f6_s1"], region)
        strict = fa.compare(worker, verifier, "strict")
        cross = fa.compare(worker, verifier, "cross", tolerance)
        assert cross.passed, (region, cross)
        if region == CUBE:
            assert not strict.passed


def test_calibration_refuses_identical_pairs(img: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="identical"):
        fa.calibrate_cross([fa.cross_metrics(img["f6"], img["f6b"])])
    with pytest.raises(ValueError):
        fa.calibrate_cross([])


def test_decide_validates_its_input(img: dict[str, np.ndarray]) -> None:
    metrics = fa.strict_metrics(img["f6"], img["f7"])
    verdict = fa.decide(metrics, "strict")
    assert not verdict.passed and "maxabs" in verdict.reason and "frac_over_4" in verdict.reason
    json.dumps(verdict.metrics)  # metrics are stored as JSON
    json.dumps(fa.cross_metrics(img["f6"], img["f6b"]))
    with pytest.raises(ValueError, match="mode"):
        fa.decide(metrics, "fuzzy")
    with pytest.raises(ValueError, match="lack"):
        fa.decide(metrics, "cross")
    with pytest.raises(ValueError):
        fa.strict_metrics(img["f6"], img["f6_half"])


def test_alpha_counts_in_comparisons(img: dict[str, np.ndarray]) -> None:
    opaque = img["t6"].copy()
    opaque[:, :, 3] = 255
    assert not fa.compare(opaque, img["t6"], "strict").passed
    assert fa.compare(img["f6"], np.dstack([img["f6"], np.full((H, W), 255, np.uint8)]), "strict").passed


def test_ssim_matches_scikit_image() -> None:
    """Reference values from scikit-image 0.26 ``structural_similarity(a, b, channel_axis=2, data_range=255)``."""
    i, j, c = np.meshgrid(np.arange(20), np.arange(30), np.arange(3), indexing="ij")
    a = ((i * 7 + j * 13 + c * 50) % 256).astype(np.uint8)
    b = ((i * 7 + j * 13 + c * 50 + (i * j) % 11 * 3) % 256).astype(np.uint8)
    assert fa.ssim(a, b) == pytest.approx(0.6958048396800095, abs=1e-12)
    assert fa.ssim(a[:5, :6], b[:5, :6]) == pytest.approx(0.9265674415575976, abs=1e-12)  # skimage win_size=5


def test_ssim_properties(img: dict[str, np.ndarray]) -> None:
    assert fa.ssim(img["f6"], img["f6"]) == pytest.approx(1.0)
    assert fa.ssim(img["f6"], img["f6_s1"]) == pytest.approx(fa.ssim(img["f6_s1"], img["f6"]))
    assert fa.ssim(img["f6"], img["f7"]) < fa.ssim(img["f6"], img["f6_s1"]) < 1.0


# --- tier 0 -----------------------------------------------------------------------------------------------------


HONEST = ["f1", "f6", "f7", "f6_s1", "f1_s1", "f7_s1", "e6", "n6", "n7", "t6", "f6_half", "n6_low"]


def test_is_uniform(img: dict[str, np.ndarray]) -> None:
    frame = img["f6"]
    mean_fill = np.broadcast_to(frame.reshape(-1, 3).mean(axis=0).round().astype(np.uint8), frame.shape)
    dithered = (mean_fill.astype(np.int16) + np.random.default_rng(0).integers(-1, 2, frame.shape)).astype(np.uint8)
    transparent = img["t6"].copy()
    transparent[:, :, 3] = 0
    blanks = [np.zeros_like(frame), np.full_like(frame, 255), np.full_like(frame, 77), mean_fill, dithered]
    for blank in [*blanks, transparent]:
        assert fa.is_uniform(blank)
    for name in HONEST:
        assert not fa.is_uniform(img[name]), (name, fa.luma_spread(img[name]))


def test_tile_hashes(img: dict[str, np.ndarray]) -> None:
    hashes = {name: fa.tile_hashes(img[name]) for name in ("f1", "f6", "f6b", "f7")}
    assert len(hashes["f6"]) == 16 and all(len(h) == 16 for h in hashes["f6"])
    int(hashes["f6"][0], 16)
    assert fa.tile_distance(hashes["f6"], hashes["f6b"]) <= fa.COPY_MAX_TILE_DISTANCE
    assert fa.tile_distance(hashes["f6"], hashes["f7"]) > fa.COPY_MAX_TILE_DISTANCE
    assert fa.tile_distance(hashes["f6"], hashes["f1"]) > fa.COPY_MAX_TILE_DISTANCE
    copy = fa.decode(fa.encode_png(img["f6"]), MAX_PIXELS)  # re-encoded: other bytes, same pixels
    assert fa.tile_distance(hashes["f6"], fa.tile_hashes(copy)) == 0
    with pytest.raises(ValueError):
        fa.tile_distance(hashes["f6"], hashes["f6"][:4])


def test_tile_hashes_are_imagehash_phash_of_each_tile(img: dict[str, np.ndarray]) -> None:
    """The batched hashing gives imagehash.phash's hash of every tile, bit for bit (hashes stored by the hashing per
    tile still compare): real renders, RGBA, noise, flat tiles, sizes whose tiles are uneven."""
    rng = np.random.default_rng(16)
    images = [img[name] for name in ("f1", "f6", "f7", "t6")] + [
        rng.integers(0, 256, (36, 64, 3), dtype=np.uint8), rng.integers(0, 256, (217, 383, 4), dtype=np.uint8),
        np.zeros((36, 64, 3), dtype=np.uint8), np.repeat(rng.integers(0, 256, (5, 9, 3), dtype=np.uint8), 8, 0)]
    for image in images:
        tiles = fa._tiles(fa._flatten(image), 4)
        expected = [str(imagehash.phash(Image.fromarray(np.ascontiguousarray(tile)))) for tile in tiles]
        assert fa.tile_hashes(image) == expected


def test_tile_hashes_see_transparency(img: dict[str, np.ndarray]) -> None:
    base = fa.tile_hashes(img["t6"])
    for alpha in (0, 255):
        forced = img["t6"].copy()
        forced[:, :, 3] = alpha
        assert fa.tile_distance(base, fa.tile_hashes(forced)) > fa.COPY_MAX_TILE_DISTANCE


# --- regions ----------------------------------------------------------------------------------------------------


def test_draw_region_covers_the_whole_frame() -> None:
    rng = random.Random(42)
    coverage = np.zeros((H, W))
    draws = 4000
    for _ in range(draws):
        region = fa.draw_region(rng, W, H)
        assert region.fits(W, H)
        assert (region.width, region.height) == (16, 9)  # 1/16 of the area, the frame's aspect ratio
        coverage[region.y : region.y + region.height, region.x : region.x + region.width] += 1
    # Every pixel, corners included, is covered at least as often as a central pixel (in expectation).
    floor = draws * 16 * 9 / ((W + 15) * (H + 8))
    assert coverage.min() > 0.75 * floor
    for corner in (coverage[0, 0], coverage[0, -1], coverage[-1, 0], coverage[-1, -1]):
        assert corner > 0.75 * floor


def test_draw_region_sizes() -> None:
    rng = secrets.SystemRandom()
    region = fa.draw_region(rng, 1920, 1080)
    assert (region.width, region.height) == (480, 270) and region.fits(1920, 1080)
    assert fa.draw_region(rng, 1920, 1080, 0.06).area == pytest.approx(0.06 * 1920 * 1080, rel=0.01)
    assert fa.draw_region(rng, 100, 50, 1e-6).as_list()[2:] == [8, 8]  # at least 8x8
    assert fa.draw_region(rng, 5, 3, 0.5) == Region(0, 0, 5, 3)  # at most the frame
    assert fa.draw_region(rng, W, H, 1.0) == Region(0, 0, W, H)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            fa.draw_region(rng, W, H, bad)


def test_region_round_trip_and_validation() -> None:
    region = Region(3, 4, 10, 6)
    assert Region.from_list(json.loads(json.dumps(region.as_list()))) == region
    for bad in ([1, 2, 3], [1, 2, 3, 4.0], [1, 2, True, 4], [-1, 0, 4, 4], [0, 0, 0, 4], "0,0,4,4", None):
        with pytest.raises(ValueError):
            Region.from_list(bad)


def test_region_margin_is_clamped() -> None:
    assert Region(20, 10, 16, 9).expanded(4, W, H) == Region(16, 6, 24, 17)
    assert Region(0, 0, 16, 9).expanded(16, W, H) == Region(0, 0, 32, 25)
    assert Region(48, 27, 16, 9).expanded(16, W, H) == Region(32, 11, 32, 25)
    assert Region(10, 5, 4, 4).expanded(100, W, H) == Region(0, 0, W, H)
    inner = Region(48, 27, 16, 9)
    outer = inner.expanded(16, W, H)
    assert inner.relative_to(outer) == Region(16, 16, 16, 9)
    with pytest.raises(ValueError):
        outer.relative_to(inner)
    with pytest.raises(ValueError):
        Region(60, 0, 8, 8).expanded(1, W, H)


def test_crop_checks_bounds(img: dict[str, np.ndarray]) -> None:
    assert fa.crop(img["f6"], CUBE).shape == (14, 24, 3)
    assert np.array_equal(fa.crop(img["f6"], Region(0, 0, 1, 1))[0, 0], img["f6"][0, 0])
    with pytest.raises(ValueError):
        fa.crop(img["f6"], Region(60, 30, 8, 8))


# --- tier 1 -----------------------------------------------------------------------------------------------------


def test_downscale_linear_matches_a_low_resolution_render(img: dict[str, np.ndarray]) -> None:
    low = img["n6_low"]  # verifier: 50% resolution, BOX pixel filter, another seed
    linear = fa.downscale_linear(img["n6"], 2)
    assert linear.shape == low.shape
    display_space = np.asarray(Image.fromarray(img["n6"]).reduce(2))  # box average of sRGB values
    honest = fa.cross_metrics(linear, low)["psnr"]
    assert honest > fa.cross_metrics(display_space, low)["psnr"] + 2  # linear light is closer (research §4c)
    assert fa.cross_metrics(fa.downscale_linear(img["n7"], 2), low)["psnr"] < honest - 8


def test_downscale_linear_of_8_bit_frames_is_bit_for_bit_the_formula() -> None:
    # 8-bit frames are sRGB-decoded by a lookup table: exactly the formula's float64 values, so a tier-1
    # judgement cannot change with it (a changed PSNR could move a frame across MIN_TILE_PSNR).
    levels = np.arange(256, dtype=np.uint8)
    assert np.array_equal(fa._SRGB_TO_LINEAR_8BIT[levels], fa._srgb_to_linear(levels.astype(np.float64) / 255.0))
    rng = np.random.default_rng(7)
    for shape, factor in (((216, 384, 3), 4), ((37, 65, 4), 2), ((36, 64), 3)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        # the same image as int64: the formula's path
        assert np.array_equal(fa.downscale_linear(image, factor), fa.downscale_linear(image.astype(np.int64), factor))


def test_downscale_linear_is_linear_light() -> None:
    checker = np.zeros((4, 4, 3), np.uint8)
    checker[::2, ::2] = checker[1::2, 1::2] = 255
    assert np.all(fa.downscale_linear(checker, 2) == 188)  # half the light, not half the code value (128)
    flat = np.full((37, 65, 4), (10, 200, 30, 255), np.uint8)
    out = fa.downscale_linear(flat, 2)  # Blender's 50% of 65x37 is 32x18: floor, fractional boxes
    assert out.shape == (18, 32, 4) and np.all(out == (10, 200, 30, 255))
    half_transparent = np.zeros((2, 2, 4), np.uint8)
    half_transparent[0] = (255, 0, 0, 255)
    assert fa.downscale_linear(half_transparent, 2).tolist() == [[[255, 0, 0, 128]]]
    with pytest.raises(ValueError):
        fa.downscale_linear(flat, 0)
