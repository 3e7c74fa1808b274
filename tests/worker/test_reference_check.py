"""The worker checks its own copy of a scene before Blender opens it: it never trusts the coordinator.

SceneCache.ensure is handed the hostile trees of tests/scenes/outside_references.py (real .blend files written by
bpy) exactly as a coordinator whose check was bypassed would send them: every file already in the blob cache, as
if downloaded. Each is refused with a SceneUnsafe (a SceneDownloadError: the task fails with its message) naming
the file, the datablock and the path, with the same words as the coordinator's 400 (one implementation,
framehive.protocol.blend_references); the legitimate tree is laid out and its main .blend returned.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from framehive.protocol import blend_references
from framehive.protocol.untrusted_parse import ParseLimits
from framehive.worker_agent.scene_cache import SceneCache, SceneDownloadError, SceneUnsafe

from tests.scenes import build_outside_references

HOSTILE = ["image_absolute", "image_parent", "image_cwd", "image_device", "library_absolute", "library_parent",
           "library_escapes", "fluid_absolute", "fluid_relative", "fluid_crafted", "every_kind"]
NOWHERE = "http://127.0.0.1:9"  # nothing is downloaded: every blob is in the cache already
OPEN_SCENE = "import bpy, sys; bpy.ops.wm.open_mainfile(filepath=sys.argv[1], load_ui=False); print('opened')"


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return build_outside_references(tmp_path_factory.mktemp("outside"))


def order_scene(cache: Path, case: dict[str, Any]) -> dict[str, Any]:
    """An order's ``scene`` for the case's tree, each file put in the agent's blob cache beforehand."""
    tree, entries = Path(case["tree"]), []
    (cache / "blobs").mkdir(parents=True, exist_ok=True)
    for path in [case["scene_path"], *(p for p in case["files"] if p != case["scene_path"])]:
        data = (tree / path).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        shutil.copyfile(tree / path, cache / "blobs" / sha)
        entries.append({"path": path, "sha256": sha, "size": len(data), "url": f"/api/v1/blobs/{sha}"})
    return {**entries[0], "assets": entries[1:]}


@pytest.mark.parametrize("name", HOSTILE)
def test_the_worker_refuses_a_tree_that_reaches_outside_before_blender_opens_it(tmp_path, cases, name):  # type: ignore[no-untyped-def]
    case = cases[name]
    expected = case["expect"][0]
    scenes = SceneCache(tmp_path / "cache", requests.Session(), NOWHERE)

    with pytest.raises(SceneUnsafe) as refused:
        scenes.ensure(order_scene(tmp_path / "cache", case))

    assert isinstance(refused.value, SceneDownloadError)  # the task runner fails the task with its message
    assert refused.value.limit == "unsafe_scene"  # ... and says it is the scene's fault
    problem = next(p for p in refused.value.problems
                   if (p.code, p.file, p.kind, p.path) == (expected["code"], expected["file"], expected["kind"],
                                                           expected["path"]))
    assert expected["contains"] in problem.datablock
    assert str(refused.value).startswith(f"refusing the scene: {refused.value.problems[0].message}")


def test_the_worker_says_what_the_coordinator_says(tmp_path, cases):  # type: ignore[no-untyped-def]
    """Both ends word a refusal with the one Problem.message of framehive.protocol.blend_references."""
    scenes = SceneCache(tmp_path / "cache", requests.Session(), NOWHERE)
    with pytest.raises(SceneUnsafe) as refused:
        scenes.ensure(order_scene(tmp_path / "cache", cases["every_kind"]))
    assert len(refused.value.problems) == len(cases["every_kind"]["expect"])
    assert all(isinstance(p, blend_references.Problem) for p in refused.value.problems)
    assert "(13 more problems)" in str(refused.value)


def test_a_tree_that_stays_inside_is_laid_out_and_checked_once(tmp_path, cases, monkeypatch):  # type: ignore[no-untyped-def]
    scenes = SceneCache(tmp_path / "cache", requests.Session(), NOWHERE)
    scene = order_scene(tmp_path / "cache", cases["inside"])

    blend = scenes.ensure(scene)

    assert blend.name == "shot.blend" and (blend.parent / "lib" / "inner.blend").is_file()
    monkeypatch.setattr("framehive.worker_agent.scene_cache.scan_files", None)  # a second parse would crash
    assert scenes.ensure(scene) == blend


def test_a_scene_the_parser_cannot_read_within_its_limits_is_refused(tmp_path, cases):  # type: ignore[no-untyped-def]
    scenes = SceneCache(tmp_path / "cache", requests.Session(), NOWHERE,
                        parse_limits=ParseLimits(max_blocks=10))
    with pytest.raises(SceneUnsafe, match="shot.blend: .* more than 10 blocks"):
        scenes.ensure(order_scene(tmp_path / "cache", cases["inside"]))


def test_the_crafted_fluid_cache_crashes_blender_and_the_agent_never_lets_blender_open_it(tmp_path, cases):  # type: ignore[no-untyped-def]
    """The attack is real: Blender opening the crafted tree corrupts its memory and dies, of SIGSEGV or of
    SIGABRT ("free(): invalid pointer"), from one run to the next (bpy 5.0.1). The agent's check refuses the
    tree first, so the render process never starts on it."""
    case = cases["fluid_crafted"]
    opened = subprocess.run([sys.executable, "-c", OPEN_SCENE, str(Path(case["tree"]) / case["scene_path"])],
                            capture_output=True, text=True, timeout=120)
    assert -opened.returncode in (signal.SIGSEGV, signal.SIGABRT) and "opened" not in opened.stdout, opened

    scenes = SceneCache(tmp_path / "cache", requests.Session(), NOWHERE)
    with pytest.raises(SceneUnsafe, match="fluid domain"):
        scenes.ensure(order_scene(tmp_path / "cache", case))
