"""A .blend that tries to run Python four ways, and to make Blender write files four more, must get nowhere
in the render runner.

The positive controls come first: they prove the generated file really is hostile on this bpy (each vector
fires when its door is open), so that the final test's "no canary" means blocked, not broken.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from framehive.worker_agent.blender import BlenderLauncher, RenderProcess
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TEST_TIMEOUT = 60.0
PYTHON_CANARIES = {"textblock", "handler", "driver", "freestyle"}
# Written by Blender itself at render time, scripts or not; see tests/scenes/hostile.py.
FILE_CANARIES = {"fileoutput", "nested_fileoutput", "multiview", "pointcache"}
ALL_CANARIES = PYTHON_CANARIES | FILE_CANARIES


# Runs in a fresh bpy process: open the file with or without scripts, optionally force Freestyle off the way
# the runner does (but nothing else), render one frame, and report the canary directory after the open and
# after the render.
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
    """The hostile scene and its canary directory (empty: generating the file runs none of the vectors).

    Render outputs must go to a sibling of the canary directory (the ``output`` fixture) for the multiview
    vector to reach it.
    """
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
        if canary.is_dir():
            shutil.rmtree(canary)
        else:
            canary.unlink()
    return directory


@pytest.fixture
def output(hostile, request) -> Path:
    """An empty render output directory next to the canary directory."""
    directory = hostile[1].parent / f"out-{request.node.name}"
    directory.mkdir()
    return directory


def fired(names: list[str]) -> set[str]:
    """The canaries among file names; Blender adds extensions and frame numbers, so match by prefix."""
    found = set()
    for name in names:
        matches = [canary for canary in ALL_CANARIES if name.startswith(canary)]
        assert len(matches) == 1, f"unexpected file {name!r} in the canary directory"
        found.add(matches[0])
    return found


def control(blend: Path, canaries: Path, output: Path, use_scripts: bool, force_freestyle_off: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CONTROL, str(blend), str(canaries), str(output),
         "1" if use_scripts else "0", "1" if force_freestyle_off else "0"],
        capture_output=True, timeout=TEST_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    line = next(line for line in done.stdout.decode().splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_control_with_scripts_enabled_every_vector_fires(hostile, canaries, output):
    result = control(hostile[0], canaries, output / "f.png", use_scripts=True, force_freestyle_off=False)
    # Measured on bpy 5.0.1: the text block runs during the open, and the driver is evaluated then too.
    assert {"textblock", "driver"} <= fired(result["after_open"])
    assert fired(result["after_render"]) == ALL_CANARIES


def test_control_with_scripts_disabled_freestyle_still_runs_python(hostile, canaries, output):
    result = control(hostile[0], canaries, output / "f.png", use_scripts=False, force_freestyle_off=False)
    assert result["after_open"] == []
    assert fired(result["after_render"]) == {"freestyle"} | FILE_CANARIES  # why the runner forces Freestyle off


def test_control_scripts_and_freestyle_off_blender_still_writes_files(hostile, canaries, output):
    result = control(hostile[0], canaries, output / "f.png", use_scripts=False, force_freestyle_off=True)
    assert result["after_open"] == []
    # No Python ran, yet Blender wrote outside the output path: why the runner mutes File Output nodes, turns
    # multiview off and keeps point caches in memory.
    assert fired(result["after_render"]) == FILE_CANARIES


def test_render_runner_runs_none_of_the_hostile_python_and_writes_only_its_frames(hostile, canaries, output):
    async def body():
        async with RenderProcess(BlenderLauncher.discover(None)) as process:
            opened = await process.open(hostile[0], device="CPU")
            for frame in (1, 2):
                await process.render(frame, output / f"{frame:04d}.png")
            return opened

    opened = asyncio.run(asyncio.wait_for(body(), TEST_TIMEOUT))
    assert opened["autoexec_blocked"] is True
    assert sorted(canaries.iterdir()) == []
    assert sorted(path.name for path in output.iterdir()) == ["0001.png", "0002.png"]
    assert opened["muted_outputs"] == ["Scene/Compositing/File Output", "Scene/Compositing/Group/File Output"]
    assert opened["disabled"] == ["Scene: multiview", "Flag/Cloth: disk cache pointcache"]
    for frame in (1, 2):
        with Image.open(output / f"{frame:04d}.png") as image:
            assert image.size == (64, 36)
