"""Generate a hostile .blend: the sample scene plus every Python and file-writing vector we know a .blend can carry.

Run under a Python that has ``bpy``::

    python tests/scenes/hostile.py OUT.blend CANARY_DIR

Each vector, if it ever runs, creates its own empty file in CANARY_DIR, so a test can tell exactly which one
got through:

- ``textblock``: a registered text block (``use_module=True``), run on load when scripts are allowed;
- ``handler``: a ``frame_change_pre`` handler that the same text block registers;
- ``driver``: a scripted driver whose expression calls ``__import__``;
- ``freestyle``: a Freestyle Python style module, which Blender runs at render time even when scripts are
  disabled (documented in the manual's security page).

The other vectors run no Python at all: they make Blender itself write files outside the render output, during
an ordinary ``render.render(write_still=True)`` with scripts disabled (all measured on bpy 5.0.1). Their
canaries are not empty and Blender adds extensions and frame numbers, so match them by prefix (no name here
is a prefix of another):

- ``fileoutput``: a compositor File Output node whose directory is CANARY_DIR, fed by the Render Layers image;
- ``nested_fileoutput``: the same inside a node group used by the compositor (5.0 allows File Output nodes in
  groups, and runs them);
- ``multiview``: stereo rendering with individual view files, whose left-view file suffix is a relative path.
  Blender inserts the suffix before the extension of the output path and normalises the ``..``, so the left
  view lands in CANARY_DIR *only when the render output directory is a sibling of CANARY_DIR* (the suffix
  holds 63 bytes at most, too few for an absolute path; a real attacker would aim at ``~``-relative places);
- ``pointcache``: a cloth simulation with an external disk cache in CANARY_DIR; frame changes write ``.bphys``
  files there. The path is stored ``//``-relative to the .blend (``//canaries`` when CANARY_DIR sits beside it,
  as in the tests), as a packed scene holds it: the coordinator refuses a scene whose paths leave its folder
  (framehive.protocol.blend_references), and this scene is about what a worker renders.

Generating the file runs none of them: text blocks are only stored, bpy's default is to block drivers that
need Python, and nothing is rendered or simulated here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import bpy

REPO_ROOT = Path(__file__).resolve().parents[2]
CANARY_NAMES = ("textblock", "handler", "driver", "freestyle",
                "fileoutput", "nested_fileoutput", "multiview", "pointcache")

TEXT_BLOCK_SOURCE = """\
from pathlib import Path

import bpy

CANARY_DIR = Path({canary_dir!r})
(CANARY_DIR / "textblock").touch()


def framehive_hostile_handler(*_args):
    (CANARY_DIR / "handler").touch()


bpy.app.handlers.frame_change_pre.append(framehive_hostile_handler)
"""

# A complete, valid style module: the canary line runs first, the rest draws silhouettes so that the render
# itself succeeds and the test measures the script running, not Freestyle failing.
STYLE_MODULE_SOURCE = """\
from pathlib import Path

from freestyle.chainingiterators import ChainSilhouetteIterator
from freestyle.predicates import NotUP1D, QuantitativeInvisibilityUP1D, TrueUP1D
from freestyle.shaders import ConstantThicknessShader
from freestyle.types import Operators

(Path({canary_dir!r}) / "freestyle").touch()

Operators.select(QuantitativeInvisibilityUP1D(0))
Operators.bidirectional_chain(ChainSilhouetteIterator(), NotUP1D(QuantitativeInvisibilityUP1D(0)))
Operators.create(TrueUP1D(), [ConstantThicknessShader(1.0)])
"""

DRIVER_EXPRESSION = "__import__('pathlib').Path({path!r}).touch() or 0"


def _load_make_scene():
    """Import scripts/make_scene.py by path (``scripts`` is not a package)."""
    spec = importlib.util.spec_from_file_location("framehive_make_scene", REPO_ROOT / "scripts" / "make_scene.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _add_text_block(canary_dir: Path) -> None:
    text = bpy.data.texts.new("framehive_hostile.py")
    text.from_string(TEXT_BLOCK_SOURCE.format(canary_dir=str(canary_dir)))
    text.use_module = True  # "Register": Blender runs it on load when auto-run is allowed


def _add_driver(canary_dir: Path) -> None:
    # On a custom property of the camera: the depsgraph evaluates it every frame, and its value (0) is
    # harmless for the picture whether or not it runs.
    camera = bpy.data.objects["Camera"]
    camera["framehive_probe"] = 0.0
    fcurve = camera.driver_add('["framehive_probe"]')
    fcurve.driver.type = "SCRIPTED"
    fcurve.driver.expression = DRIVER_EXPRESSION.format(path=str(canary_dir / "driver"))


def _add_freestyle(scene: bpy.types.Scene, canary_dir: Path) -> None:
    text = bpy.data.texts.new("framehive_style.py")
    text.from_string(STYLE_MODULE_SOURCE.format(canary_dir=str(canary_dir)))
    scene.render.use_freestyle = True
    for view_layer in scene.view_layers:
        view_layer.use_freestyle = True
        settings = view_layer.freestyle_settings
        settings.mode = "SCRIPT"
        module = settings.modules.new()
        module.script = text
        module.use = True


def _add_file_output(tree: bpy.types.NodeTree, source: bpy.types.NodeSocket, canary_dir: Path, name: str) -> None:
    node = tree.nodes.new("CompositorNodeOutputFile")
    node.directory = str(canary_dir)
    node.file_name = name
    node.format.views_format = "MULTIVIEW"  # all views in one EXR: keeps clear of the multiview vector's suffix
    node.file_output_items.new("RGBA", "Image")
    tree.links.new(source, node.inputs["Image"])


def _add_compositor(scene: bpy.types.Scene, canary_dir: Path) -> None:
    # 5.0: the compositor is an ordinary node group; its Group Output is the final image (RL -> output, so the
    # picture is unchanged), and File Output nodes are side outputs wherever they sit.
    tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
    scene.compositing_node_group = tree
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    layers = tree.nodes.new("CompositorNodeRLayers")
    tree.links.new(layers.outputs["Image"], tree.nodes.new("NodeGroupOutput").inputs["Image"])
    _add_file_output(tree, layers.outputs["Image"], canary_dir, "fileoutput")

    inner = bpy.data.node_groups.new("Side outputs", "CompositorNodeTree")
    inner.interface.new_socket("Image", in_out="INPUT", socket_type="NodeSocketColor")
    _add_file_output(inner, inner.nodes.new("NodeGroupInput").outputs["Image"], canary_dir, "nested_fileoutput")
    group = tree.nodes.new("CompositorNodeGroup")
    group.node_tree = inner
    tree.links.new(layers.outputs["Image"], group.inputs["Image"])


def _add_multiview(scene: bpy.types.Scene, canary_dir: Path) -> None:
    render = scene.render
    render.use_multiview = True
    render.views_format = "STEREO_3D"
    render.image_settings.views_format = "INDIVIDUAL"  # one file per view, each named with its suffix
    # "<out dir>/<name>" + suffix + ".png" -> "<out dir>/<name>/../../<canary dir name>/multiview.png"
    render.views["left"].file_suffix = f"/../../{canary_dir.name}/multiview"


def _add_point_cache(scene: bpy.types.Scene, canary_dir: Path) -> None:
    # A four-vertex cloth behind the camera: invisible in the picture, but simulated on every frame change.
    mesh = bpy.data.meshes.new("Flag")
    mesh.from_pydata([(0, 0, 0), (0.2, 0, 0), (0.2, 0, 0.2), (0, 0, 0.2)], [], [(0, 1, 2, 3)])
    flag = bpy.data.objects.new("Flag", mesh)
    flag.location = (0.0, -20.0, 4.0)
    scene.collection.objects.link(flag)
    cache = flag.modifiers.new("Cloth", "CLOTH").point_cache
    cache.use_disk_cache = True
    cache.use_external = True
    cache.filepath = bpy.path.relpath(str(canary_dir))  # relative to the .blend build_scene saved
    cache.name = "pointcache"


def build_hostile_scene(path: str | Path, canary_dir: str | Path) -> Path:
    """Build the sample scene with all hostile vectors pointing at ``canary_dir`` and save it to ``path``."""
    canary = Path(canary_dir).resolve()
    make_scene = _load_make_scene()
    out = make_scene.build_scene(path)
    scene = bpy.context.scene
    _add_text_block(canary)
    _add_driver(canary)
    _add_freestyle(scene, canary)
    _add_compositor(scene, canary)
    _add_multiview(scene, canary)
    _add_point_cache(scene, canary)
    out.unlink()  # build_scene saved it already; avoid the ``.blend1`` backup on the second save
    bpy.ops.wm.save_as_mainfile(filepath=str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``hostile.py OUT.blend CANARY_DIR``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(f"wrote {build_hostile_scene(args[0], args[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
