"""The extension as an artist gets it: built by scripts/build-addon, installed into a fresh Blender (bpy),
enabled, inspected, disabled and uninstalled, with Blender's own extension machinery."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from framehive.protocol import vocabulary

import framehive
from tests.pythons import is_pristine


def test_the_zip_holds_the_add_on_its_manifest_and_pure_python_wheels(extension_zip: Path) -> None:
    assert extension_zip.name == f"framehive-{framehive.__version__}.zip"
    names = zipfile.ZipFile(extension_zip).namelist()
    assert {"blender_manifest.toml", "__init__.py", "registration.py", "operators.py", "job_operators.py",
            "panel.py", "preferences.py", "packing.py", "client.py", "vocabulary.py", "_protocol/__init__.py",
            "_protocol/vocabulary.py"} <= set(names)
    # Only the pure modules the add-on imports, none of protocol/'s others.
    vendored = sorted(n for n in names if n.startswith("_protocol/"))
    assert vendored == ["_protocol/__init__.py", "_protocol/vocabulary.py"]
    wheels = [n for n in names if n.startswith("wheels/")]
    assert wheels and all(n.endswith("-py3-none-any.whl") for n in wheels), wheels
    manifest = zipfile.ZipFile(extension_zip).read("blender_manifest.toml").decode()
    assert all(f'"./{w}"' in manifest for w in wheels), "every bundled wheel is listed in the manifest"
    assert not any("__pycache__" in n for n in names)


def test_the_zip_is_built_by_a_bare_python_and_carries_the_one_version(extension_zip: Path,
                                                                        build_python: Path) -> None:
    # scripts/build-addon needs only Python: the fixture built the zip with an interpreter that has nothing but pip.
    assert is_pristine(build_python), build_python
    archive = zipfile.ZipFile(extension_zip)
    manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
    assert manifest["version"] == framehive.__version__
    assert f'VERSION = "{framehive.__version__}"' in archive.read("version.py").decode()
    assert "import" not in archive.read("version.py").decode()  # Blender has no framehive package to import


def test_blender_validates_the_zip(extension_zip: Path) -> None:
    """Blender's own extension tool (the code behind `blender --command extension validate`), from bpy's files."""
    spec = importlib.util.find_spec("bpy")
    assert spec is not None and spec.submodule_search_locations
    tool = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*/scripts/addons_core/bl_pkg/cli/"
                                                                         "blender_ext.py"))[-1]
    done = subprocess.run([sys.executable, str(tool), "validate", str(extension_zip)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "Success" in done.stdout, done.stdout + done.stderr


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
    assert seen["vocabulary"] == {"module": "bl_ext.user_default.framehive._protocol.vocabulary",
                                  "final": sorted(vocabulary.JobState.FINAL), "policies": list(vocabulary.Policy.ALL)}
    assert seen["policy_items"] == list(vocabulary.Policy.ALL)
    assert "blender_asset_tracer" in seen["bat"], seen["bat"]  # importable in Blender (bundled wheel or bpy's env)
    assert seen["after_disable"] == {"panel": False, "operator": False, "scene_prop": False}
    assert seen["files_left"] is False
