"""Generate a scene tree whose .blend uses an external image texture by a relative path.

Run under a Python that has ``bpy``::

    python tests/scenes/textured.py TREE_DIR

It writes ``TREE_DIR/textures/checker.png`` (an 8x8 orange and teal checker) and ``TREE_DIR/shots/shot.blend``,
a camera looking straight at a plane whose emission shader shows that image. The image is not packed: the
.blend refers to it as ``//../textures/checker.png``, the way the add-on's packer rewrites paths, so it renders
right only when the .blend is opened from inside the tree; without the file Blender renders magenta. Emission
needs no light and little sampling, and the render settings are the sample scene's (scripts/make_scene.py),
pinned for identical pixels across renders.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import bpy

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXTURE = Path("textures") / "checker.png"
BLEND = Path("shots") / "shot.blend"
RELATIVE_TEXTURE = "//../textures/checker.png"
CHECKER_SIZE = 8
COLORS = ((0.9, 0.45, 0.05, 1.0), (0.05, 0.55, 0.6, 1.0))  # neither is anywhere near the magenta of a missing file
WIDTH, HEIGHT, FRAMES, SAMPLES = 64, 36, 4, 2


def _load_make_scene():
    """Import scripts/make_scene.py by path (``scripts`` is not a package)."""
    spec = importlib.util.spec_from_file_location("framehive_make_scene", REPO_ROOT / "scripts" / "make_scene.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_checker(path: Path) -> None:
    image = bpy.data.images.new("checker-source", CHECKER_SIZE, CHECKER_SIZE)
    pixels = []
    for y in range(CHECKER_SIZE):
        for x in range(CHECKER_SIZE):
            pixels.extend(COLORS[(x + y) % 2])
    image.pixels.foreach_set(pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)


def _textured_plane(scene: bpy.types.Scene, texture: Path) -> None:
    bpy.ops.mesh.primitive_plane_add(size=2.0)
    plane = bpy.context.active_object
    plane.scale = (WIDTH / HEIGHT, 1.0, 1.0)
    material = bpy.data.materials.new("Checker")
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    image = nodes.new("ShaderNodeTexImage")
    image.image = bpy.data.images.load(str(texture))  # absolute now; made relative when the .blend is saved
    image.interpolation = "Closest"
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(image.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    plane.data.materials.append(material)


def _camera(scene: bpy.types.Scene) -> None:
    camera = bpy.data.cameras.new("Camera")
    camera.type = "ORTHO"
    camera.ortho_scale = 2.0 * WIDTH / HEIGHT
    obj = bpy.data.objects.new("Camera", camera)
    obj.location = (0.0, 0.0, 3.0)  # looking down -Z at the plane
    scene.collection.objects.link(obj)
    scene.camera = obj


def build(tree: Path) -> Path:
    tree = tree.resolve()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    _write_checker(tree / TEXTURE)
    _textured_plane(scene, tree / TEXTURE)
    _camera(scene)
    _load_make_scene()._configure_render(scene, FRAMES, WIDTH, HEIGHT, SAMPLES)
    out = tree / BLEND
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out), relative_remap=True)
    paths = [image.filepath for image in bpy.data.images]
    if paths != [RELATIVE_TEXTURE]:
        raise SystemExit(f"expected the texture at {RELATIVE_TEXTURE}, the .blend says {paths}")
    return out


if __name__ == "__main__":
    print(f"wrote {build(Path(sys.argv[1]))}")
