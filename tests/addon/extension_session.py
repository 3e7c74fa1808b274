"""Run inside a fresh bpy process by test_extension.py: install, enable, inspect, disable, uninstall.

Prints one JSON line with what it saw (``RESULT {...}``). Blender's user folders come from
BLENDER_USER_RESOURCES, which the test points at a temporary folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bpy  # first: it puts Blender's own modules (addon_utils) on the path

import addon_utils  # noqa: E402  isort: skip

MODULE = "bl_ext.user_default.framehive"


def poll_message(online: bool) -> str:
    bpy.context.preferences.system.use_online_access = online
    try:
        bpy.ops.framehive.render_on_network()
    except RuntimeError as exc:
        return str(exc)
    return ""


def main(zip_path: str) -> None:
    seen: dict[str, object] = {}
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    seen["enabled"] = MODULE in bpy.context.preferences.addons
    seen["installed_at"] = str(Path(bpy.utils.user_resource("EXTENSIONS")) / "user_default" / "framehive")
    seen["panel"] = getattr(bpy.types, "FRAMEHIVE_PT_render", None) is not None
    seen["panel_context"] = bpy.types.FRAMEHIVE_PT_render.bl_context
    seen["operators"] = sorted(name for name in dir(bpy.ops.framehive) if not name.startswith("_"))
    prefs = bpy.context.preferences.addons[MODULE].preferences
    seen["prefs"] = {"coordinator_url": prefs.coordinator_url, "token_subtype":
                     prefs.bl_rna.properties["token"].subtype, "download": prefs.download}
    seen["scene_settings"] = {"priority": bpy.context.scene.framehive.priority,
                              "policy": bpy.context.scene.framehive.policy}
    seen["offline_refusal"] = poll_message(online=False)
    prefs.token = ""
    seen["unconfigured_refusal"] = poll_message(online=True)
    # The coordinator's names come from the zip's own copy of protocol/vocabulary.py, not from the framehive package
    # this test's Python happens to have.
    vocabulary = sys.modules[f"{MODULE}.vocabulary"]
    seen["vocabulary"] = {"module": vocabulary.JobState.__module__, "final": sorted(vocabulary.JobState.FINAL),
                          "policies": list(vocabulary.Policy.ALL)}
    seen["policy_items"] = [item.identifier for item in
                            bpy.types.Scene.bl_rna.properties["framehive"].fixed_type.properties["policy"].enum_items]
    import blender_asset_tracer  # the bundled wheel is importable inside Blender

    seen["bat"] = blender_asset_tracer.__file__
    addon_utils.disable(MODULE, default_set=True)
    seen["after_disable"] = {"panel": getattr(bpy.types, "FRAMEHIVE_PT_render", None) is not None,
                             "operator": hasattr(bpy.types, "FRAMEHIVE_OT_render_on_network"),
                             "scene_prop": hasattr(bpy.types.Scene, "framehive")}
    repo_index = [r.module for r in bpy.context.preferences.extensions.repos].index("user_default")
    bpy.ops.extensions.package_uninstall(repo_index=repo_index, pkg_id="framehive")
    seen["files_left"] = Path(str(seen["installed_at"])).exists()
    print("RESULT " + json.dumps(seen))


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1])
