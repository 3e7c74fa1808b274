"""Region renders for verification (``render_region``), with real Blender (the bpy module).

The contract under test: a region render is exactly w x h pixels and bit-identical to the same slice of a full
render of that frame (the sample scene has dither 0 and no denoiser), for every rectangle, including odd
image sizes, single-pixel rows and columns and rectangles touching each edge.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from framehive.worker_agent.blender import BlenderLauncher, RenderError, RenderProcess
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TEST_TIMEOUT = 60.0  # upper bound for one asyncio.run() here


def run(coro):
    """Run one async test body with a hard deadline, so a hung Blender fails the test instead of the suite."""
    return asyncio.run(asyncio.wait_for(coro, TEST_TIMEOUT))


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def make_scene(out: Path, width: int, height: int) -> Path:
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_scene.py"), str(out), "--frames", "12",
                    "--width", str(width), "--height", str(height), "--samples", "8"],
                   check=True, capture_output=True, timeout=TEST_TIMEOUT)
    return out


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scenes")
    return {"even": make_scene(folder / "even.blend", 64, 36), "odd": make_scene(folder / "odd.blend", 67, 37)}


def rects_for(width: int, height: int) -> list[list[int]]:
    """Corners, middle, whole image, 1-pixel rows and columns at each edge, odd offsets, random ones."""
    w, h = width, height
    rects = [
        [0, 0, w, h],  # the whole image through the border path
        [0, 0, 8, 6], [w - 8, 0, 8, 6], [0, h - 6, 8, 6], [w - 8, h - 6, 8, 6],  # the four corners
        [w // 4, h // 4, w // 2, h // 2],  # the middle quarter
        [0, 0, w, 1], [0, h - 1, w, 1], [0, h // 2, w, 1],  # 1-pixel rows: top, bottom, middle
        [0, 0, 1, h], [w - 1, 0, 1, h], [w // 2, 0, 1, h],  # 1-pixel columns: left, right, middle
        [0, 0, 1, 1], [w - 1, h - 1, 1, 1], [w - 1, 0, 1, 1], [0, h - 1, 1, 1], [33, 17, 1, 1],  # single pixels
        [1, 1, w - 2, h - 2], [3, 5, 7, 9], [13, 7, 31, 19], [1, 0, w - 1, h], [0, 1, w, h - 1],  # odd offsets
    ]
    chance = random.Random(width * 1000 + height)
    for _ in range(12):
        x, y = chance.randrange(w), chance.randrange(h)
        rects.append([x, y, chance.randint(1, w - x), chance.randint(1, h - y)])
    return rects


@pytest.mark.parametrize(("name", "size"), [("even", (64, 36)), ("odd", (67, 37))])
def test_regions_equal_slices_of_the_full_frame(scenes, tmp_path, name, size):
    width, height = size
    rects = rects_for(width, height)

    async def body():
        async with RenderProcess(BlenderLauncher.discover(None)) as process:
            opened = await process.open(scenes[name], threads=2)
            assert opened["resolution"] == [width, height]
            await process.render(5, tmp_path / "full5.png")
            await process.render(9, tmp_path / "full9.png")
            events = []
            for index, rect in enumerate(rects):
                events.append(await process.render_region(5, rect, tmp_path / f"r{index}.png"))
            events.append(await process.render_region(9, [2, 3, 11, 5], tmp_path / "other-frame.png"))
            await process.render(5, tmp_path / "again5.png")  # after regions: border and crop are off again
            return events

    events = run(body())
    full = pixels(tmp_path / "full5.png")
    assert full.shape == (height, width, 3)
    for index, (rect, event) in enumerate(zip(rects, events, strict=False)):
        x, y, w, h = rect
        assert event["event"] == "rendered_region" and event["frame"] == 5 and event["rect"] == rect
        assert event["resolution"] == [width, height] and event["path"] == str(tmp_path / f"r{index}.png")
        crop = pixels(tmp_path / f"r{index}.png")
        assert crop.shape == (h, w, 3), rect
        assert np.array_equal(crop, full[y:y + h, x:x + w]), rect
    assert np.array_equal(pixels(tmp_path / "other-frame.png"), pixels(tmp_path / "full9.png")[3:8, 2:13])
    assert np.array_equal(pixels(tmp_path / "again5.png"), full)
    assert not any(p.name.startswith(".framehive") for p in tmp_path.iterdir())  # no partial files left


def test_overrides_apply_to_one_region_only(scenes, tmp_path):
    async def body():
        async with RenderProcess(BlenderLauncher.discover(None)) as process:
            await process.open(scenes["odd"], threads=2)
            await process.render(4, tmp_path / "full.png")
            half = {"resolution_percentage": 50, "pixel_filter_type": "BOX", "samples": 4}
            event = await process.render_region(4, [0, 0, 33, 18], tmp_path / "half.png", overrides=half)
            await process.render_region(4, [5, 3, 20, 11], tmp_path / "half-part.png", overrides=half)
            with pytest.raises(RenderError, match="outside the 33x18 image"):  # rect is in the reduced size
                await process.render_region(4, [0, 0, 34, 18], tmp_path / "x.png", overrides=half)
            await process.render_region(4, [10, 10, 20, 12], tmp_path / "ringer.png", overrides={"seed": 7})
            await process.render_region(4, [10, 10, 20, 12], tmp_path / "plain.png")
            await process.render(4, tmp_path / "after.png")
            return event

    event = run(body())
    assert event["resolution"] == [33, 18]  # 67 x 37 at 50%, rounded down like Blender does
    half = pixels(tmp_path / "half.png")
    assert half.shape == (18, 33, 3)
    assert np.array_equal(pixels(tmp_path / "half-part.png"), half[3:14, 5:25])
    full = pixels(tmp_path / "full.png")
    assert np.array_equal(pixels(tmp_path / "plain.png"), full[10:22, 10:30])
    assert not np.array_equal(pixels(tmp_path / "ringer.png"), full[10:22, 10:30])  # another seed: other noise
    assert np.array_equal(pixels(tmp_path / "after.png"), full)  # percentage, filter, samples, seed restored


def test_bad_regions_are_refused_and_the_process_stays_usable(scenes, tmp_path):
    async def body():
        async with RenderProcess(BlenderLauncher.discover(None)) as process:
            await process.open(scenes["even"])
            out = tmp_path / "x.png"
            cases = [
                ([60, 0, 5, 1], "reaches outside the 64x36 image"),
                ([0, 30, 1, 7], "reaches outside the 64x36 image"),
                ([64, 0, 1, 1], "reaches outside"),
                ([-1, 0, 4, 4], "starts outside the image"),
                ([0, 0, 0, 5], "is empty"),
                ([0, 0, 5, -2], "is empty"),
                ([0.5, 0, 4, 4], "4 integers"),
                ([0, 0, 4.0, 4], "4 integers"),
                ([0, 0, 4], "4 integers"),
                ([True, 0, 4, 4], "4 integers"),
                ("0,0,4,4", "4 integers"),
            ]
            for rect, match in cases:
                with pytest.raises(RenderError, match=match) as caught:
                    await process.render_region(1, rect, out)
                assert caught.value.command == "render_region"
            with pytest.raises(RenderError, match="unknown overrides: frame_start"):
                await process.render_region(1, [0, 0, 4, 4], out, overrides={"frame_start": 10})
            with pytest.raises(RenderError, match="resolution_x must be at least 4, got 3"):
                await process.render_region(1, [0, 0, 3, 3], out, overrides={"resolution_x": 3})
            with pytest.raises(RenderError, match="overrides: setting samples: expected an integer"):
                await process.render_region(1, [0, 0, 4, 4], out, overrides={"samples": "lots"})
            with pytest.raises(RenderError, match="pixel_filter_type"):  # Blender refuses the enum: restored
                await process.render_region(1, [0, 0, 4, 4], out, overrides={"seed": 9, "pixel_filter_type": "X"})
            with pytest.raises(RenderError, match="does not exist"):
                await process.render_region(1, [0, 0, 4, 4], tmp_path / "missing" / "x.png")
            assert process.alive and not out.exists()
            await process.render(1, tmp_path / "ok.png")
            await process.render_region(1, [1, 2, 3, 4], tmp_path / "ok-region.png")

    run(body())
    assert np.array_equal(pixels(tmp_path / "ok-region.png"), pixels(tmp_path / "ok.png")[2:6, 1:4])


def test_scenes_whose_frames_a_region_cannot_match_are_refused(tmp_path):
    """A scene's own render border, or a stamp burnt into the image, would make a region differ."""
    script = (
        "import sys, bpy\n"
        f"sys.path.insert(0, {str(REPO / 'scripts')!r})\n"
        "from make_scene import build_scene\n"
        "build_scene(sys.argv[1])\n"
        "bpy.context.scene.render.use_border = True\n"
        "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[1])\n"
        "bpy.context.scene.render.use_border = False\n"
        "bpy.context.scene.render.use_stamp = True\n"
        "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])\n"
    )
    bordered, stamped = tmp_path / "border.blend", tmp_path / "stamp.blend"
    subprocess.run([sys.executable, "-c", script, str(bordered), str(stamped)], check=True, capture_output=True,
                   timeout=TEST_TIMEOUT)

    async def body():
        async with RenderProcess(BlenderLauncher.discover(None)) as process:
            await process.open(bordered)
            with pytest.raises(RenderError, match="its own render border"):
                await process.render_region(1, [0, 0, 4, 4], tmp_path / "x.png")
            await process.open(stamped)
            with pytest.raises(RenderError, match="use_stamp"):
                await process.render_region(1, [0, 0, 4, 4], tmp_path / "x.png")

    run(body())


def test_region_timing(scenes, tmp_path, capsys):
    """Measure (not assert) a full frame against a 1/16-area region in one warm process."""
    width, height = 192, 108

    async def body():
        async with RenderProcess(BlenderLauncher.discover(None)) as process:
            await process.open(scenes["even"], threads=2,
                               settings={"resolution_x": width, "resolution_y": height, "samples": 16})
            await process.render_region(1, [0, 0, 8, 8], tmp_path / "warm-up.png")  # first-render set-up
            full, region = [], []
            for repeat in range(2):
                full.append((await process.render(6, tmp_path / f"full{repeat}.png"))["seconds"])
                rect = [width * 3 // 8, height * 3 // 8, width // 4, height // 4]
                region.append((await process.render_region(6, rect, tmp_path / f"r{repeat}.png"))["seconds"])
            return min(full), min(region)

    full, region = run(body())
    with capsys.disabled():
        print(f"\nwarm {width}x{height} 16 spp: full frame {full:.3f} s, 1/16 region {region:.3f} s "
              f"({region / full:.2f} of a frame)")
