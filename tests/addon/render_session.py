"""Run inside a fresh bpy process by test_render_on_network.py: the artist's side, headless.

Installs and enables the built extension, opens the artist's .blend, and calls
``bpy.ops.framehive.render_on_network`` once per attempt given as JSON (coordinator URL, token, wait).
Prints ``RESULT {...}`` per attempt: the operator's result or its error message, the job it made, and the
paths it expects frames at.
"""

from __future__ import annotations

import json
import sys

import bpy

MODULE = "bl_ext.user_default.framehive"


def attempt(spec: dict) -> dict:  # type: ignore[type-arg]
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.coordinator_url, prefs.token = spec["url"], spec["token"]
    scene = bpy.context.scene
    scene.render.filepath = spec.get("output", "//render/frame_")  # in memory only: the file stays as it is
    scene.framehive.job_id = 0
    from bl_ext.user_default.framehive import operators  # noqa: PLC0415  (installed under this name)

    paths = operators.output_paths(scene, prefs)
    try:
        result = bpy.ops.framehive.render_on_network(wait=spec.get("wait", False))
        error = ""
    except RuntimeError as exc:
        result, error = {"CANCELLED"}, str(exc)
    return {"result": sorted(result), "error": error, "job_id": scene.framehive.job_id,
            "paths": {str(k): v for k, v in paths.items()}}


def main(zip_path: str, blend: str, attempts: str) -> None:
    bpy.context.preferences.system.use_online_access = True
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
    for spec in json.loads(attempts):
        print("RESULT " + json.dumps(attempt(spec)), flush=True)


if __name__ == "__main__":
    main(*sys.argv[sys.argv.index("--") + 1:])
