"""Generate Framehive's small animated sample scene (a .blend file).

Run under a Python that has ``bpy`` (the venv with ``bpy==5.0.1``)::

    python scripts/make_scene.py OUT.blend [--frames 12] [--width 64 --height 36] [--samples 8]

or call :func:`build_scene` from inside a bpy process. The scene is made for tests and demos: it renders in a
fraction of a second per frame at 64x36 on a CPU, every frame looks different (a cube rotates and slides
across a checker floor), and the render settings are pinned so that two renders of the same frame give the
same pixels (fixed seed, no adaptive sampling, no denoiser, no dither).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import bpy
from bpy_extras import anim_utils
from mathutils import Vector

CAMERA_LOCATION = Vector((0.0, -7.0, 4.0))
CAMERA_TARGET = Vector((0.0, 0.0, 0.5))
CUBE_START_X = -2.5
CUBE_END_X = 2.5


def build_scene(path: str | Path, frames: int = 12, width: int = 64, height: int = 36, samples: int = 8) -> Path:
    """Build the sample scene from factory settings and save it to ``path``; returns the absolute path."""
    if frames < 1 or width < 1 or height < 1 or samples < 1:
        raise ValueError("frames, width, height and samples must all be at least 1")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    _add_world(scene)
    _add_camera(scene)
    _add_light(scene)
    _add_floor(scene)
    _add_cube(scene, frames)
    _add_sphere(scene)
    _configure_render(scene, frames, width, height, samples)
    out = Path(path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # overwriting would leave a ``.blend1`` backup next to it
    bpy.ops.wm.save_as_mainfile(filepath=str(out))
    return out


def _link(scene: bpy.types.Scene, obj: bpy.types.Object) -> bpy.types.Object:
    scene.collection.objects.link(obj)
    return obj


def _add_world(scene: bpy.types.Scene) -> None:
    # A dim blue sky so that nothing renders pure black and empty pixels are still recognisable.
    world = bpy.data.worlds.new("World")
    world.color = (0.05, 0.07, 0.12)
    scene.world = world


def _add_camera(scene: bpy.types.Scene) -> None:
    cam = _link(scene, bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera")))
    cam.location = CAMERA_LOCATION
    cam.rotation_euler = (CAMERA_TARGET - CAMERA_LOCATION).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam


def _add_light(scene: bpy.types.Scene) -> None:
    sun = bpy.data.lights.new("Sun", type="SUN")
    sun.energy = 3.0
    light = _link(scene, bpy.data.objects.new("Sun", sun))
    light.rotation_euler = (math.radians(40), math.radians(10), math.radians(30))


def _material(name: str, color: tuple[float, float, float]) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    return mat


def _checker_material() -> bpy.types.Material:
    mat = _material("Checker", (1.0, 1.0, 1.0))
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = 8.0
    checker.inputs["Color1"].default_value = (0.8, 0.8, 0.8, 1.0)
    checker.inputs["Color2"].default_value = (0.1, 0.1, 0.1, 1.0)
    links.new(checker.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
    return mat


def _mesh_object(scene: bpy.types.Scene, name: str, op, **kwargs) -> bpy.types.Object:
    """Create a primitive with the mesh operator ``op`` and link it to ``scene``."""
    op(**kwargs)
    obj = bpy.context.active_object
    obj.name = name
    if obj.name not in scene.collection.objects:
        _link(scene, obj)
    return obj


def _add_floor(scene: bpy.types.Scene) -> None:
    floor = _mesh_object(scene, "Floor", bpy.ops.mesh.primitive_plane_add, size=10.0)
    floor.data.materials.append(_checker_material())


def _add_cube(scene: bpy.types.Scene, frames: int) -> None:
    cube = _mesh_object(scene, "Cube", bpy.ops.mesh.primitive_cube_add, size=1.0, location=(CUBE_START_X, 0, 0.5))
    cube.data.materials.append(_material("Red", (0.8, 0.05, 0.05)))
    last = max(frames, 2)
    # Linear motion so that consecutive frames differ by the same amount, which keeps tests predictable.
    for frame, x, angle in ((1, CUBE_START_X, 0.0), (last, CUBE_END_X, math.radians(270))):
        cube.location.x = x
        cube.rotation_euler.z = angle
        cube.keyframe_insert("location", index=0, frame=frame)
        cube.keyframe_insert("rotation_euler", index=2, frame=frame)
    _make_linear(cube)


def _make_linear(obj: bpy.types.Object) -> None:
    """Give every keyframe of ``obj`` linear interpolation (5.0 keeps F-curves in an action slot's channelbag)."""
    channelbag = anim_utils.animdata_get_channelbag_for_assigned_slot(obj.animation_data)
    for fcurve in channelbag.fcurves:
        for key in fcurve.keyframe_points:
            key.interpolation = "LINEAR"


def _add_sphere(scene: bpy.types.Scene) -> None:
    sphere = _mesh_object(
        scene, "Sphere", bpy.ops.mesh.primitive_uv_sphere_add, radius=0.7, location=(1.2, 1.5, 0.7)
    )
    sphere.data.materials.append(_material("Blue", (0.1, 0.3, 0.9)))


def _configure_render(scene: bpy.types.Scene, frames: int, width: int, height: int, samples: int) -> None:
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = False  # a fixed sample count is part of what verification compares
    scene.cycles.seed = 0
    scene.cycles.use_animated_seed = False
    scene.cycles.use_denoising = False  # OIDN costs ~1 s per frame and is not crop-invariant
    render.dither_intensity = 0.0  # dither depends on pixel coordinates, which breaks crop comparisons
    render.resolution_x = width
    render.resolution_y = height
    render.resolution_percentage = 100
    render.image_settings.media_type = "IMAGE"
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGB"
    render.image_settings.color_depth = "8"
    scene.frame_start = 1
    scene.frame_end = frames
    scene.frame_set(1)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="path of the .blend file to write")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=36)
    parser.add_argument("--samples", type=int, default=8)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    out = build_scene(args.out, frames=args.frames, width=args.width, height=args.height, samples=args.samples)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
