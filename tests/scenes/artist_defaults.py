"""Generate the sample scene with the render settings an artist gets from Blender: denoiser on, dither 1.

Run under a Python that has ``bpy``::

    python tests/scenes/artist_defaults.py OUT.blend [--frames N] [--width W] [--height H] [--samples S]

The sample scene (scripts/make_scene.py) pins dither 0 and no denoiser for bit-identical region renders; this one
turns both back to Blender's defaults (OIDN denoising of the final render, dither_intensity 1.0), which is what
most artists' scenes have and what verification must not punish.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import bpy

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_make_scene():
    """Import scripts/make_scene.py by path (``scripts`` is not a package)."""
    spec = importlib.util.spec_from_file_location("framehive_make_scene", REPO_ROOT / "scripts" / "make_scene.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    make_scene = _load_make_scene()
    args = make_scene._parse_args(argv)
    out = make_scene.build_scene(args.out, frames=args.frames, width=args.width, height=args.height,
                                 samples=args.samples)
    scene = bpy.context.scene
    scene.cycles.use_denoising = True
    scene.render.dither_intensity = 1.0
    bpy.ops.wm.save_mainfile(filepath=str(out))


if __name__ == "__main__":
    main(sys.argv[1:])
