"""Generate a scene that peeks outside its tree: its image texture is an absolute path to a file elsewhere on the
worker's disk, as in a .blend a hostile artist sends straight to the API (the packer would refuse it).

Run under a Python that has ``bpy``::

    python tests/scenes/peeking.py TREE_DIR CANARY_PNG [FLUID_CACHE_DIR]

It writes CANARY_PNG, an 8x8 image of pure green (the owner's private picture, in the tests), and
``TREE_DIR/peek.blend``: textured.py's camera looking at an emission plane that fills the frame, whose texture
is CANARY_PNG by its absolute path. A render that can read the canary is green all over; one that cannot is
Blender's magenta for a missing image.

With FLUID_CACHE_DIR the scene also writes outside its tree: a fluid domain (out of the camera's view) whose
cache directory is that absolute path. Blender writes ``config/config_0001.uni`` there while it *opens* the
file (measured, bpy 5.0.1), before the render runner can switch anything off; saving the scene here writes it
too, so a test empties the folder after generating. A FLUID_CACHE_DIR starting with ``//`` is kept relative to
the .blend: the cache is then part of the tree, and a crafted config there crashes Blender while it opens the
file (tests/worker/test_render_limits.py).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import bpy

BLEND = "peek.blend"
CANARY_COLOR = (0.0, 1.0, 0.0, 1.0)
CANARY_SIZE = 8
FLUID_DOMAIN_LOCATION = (100.0, 0.0, 0.0)  # far outside the orthographic camera's view


def _load_textured():
    """Import textured.py beside this file by path (it is a script run under bpy, like this one)."""
    spec = importlib.util.spec_from_file_location("framehive_textured", Path(__file__).with_name("textured.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_canary(path: Path) -> None:
    image = bpy.data.images.new("canary-source", CANARY_SIZE, CANARY_SIZE)
    image.pixels.foreach_set(CANARY_COLOR * (CANARY_SIZE * CANARY_SIZE))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)


def _add_fluid_domain(cache: str) -> None:
    bpy.ops.mesh.primitive_cube_add(size=2.0, location=FLUID_DOMAIN_LOCATION)
    modifier = bpy.context.active_object.modifiers.new("Fluid", "FLUID")
    modifier.fluid_type = "DOMAIN"
    modifier.domain_settings.cache_directory = cache if cache.startswith("//") else str(Path(cache).resolve())


def build(tree: Path, canary: Path, fluid_cache: str | None = None) -> Path:
    tree, canary = tree.resolve(), canary.resolve()
    textured = _load_textured()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    _write_canary(canary)
    textured._textured_plane(scene, canary)
    textured._camera(scene)
    if fluid_cache is not None:
        _add_fluid_domain(fluid_cache)
    textured._load_make_scene()._configure_render(scene, textured.FRAMES, textured.WIDTH, textured.HEIGHT,
                                                  textured.SAMPLES)
    out = tree / BLEND
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out), relative_remap=False)
    paths = [image.filepath for image in bpy.data.images]
    if paths != [str(canary)]:
        raise SystemExit(f"expected the texture at {canary}, the .blend says {paths}")
    if fluid_cache is not None and fluid_cache.startswith("//"):
        bpy.ops.wm.open_mainfile(filepath=str(out), load_ui=False)  # writes the cache's config into the tree
    return out


if __name__ == "__main__":
    fluid = sys.argv[3] if len(sys.argv) > 3 else None
    print(f"wrote {build(Path(sys.argv[1]), Path(sys.argv[2]), fluid)}", flush=True)
    # With a fluid domain, bpy 5.0.1 aborts while tearing Mantaflow down at exit ("can't clean grid cache"),
    # after the file is saved: leave without the teardown.
    os._exit(0)
