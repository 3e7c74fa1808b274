"""End to end: a scene that is a folder tree (a .blend and the image texture it uses by a relative path) is
uploaded file by file, rendered and verified by two real workers with real Blender, and comes back exactly as
a local render of the same tree, texture and all."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from framehive.addon.client import Client

from tests.farm import REPO, Farm, wait_for
from tests.images import pixels, same_pixels

FRAMES = [1, 2, 3, 4]
RENDER_TIMEOUT = 120
# Blender's colour for an image it cannot find; a frame mostly this colour lost its texture.
MISSING_MAGENTA = (202, 117, 202)


def make_tree(tree: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "tests" / "scenes" / "textured.py"), str(tree)], check=True,
                   capture_output=True, timeout=120)


def render_locally(blend: Path, out: Path) -> None:
    out.mkdir(parents=True)
    subprocess.run([sys.executable, str(REPO / "tests" / "reference_render.py"), str(blend), str(out),
                    *map(str, FRAMES)], check=True, capture_output=True, timeout=RENDER_TIMEOUT)


def share_of(color: tuple[int, int, int], image: Path) -> float:
    rgb = pixels(image)[..., :3].astype(int)
    return float(np.mean(np.all(np.abs(rgb - color) <= 10, axis=-1)))


def test_a_scene_with_an_external_texture_renders_as_it_does_locally(farm: Farm, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    user = Client(farm.url, farm.token("user", "artist"))
    farm.start_worker("w1", farm.token("worker", "owner-1"))  # two owners: each verifies the other's frames
    farm.start_worker("w2", farm.token("worker", "owner-2"))
    admin = Client(farm.url, farm.token("admin", "root"))
    wait_for(lambda: sum(w["online"] for w in admin.workers()) >= 2, 90, "two workers online")

    assets = {"textures/checker.png": tree / "textures" / "checker.png"}
    job = user.submit(tree / "shots" / "shot.blend", frames="1-4", assets=assets, scene_path="shots/shot.blend")
    assert (job["scene_path"], [a["path"] for a in job["assets"]]) == ("shots/shot.blend", ["textures/checker.png"])
    final = user.wait(job["id"], poll=0.2, timeout=RENDER_TIMEOUT)

    assert final["state"] == "completed", final
    assert all(f["state"] == "verified" for f in final["frame_states"])
    checked = [c for c in final["checks"] if c["verdict"] == "pass"]
    assert checked and all(c["verifier"] != c["renderer"] for c in checked), "the other worker rebuilt the tree too"
    out = tmp_path / "out"
    assert len(user.download_job(job["id"], out)) == len(FRAMES)
    render_locally(tree / "shots" / "shot.blend", tmp_path / "local")
    lonely = tmp_path / "lonely" / "shots"
    lonely.mkdir(parents=True)
    shutil.copy(tree / "shots" / "shot.blend", lonely)  # the .blend without its texture
    render_locally(lonely / "shot.blend", tmp_path / "untextured")
    assert share_of(MISSING_MAGENTA, tmp_path / "untextured" / "ref_0001.png") > 0.9, "control: a missing texture"
    for frame in FRAMES:
        got = out / f"frame_{frame:04d}.png"
        assert same_pixels(got, tmp_path / "local" / f"ref_{frame:04d}.png"), f"frame {frame} differs locally"
        assert not same_pixels(got, tmp_path / "untextured" / f"ref_{frame:04d}.png")
        assert share_of(MISSING_MAGENTA, got) == 0.0, f"frame {frame} lost its texture"

    uploads: list[tuple[int, int]] = []
    again = user.submit(tree / "shots" / "shot.blend", frames="1", assets=assets, scene_path="shots/shot.blend",
                        progress=lambda sent, total: uploads.append((sent, total)))
    assert uploads == [], "a re-submission uploads nothing: every file is already a blob"
    assert again["assets"] == final["assets"]
    user.cancel(again["id"])
