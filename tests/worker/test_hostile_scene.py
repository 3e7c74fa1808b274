"""A .blend that tries to run Python four ways must run none of them in the render runner.

The positive controls come first: they prove the generated file really is hostile on this bpy (each vector
fires when its door is open), so that the final test's "no canary" means blocked, not broken.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from worker_agent.blender import BlenderLauncher, RenderProcess

REPO = Path(__file__).resolve().parents[2]
TEST_TIMEOUT = 60.0
ALL_CANARIES = {"textblock", "handler", "driver", "freestyle"}

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs the bpy module")

# Runs in a fresh bpy process: open the file with or without scripts, optionally force Freestyle off the way
# the runner does, render one frame, and report which canaries exist after the open and after the render.
CONTROL = """
import json, os, sys
import bpy

blend, canaries, output, use_scripts, force_freestyle_off = sys.argv[1:]
seen = lambda: sorted(os.listdir(canaries))
bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False, use_scripts=use_scripts == "1")
after_open = seen()
scene = bpy.context.scene
if force_freestyle_off == "1":
    scene.render.use_freestyle = False
    for layer in scene.view_layers:
        layer.use_freestyle = False
scene.frame_set(2)
scene.render.filepath = output
bpy.ops.render.render(write_still=True, scene=scene.name)
print("RESULT " + json.dumps({"after_open": after_open, "after_render": seen()}))
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, Path]:
    """The hostile scene and its canary directory (empty: generating the file runs none of the vectors)."""
    root = tmp_path_factory.mktemp("hostile")
    canaries = root / "canaries"
    canaries.mkdir()
    blend = root / "hostile.blend"
    subprocess.run([sys.executable, str(REPO / "tests" / "scenes" / "hostile.py"), str(blend), str(canaries)],
                   check=True, capture_output=True, timeout=TEST_TIMEOUT)
    assert not list(canaries.iterdir())
    return blend, canaries


@pytest.fixture
def canaries(hostile) -> Path:
    """The canary directory, emptied before each test."""
    directory = hostile[1]
    for canary in directory.iterdir():
        canary.unlink()
    return directory


def control(blend: Path, canaries: Path, output: Path, use_scripts: bool, force_freestyle_off: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CONTROL, str(blend), str(canaries), str(output),
         "1" if use_scripts else "0", "1" if force_freestyle_off else "0"],
        capture_output=True, timeout=TEST_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    line = next(line for line in done.stdout.decode().splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_control_with_scripts_enabled_every_vector_fires(hostile, canaries, tmp_path):
    result = control(hostile[0], canaries, tmp_path / "f.png", use_scripts=True, force_freestyle_off=False)
    # Measured on bpy 5.0.1: the text block runs during the open, and the driver is evaluated then too.
    assert {"textblock", "driver"} <= set(result["after_open"])
    assert set(result["after_render"]) == ALL_CANARIES


def test_control_with_scripts_disabled_freestyle_still_runs_python(hostile, canaries, tmp_path):
    result = control(hostile[0], canaries, tmp_path / "f.png", use_scripts=False, force_freestyle_off=False)
    assert result["after_open"] == []
    assert result["after_render"] == ["freestyle"]  # the reason the runner forces Freestyle off


def test_render_runner_runs_none_of_the_hostile_python(hostile, canaries, tmp_path):
    async def body():
        async with RenderProcess(BlenderLauncher.discover(None)) as process:
            opened = await process.open(hostile[0], device="CPU")
            for frame in (1, 2):
                await process.render(frame, tmp_path / f"{frame:04d}.png")
            return opened

    opened = asyncio.run(asyncio.wait_for(body(), TEST_TIMEOUT))
    assert opened["autoexec_blocked"] is True
    assert sorted(canaries.iterdir()) == []
    for frame in (1, 2):
        with Image.open(tmp_path / f"{frame:04d}.png") as image:
            assert image.size == (64, 36)
