"""The extension as an artist gets it: built by scripts/build-addon, installed into a fresh Blender (bpy),
enabled, inspected, disabled and uninstalled, with Blender's own extension machinery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path


def test_the_zip_holds_the_add_on_its_manifest_and_pure_python_wheels(extension_zip: Path) -> None:
    assert extension_zip.name == "framehive-0.1.0.zip"
    names = zipfile.ZipFile(extension_zip).namelist()
    assert {"blender_manifest.toml", "__init__.py", "registration.py", "operators.py", "job_operators.py",
            "panel.py", "preferences.py", "packing.py", "client.py"} <= set(names)
    wheels = [n for n in names if n.startswith("wheels/")]
    assert wheels and all(n.endswith("-py3-none-any.whl") for n in wheels), wheels
    manifest = zipfile.ZipFile(extension_zip).read("blender_manifest.toml").decode()
    assert all(f'"./{w}"' in manifest for w in wheels), "every bundled wheel is listed in the manifest"
    assert not any("__pycache__" in n for n in names)


def test_install_enable_disable_uninstall_in_a_fresh_blender(extension_zip: Path, tmp_path: Path) -> None:
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender-user")}
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("extension_session.py")), "--",
                           str(extension_zip)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-4000:] + done.stderr[-4000:]
    seen = json.loads(lines[-1][len("RESULT "):])

    assert seen["enabled"] and seen["panel"] and seen["panel_context"] == "output"
    assert {"render_on_network", "confirm_files", "test_connection", "cancel_job", "open_output",
            "claim_frames"} <= set(seen["operators"])
    assert seen["prefs"] == {"coordinator_url": "http://127.0.0.1:8400", "token_subtype": "PASSWORD",
                             "download": "OUTPUT"}
    assert seen["scene_settings"] == {"priority": 50, "policy": "adaptive"}
    assert "online access is off" in seen["offline_refusal"], seen["offline_refusal"]
    assert "token" in seen["unconfigured_refusal"], seen["unconfigured_refusal"]
    assert "blender_asset_tracer" in seen["bat"], seen["bat"]  # importable in Blender (bundled wheel or bpy's env)
    assert seen["after_disable"] == {"panel": False, "operator": False, "scene_prop": False}
    assert seen["files_left"] is False
