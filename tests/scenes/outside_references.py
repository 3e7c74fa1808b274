"""Generate scene trees whose .blend files reach outside their tree, each in one way, and one that stays inside.

Run under a Python that has ``bpy``::

    python tests/scenes/outside_references.py ROOT

It writes the owner's private files under ``ROOT/secret/`` (``private.png``, 8x8 pure green; ``lib.blend``, a
library holding the object ``Secret``; ``private.txt``) and one tree per case under ``ROOT/<case>/``, then
prints ``CASES {json}``: for each case its ``tree`` (folder), ``scene_path`` (the main .blend in it), ``files``
(every file of the tree, relative) and ``expect``: the problems a check must report, each ``{"code", "file",
"kind", "path"}`` (``datablock`` is checked by substring: ``"contains"``).

Every scene is textured.py's camera looking at an emission plane that fills the 64x36 frame, textured with the
tree's own ``textures/checker.png`` (orange and teal) unless the case says otherwise:

- ``image_absolute``: the plane's texture is ``ROOT/secret/private.png`` by its absolute path (issue 11's attack:
  the frames come out green when a worker renders it unchecked);
- ``image_parent``: the same texture as ``//../secret/private.png``, a ``//``-relative path that climbs out;
- ``image_cwd``: ``textures/checker.png`` without ``//``: relative to Blender's working folder, not the .blend;
- ``image_device``: ``//textures/nul.png``: inside the tree, but the NUL device on a Windows worker;
- ``library_absolute`` / ``library_parent``: the object ``Secret`` linked from ``ROOT/secret/lib.blend``, by
  its absolute path or as ``//../secret/lib.blend``;
- ``library_escapes``: ``//lib/inner.blend`` (inside the tree) whose own image is ``//../../secret/private.png``:
  fine from the top of the tree, but resolved against the library's folder it leaves the tree;
- ``fluid_absolute`` / ``fluid_relative``: a fluid domain (out of view) caching in ``ROOT/secret/fluid`` or in
  ``//cache``; ``fluid_crafted``: ``//cache`` with the cache's ``config/config_0001.uni`` shipped in the tree and
  crafted to claim a resolution of -5 (opening the scene then crashes Blender with SIGSEGV, measured on 5.0.1);
- ``every_kind``: one of each reference blender-asset-tracer lists, all absolute, and the ones it does not (IES
  textures in a material, geometry-nodes Import Text with a fixed path and Import OBJ with a computed one);
- ``inside``: everything a legitimate packed scene holds, all inside the tree: the checker, a library
  ``lib/inner.blend`` whose own texture is ``//../textures/checker.png``, a missing ``//textures/gone.png``, an
  image sequence, UDIM tiles, a disk point cache, a packed image whose original path was absolute, and the
  built-in font. Nothing to report.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import bpy

SCENE = "shot.blend"
GREEN = (0.0, 1.0, 0.0, 1.0)
FLUID_DOMAIN_LOCATION = (100.0, 0.0, 0.0)  # far outside the orthographic camera's view


def _textured():
    spec = importlib.util.spec_from_file_location("framehive_textured", Path(__file__).with_name("textured.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TEXTURED = _textured()


def _write_png(path: Path, colour: tuple[float, ...] = GREEN, size: int = 8) -> None:
    image = bpy.data.images.new(path.stem, size, size)
    image.pixels.foreach_set(colour * (size * size))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)


def _new_scene(tree: Path, texture: str) -> bpy.types.Scene:
    """Factory settings, the camera and the plane whose image is stored as ``texture`` (exactly that text)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0
    scene = bpy.context.scene
    checker = tree / "textures" / "checker.png"
    if not checker.exists():
        TEXTURED._write_checker(checker)
    TEXTURED._textured_plane(scene, checker)
    bpy.data.images[checker.name].filepath = texture
    TEXTURED._camera(scene)
    TEXTURED._load_make_scene()._configure_render(scene, TEXTURED.FRAMES, TEXTURED.WIDTH, TEXTURED.HEIGHT,
                                                  TEXTURED.SAMPLES)
    return scene


def _save(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path), relative_remap=False)
    return path


def _link_secret(scene: bpy.types.Scene, library: str, source: Path) -> None:
    with bpy.data.libraries.load(str(source), link=True) as (_src, dst):
        dst.objects = ["Secret"]
    scene.collection.objects.link(bpy.data.objects["Secret"])
    bpy.data.libraries[0].filepath = library


def _fluid_domain(scene: bpy.types.Scene, cache: str) -> None:
    domain = bpy.data.objects.new("Domain", bpy.data.meshes.new("Domain"))
    domain.location = FLUID_DOMAIN_LOCATION
    scene.collection.objects.link(domain)
    modifier = domain.modifiers.new("Fluid", "FLUID")
    modifier.fluid_type = "DOMAIN"
    modifier.domain_settings.cache_directory = cache


def _expect(code: str, file: str, kind: str, path: str, contains: str) -> dict[str, str]:
    return {"code": code, "file": file, "kind": kind, "path": path, "contains": contains}


# ---------------------------------------------------------------------------------------------- cases


def image_case(texture: Callable[[Path], str]) -> Callable[[Path, Path], list[dict[str, str]]]:
    def build(tree: Path, secret: Path) -> list[dict[str, str]]:
        stored = texture(secret)
        _new_scene(tree, stored)
        _save(tree / SCENE)
        return [_expect("outside_reference", SCENE, "image", stored, '"checker.png"')]
    return build


def library_case(stored: Callable[[Path], str]) -> Callable[[Path, Path], list[dict[str, str]]]:
    def build(tree: Path, secret: Path) -> list[dict[str, str]]:
        scene = _new_scene(tree, "//textures/checker.png")
        _link_secret(scene, stored(secret), secret / "lib.blend")
        _save(tree / SCENE)
        return [_expect("outside_reference", SCENE, "linked library", stored(secret), '"lib.blend"')]
    return build


def library_escapes(tree: Path, secret: Path) -> list[dict[str, str]]:
    inner = tree / "lib" / "inner.blend"
    _inner_library(inner, "//../../secret/private.png", secret / "private.png")
    scene = _new_scene(tree, "//textures/checker.png")
    _link_secret(scene, "//lib/inner.blend", inner)
    _save(tree / SCENE)
    return [_expect("outside_reference", "lib/inner.blend", "image", "//../../secret/private.png", '"private.png"')]


def _inner_library(path: Path, texture: str, source: Path) -> None:
    """A library holding ``Secret``, a small plane textured with ``source`` stored as ``texture``."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0
    mesh = bpy.data.meshes.new("Secret")
    mesh.from_pydata([(0, 0, 0), (0.1, 0, 0), (0, 0.1, 0)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new("Secret", mesh)
    bpy.context.scene.collection.objects.link(obj)
    material = bpy.data.materials.new("SecretMaterial")
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = bpy.data.images.load(str(source))
    node.image.filepath = texture
    mesh.materials.append(material)
    _save(path)


def fluid_case(cache: Callable[[Path], str], crafted: bool = False) -> Callable[[Path, Path], list[dict[str, str]]]:
    def build(tree: Path, secret: Path) -> list[dict[str, str]]:
        scene = _new_scene(tree, "//textures/checker.png")
        _fluid_domain(scene, cache(secret))
        out = _save(tree / SCENE)
        if crafted:
            _craft_fluid_config(out, tree / "cache" / "config" / "config_0001.uni")
        return [_expect("unsupported_cache", SCENE, "fluid domain", cache(secret), '"Domain"')]
    return build


def _craft_fluid_config(blend: Path, config: Path) -> None:
    """Open the scene (Mantaflow writes its config into //cache), then make the config claim a resolution of
    -5 (the recipe of tests/worker/test_render_limits.py)."""
    bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False)
    data = bytearray(gzip.decompress(config.read_bytes()))
    struct.pack_into("<3i", data, 4, -5, -5, -5)  # the domain's resolution, after a 4-byte header
    config.write_bytes(gzip.compress(bytes(data)))


def every_kind(tree: Path, secret: Path) -> list[dict[str, str]]:
    png = str(secret / "private.png")
    scene = _new_scene(tree, png)
    image = bpy.data.images.new("Tiles", 4, 4, tiled=True)
    image.source, image.filepath, image.use_fake_user = "TILED", str(secret / "tile.<UDIM>.png"), True
    image = bpy.data.images.new("Frames", 4, 4)
    image.source, image.filepath, image.use_fake_user = "SEQUENCE", str(secret / "frame_###.png"), True
    bpy.data.movieclips.load(png).use_fake_user = True
    bpy.data.sounds.load(str(secret / "sound.wav"), check_existing=False).use_fake_user = True
    volume = bpy.data.volumes.new("Smoke")
    volume.filepath, volume.use_fake_user = str(secret / "smoke.vdb"), True
    _link_secret(scene, str(secret / "lib.blend"), secret / "lib.blend")
    strips = scene.sequence_editor_create().strips
    strips.new_image("Still", png, 1, 1)
    strips.new_movie("Film", str(secret / "film.mp4"), 2, 1)
    holder = bpy.data.objects.new("Holder", bpy.data.meshes.new("Holder"))
    holder.location = FLUID_DOMAIN_LOCATION
    scene.collection.objects.link(holder)
    holder.modifiers.new("MeshCache", "MESH_CACHE").filepath = str(secret / "motion.mdd")
    cache = holder.modifiers.new("Cloth", "CLOTH").point_cache
    cache.use_disk_cache, cache.use_external, cache.filepath, cache.name = True, True, str(secret), "cloth"
    _ies_material(str(secret / "lamp.ies"))
    _import_nodes(str(secret / "private.txt"), str(secret / "mesh.obj"))
    _save(tree / SCENE)
    kinds = [("image", png, '"checker.png"'), ("image", str(secret / "tile.<UDIM>.png"), '"Tiles"'),
             ("image", str(secret / "frame_###.png"), '"Frames"'), ("movie clip", png, '"private.png"'),
             ("sound", str(secret / "sound.wav"), '"sound.wav"'), ("volume", str(secret / "smoke.vdb"), '"Smoke"'),
             ("linked library", str(secret / "lib.blend"), '"lib.blend"'),
             ("sequencer strip", png, 'strip "Still"'), ("sequencer strip", str(secret / "film.mp4"), 'strip "Film"'),
             ("mesh cache", str(secret / "motion.mdd"), '"Holder"'), ("point cache", str(secret), '"Holder"'),
             ("IES texture", str(secret / "lamp.ies"), 'material "Lamp"'),
             ("imported file", str(secret / "private.txt"), 'node "Import Text"'),
             ("imported file", "", 'node "Import OBJ"')]
    return [_expect("outside_reference", SCENE, kind, path, contains) for kind, path, contains in kinds]


def _ies_material(path: str) -> None:
    material = bpy.data.materials.new("Lamp")
    material.use_fake_user = True
    node = material.node_tree.nodes.new("ShaderNodeTexIES")
    node.mode, node.filepath = "EXTERNAL", path


def _import_nodes(text: str, mesh: str) -> None:
    group = bpy.data.node_groups.new("Importers", "GeometryNodeTree")
    group.use_fake_user = True
    group.nodes.new("GeometryNodeImportText").inputs["Path"].default_value = text
    computed = group.nodes.new("FunctionNodeInputString")
    computed.string = mesh
    group.links.new(computed.outputs[0], group.nodes.new("GeometryNodeImportOBJ").inputs["Path"])


def inside(tree: Path, secret: Path) -> list[dict[str, str]]:
    inner = tree / "lib" / "inner.blend"
    TEXTURED._write_checker(tree / "textures" / "checker.png")
    _inner_library(inner, "//../textures/checker.png", tree / "textures" / "checker.png")
    scene = _new_scene(tree, "//textures/checker.png")
    _link_secret(scene, "//lib/inner.blend", inner)
    for name, source, path in (("Gone", "FILE", "//textures/gone.png"), ("Frames", "SEQUENCE", "//seq/f_####.png"),
                               ("Tiles", "TILED", "//textures/t.<UDIM>.png")):
        image = bpy.data.images.new(name, 4, 4, tiled=source == "TILED")
        image.source, image.filepath, image.use_fake_user = source, path, True
    packed = bpy.data.images.load(str(secret / "private.png"))
    packed.pack()
    packed.use_fake_user = True
    holder = bpy.data.objects.new("Holder", bpy.data.meshes.new("Holder"))
    scene.collection.objects.link(holder)
    holder.modifiers.new("Cloth", "CLOTH").point_cache.use_disk_cache = True
    bpy.data.curves.new("Words", "FONT").use_fake_user = True  # the built-in font, "<builtin>"
    _save(tree / SCENE)
    return []


CASES: dict[str, Callable[[Path, Path], list[dict[str, str]]]] = {
    "image_absolute": image_case(lambda secret: str(secret / "private.png")),
    "image_parent": image_case(lambda _secret: "//../secret/private.png"),
    "image_cwd": image_case(lambda _secret: "textures/checker.png"),
    "image_device": image_case(lambda _secret: "//textures/nul.png"),
    "library_absolute": library_case(lambda secret: str(secret / "lib.blend")),
    "library_parent": library_case(lambda _secret: "//../secret/lib.blend"),
    "library_escapes": library_escapes,
    "fluid_absolute": fluid_case(lambda secret: str(secret / "fluid")),
    "fluid_relative": fluid_case(lambda _secret: "//cache"),
    "fluid_crafted": fluid_case(lambda _secret: "//cache", crafted=True),
    "every_kind": every_kind,
    "inside": inside,
}


def _secrets(secret: Path) -> None:
    _write_png(secret / "private.png")
    (secret / "private.txt").write_text("the owner's secret\n")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.data.objects.new("Secret", None)
    bpy.data.libraries.write(str(secret / "lib.blend"), {bpy.data.objects["Secret"]})


def build(root: Path, names: list[str]) -> dict[str, dict]:
    root = root.resolve()
    secret = root / "secret"
    _secrets(secret)
    cases = {}
    for name in names or list(CASES):
        tree = root / name
        expect = CASES[name](tree, secret)
        files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
        cases[name] = {"tree": str(tree), "scene_path": SCENE, "files": files, "expect": expect}
    return cases


if __name__ == "__main__":
    print("CASES " + json.dumps(build(Path(sys.argv[1]), sys.argv[2:])), flush=True)
    # A fluid domain makes bpy 5.0.1 abort while tearing Mantaflow down at exit, after everything is saved.
    os._exit(0)
