"""Generate a small project whose scene uses files all over the disk, and render packed copies of it.

Run under a Python that has ``bpy`` (never import this in the pytest process: bpy loads once per process)::

    python tests/scenes/asset_project.py build ROOT
    python tests/scenes/asset_project.py render BLEND OUT.png

``build`` writes this tree and prints ``PROJECT {json}`` (the paths below, by key)::

    ROOT/textures/checker.png                      "texture"   green/blue checker, used by an ABSOLUTE path
    ROOT/shared assets/tëxtures ü/stripes.png      "stripes"   red/white, used by the library, relative path
    ROOT/project/lib/sphere.blend                  "library"   holds the Sphere object, linked (relative path)
    ROOT/project/shots/shot.blend                  "blend"     the scene
    ROOT/project/shots/textures/gone.png           "missing"   referenced as //textures/gone.png, deleted
    ROOT/caches/cloth/cloth_00000N_00.bphys        "cache"     external point cache of a cloth (absolute path)

The scene (64x36, Cycles, 1 sample) looks straight down on a floor whose emission colour is the checker, with
the linked sphere in the middle showing the stripes. Every colour is a pure primary (or white) shown through
an emission shader and the Standard view transform, so a render shows exactly which textures were found: a
texture Blender cannot find renders magenta. The missing image sits on an unconnected node and the cloth is
disabled for rendering: both are dependencies, neither changes the picture.

``render`` opens BLEND with scripts disabled, renders frame 1 to OUT.png and prints ``RENDERED {json}``: the
absolute path every image and library of the file resolves to, and whether Blender found it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import bpy

WIDTH, HEIGHT = 64, 36
GREEN, BLUE, RED, WHITE = (0.0, 1.0, 0.0, 1.0), (0.0, 0.0, 1.0, 1.0), (1.0, 0.0, 0.0, 1.0), (1.0, 1.0, 1.0, 1.0)
CACHE_FRAMES = 3


def build(root: Path) -> dict[str, str]:
    root = root.resolve()
    paths = {
        "texture": root / "textures" / "checker.png",
        "stripes": root / "shared assets" / "tëxtures ü" / "stripes.png",
        "library": root / "project" / "lib" / "sphere.blend",
        "blend": root / "project" / "shots" / "shot.blend",
        "missing": root / "project" / "shots" / "textures" / "gone.png",
        "cache": root / "caches" / "cloth",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    bpy.context.preferences.filepaths.save_version = 0  # no .blend1 backups next to the files
    _write_png(paths["texture"], 8, lambda x, y: GREEN if (x + y) % 2 == 0 else BLUE)
    _write_png(paths["stripes"], 8, lambda x, y: RED if y % 2 == 0 else WHITE)
    _write_png(paths["missing"], 2, lambda x, y: WHITE)
    _build_library(paths["library"], paths["stripes"])
    _build_scene(paths)
    paths["missing"].unlink()
    paths["cache"].mkdir(exist_ok=True)
    for frame in range(1, CACHE_FRAMES + 1):  # not real cache data: the cloth never runs (see _add_cloth)
        (paths["cache"] / f"cloth_{frame:06d}_00.bphys").write_bytes(b"BPHYSICS" + bytes([frame]) * 64)
    return {key: str(path) for key, path in paths.items()}


def _write_png(path: Path, size: int, colour: Callable[[int, int], tuple[float, ...]]) -> None:
    image = bpy.data.images.new(path.stem, size, size, alpha=False)
    pixels: list[float] = []
    for y in range(size):
        for x in range(size):
            pixels.extend(colour(x, y))
    image.pixels = pixels
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)


def _emission_material(name: str, image: bpy.types.Image) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # Blender before 5.0 makes the node tree on use_nodes only (bpy 4.2)
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.interpolation = "Closest"
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material


def _load_image(path: Path, stored_as: str) -> bpy.types.Image:
    image = bpy.data.images.load(str(path))
    image.filepath = stored_as  # exactly this string is written to the file (saved with relative_remap=False)
    return image


def _build_library(library: Path, stripes: Path) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0
    relative = "//" + Path(os.path.relpath(stripes, library.parent)).as_posix()
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(0.0, 0.0, 0.5))
    sphere = bpy.context.active_object
    sphere.name = "Sphere"
    sphere.data.materials.append(_emission_material("Stripes", _load_image(stripes, relative)))
    bpy.ops.wm.save_as_mainfile(filepath=str(library), relative_remap=False, compress=True)


def _build_scene(paths: dict[str, Path]) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0
    scene = bpy.context.scene
    bpy.ops.wm.save_as_mainfile(filepath=str(paths["blend"]))  # a file path first, so links can be relative
    _add_camera(scene)
    bpy.ops.mesh.primitive_plane_add(size=4.0)
    floor = bpy.context.active_object
    floor.name = "Floor"
    material = _emission_material("Checker", _load_image(paths["texture"], str(paths["texture"])))
    unused = material.node_tree.nodes.new("ShaderNodeTexImage")  # a dependency that changes nothing
    unused.image = _load_image(paths["missing"], "//textures/gone.png")
    floor.data.materials.append(material)
    with bpy.data.libraries.load(str(paths["library"]), link=True, relative=True) as (_source, linked):
        linked.objects = ["Sphere"]
    scene.collection.objects.link(linked.objects[0])
    _add_cloth(scene, paths["cache"])
    _configure_render(scene)
    # Compressed as Blender 5 saves by default (4.2 does not): packing rewrites it gzipped (test_packing.py).
    bpy.ops.wm.save_as_mainfile(filepath=str(paths["blend"]), relative_remap=False, compress=True)


def _add_camera(scene: bpy.types.Scene) -> None:
    camera = bpy.data.cameras.new("Camera")
    camera.type = "ORTHO"
    camera.ortho_scale = 3.0
    obj = bpy.data.objects.new("Camera", camera)
    obj.location = (0.0, 0.0, 10.0)  # looking straight down -Z
    scene.collection.objects.link(obj)
    scene.camera = obj


def _add_cloth(scene: bpy.types.Scene, cache: Path) -> None:
    mesh = bpy.data.meshes.new("Flag")
    mesh.from_pydata([(0, 0, 0), (0.2, 0, 0), (0.2, 0, 0.2), (0, 0, 0.2)], [], [(0, 1, 2, 3)])
    flag = bpy.data.objects.new("Flag", mesh)
    flag.location = (0.0, 0.0, -5.0)
    flag.hide_render = True
    scene.collection.objects.link(flag)
    cloth = flag.modifiers.new("Cloth", "CLOTH")
    cloth.show_render = False
    cloth.point_cache.use_disk_cache = True
    cloth.point_cache.use_external = True
    cloth.point_cache.filepath = str(cache)
    cloth.point_cache.name = "cloth"


def _configure_render(scene: bpy.types.Scene) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False
    scene.cycles.seed = 0
    scene.render.resolution_x, scene.render.resolution_y = WIDTH, HEIGHT
    scene.render.resolution_percentage = 100
    scene.render.dither_intensity = 0.0
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.frame_start = scene.frame_end = 1


def render(blend: Path, out: Path) -> dict[str, object]:
    bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False, use_scripts=False)
    images = {}
    for image in bpy.data.images:
        if image.source != "FILE":
            continue
        path = Path(bpy.path.abspath(image.filepath, library=image.library))
        images[image.name] = {"path": os.path.normpath(path), "found": path.is_file()}
    libraries = {}
    for library in bpy.data.libraries:
        path = Path(bpy.path.abspath(library.filepath))
        libraries[library.name] = {"path": os.path.normpath(path), "found": path.is_file()}
    scene = bpy.context.scene
    scene.render.filepath = str(out)
    bpy.ops.render.render(write_still=True)
    return {"images": images, "libraries": libraries, "objects": sorted(obj.name for obj in scene.objects)}


def main(argv: list[str]) -> int:
    if argv[:1] == ["build"] and len(argv) == 2:
        print("PROJECT " + json.dumps(build(Path(argv[1]))), flush=True)
        return 0
    if argv[:1] == ["render"] and len(argv) == 3:
        print("RENDERED " + json.dumps(render(Path(argv[1]), Path(argv[2]))), flush=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
