"""Run inside a fresh bpy process by the operator tests: the artist's side, headless, as a script would do it.

Installs and enables the built extension, opens the artist's .blend, and calls one operator per step given as
JSON; prints ``RESULT {...}`` per step: the operator's result or its error message, the scene's job after it,
and the paths it expects frames at.

Every step sets the preferences (``url``, ``token``) and, in memory only (the file on disk stays as it is), the
scene's output path (``output``, default ``//render/frame_``), ``frame_end`` and ``chunk`` if given, the panel's
other ``options`` (a dict of scene.framehive properties), and with
``peek`` an image naming that path, as a hostile .blend would. ``op`` is "render" (default:
``render_on_network`` with ``wait``, ``allow_outside``, ``allow_missing`` and ``approved_outside``, a list),
"confirm" (``confirm_files``, as the artist clicking Submit in the dialog that listed ``outside`` and ``missing``:
headless, the Render on Network it starts runs synchronously) or "claim" (``claim_frames`` on ``job_id``, which
becomes the scene's job, with ``frames``, ``reason``, ``wait``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import bpy

MODULE = "bl_ext.user_default.framehive"


def render(spec: dict[str, Any]) -> set[str]:
    bpy.context.scene.framehive.job_id = 0
    return bpy.ops.framehive.render_on_network(
        wait=spec.get("wait", False), allow_outside=spec.get("allow_outside", False),
        allow_missing=spec.get("allow_missing", False), approved_outside="\n".join(spec.get("approved_outside", [])))


def confirm(spec: dict[str, Any]) -> set[str]:
    bpy.context.scene.framehive.job_id = 0
    return bpy.ops.framehive.confirm_files(outside="\n".join(spec.get("outside", [])),
                                           missing="\n".join(spec.get("missing", [])))


def claim(spec: dict[str, Any]) -> set[str]:
    bpy.context.scene.framehive.job_id = spec["job_id"]
    return bpy.ops.framehive.claim_frames(job_id=spec["job_id"], frames=spec.get("frames", ""),
                                          reason=spec.get("reason", ""), wait=spec.get("wait", False))


OPERATIONS: dict[str, Callable[[dict[str, Any]], set[str]]] = {"render": render, "confirm": confirm,
                                                                "claim": claim}


def prepare(spec: dict[str, Any]) -> None:
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.coordinator_url, prefs.token = spec["url"], spec["token"]
    scene = bpy.context.scene
    scene.render.filepath = spec.get("output", "//render/frame_")
    if "frame_end" in spec:
        scene.frame_end = spec["frame_end"]
    if "chunk" in spec:
        scene.framehive.chunk = spec["chunk"]
    for name, value in spec.get("options", {}).items():  # the panel's other options (device, max_workers, ...)
        setattr(scene.framehive, name, value)
    if "peek" in spec:
        image = bpy.data.images.new("peek", 1, 1)
        image.source = "FILE"
        image.filepath = spec["peek"]
        image.use_fake_user = True  # saved with the file though nothing shows it


def step(spec: dict[str, Any]) -> dict[str, Any]:
    prepare(spec)
    from bl_ext.user_default.framehive import operators  # noqa: PLC0415  (installed under this name)

    scene = bpy.context.scene
    paths = operators.output_paths(scene, bpy.context.preferences.addons[MODULE].preferences)
    try:
        result, error = OPERATIONS[spec.get("op", "render")](spec), ""
    except RuntimeError as exc:  # an operator's ERROR report, as "Error: <message>\n"
        result, error = {"CANCELLED"}, str(exc).removeprefix("Error: ").strip()
    return {"result": sorted(result), "error": error, "job_id": scene.framehive.job_id,
            "paths": {str(k): v for k, v in paths.items()}}


def main(zip_path: str, blend: str, steps: str) -> None:
    bpy.context.preferences.system.use_online_access = True
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
    for spec in json.loads(steps):
        # On a line of its own: Blender prints long reports cut short and without their line break.
        print("\nRESULT " + json.dumps(step(spec)), flush=True)


if __name__ == "__main__":
    main(*sys.argv[sys.argv.index("--") + 1:])
