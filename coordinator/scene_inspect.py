"""Read what the coordinator needs from an uploaded .blend without running Blender or any of its Python.

blender-asset-tracer parses the file's DNA structures in pure Python (zstd- and gzip-compressed files too),
so an untrusted scene is inspected as data only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blender_asset_tracer import blendfile
from blender_asset_tracer.blendfile import exceptions as bat_exceptions

ENGINES_SUPPORTED = ("CYCLES", "BLENDER_EEVEE", "BLENDER_EEVEE_NEXT", "BLENDER_WORKBENCH")


class NotABlendFile(ValueError):
    """The file is not a .blend Blender can open, or it has no scene."""


def inspect_scene(path: Path) -> dict[str, Any]:
    """The active scene's name, frame range and output resolution (after the percentage)."""
    try:
        bf = blendfile.BlendFile(path)
    except Exception as exc:  # untrusted bytes: any parse failure means "not a scene we can render"
        raise NotABlendFile(f"not a .blend file: {exc}") from None
    try:
        scene = _active_scene(bf)
        if scene is None:
            raise NotABlendFile("the .blend file contains no scene")
        percent = scene.get((b"r", b"size"))
        width = int(scene.get((b"r", b"xsch")) * percent / 100)
        height = int(scene.get((b"r", b"ysch")) * percent / 100)
        return {
            "scene": scene.id_name[2:].decode("utf-8", "replace"),
            "frame_start": int(scene.get((b"r", b"sfra"))),
            "frame_end": int(scene.get((b"r", b"efra"))),
            "resolution": [width, height],
            "blender_version": _version(bf),
        }
    except NotABlendFile:
        raise
    except Exception as exc:
        raise NotABlendFile(f"unreadable .blend file: {exc}") from None
    finally:
        bf.close()


def _active_scene(bf: blendfile.BlendFile):  # type: ignore[no-untyped-def]
    """The scene Blender makes current on load (FileGlobal.curscene), else the first scene."""
    for glob in bf.find_blocks_from_code(b"GLOB"):
        try:
            scene = glob.get_pointer(b"curscene")
        except (KeyError, bat_exceptions.SegmentationFault):
            scene = None
        if scene is not None:
            return scene
    scenes = bf.find_blocks_from_code(b"SC")
    return scenes[0] if scenes else None


def _version(bf: blendfile.BlendFile) -> str:
    version = bf.header.version  # e.g. 500 for 5.0
    return f"{version // 100}.{version % 100}"
