"""Generate a hostile .blend: the sample scene plus every Python vector we know a .blend can carry.

Run under a Python that has ``bpy``::

    python tests/scenes/hostile.py OUT.blend CANARY_DIR

Each vector, if it ever runs, creates its own empty file in CANARY_DIR, so a test can tell exactly which one
got through:

- ``textblock``: a registered text block (``use_module=True``), run on load when scripts are allowed;
- ``handler``: a ``frame_change_pre`` handler that the same text block registers;
- ``driver``: a scripted driver whose expression calls ``__import__``;
- ``freestyle``: a Freestyle Python style module, which Blender runs at render time even when scripts are
  disabled (documented in the manual's security page, and measured in research/blender-and-flask.md).

Generating the file runs none of them: text blocks are only stored, bpy's default is to block drivers that
need Python, and nothing is rendered here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import bpy

REPO_ROOT = Path(__file__).resolve().parents[2]
CANARY_NAMES = ("textblock", "handler", "driver", "freestyle")

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


def build_hostile_scene(path: str | Path, canary_dir: str | Path) -> Path:
    """Build the sample scene with all hostile vectors pointing at ``canary_dir`` and save it to ``path``."""
    canary = Path(canary_dir).resolve()
    make_scene = _load_make_scene()
    out = make_scene.build_scene(path)
    scene = bpy.context.scene
    _add_text_block(canary)
    _add_driver(canary)
    _add_freestyle(scene, canary)
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
