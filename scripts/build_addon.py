"""Build the Blender extension zip: ``dist/framehive-<version>.zip`` (run through ``scripts/build-addon``).

Stages ``addon/`` with the pure-Python wheels Blender does not ship (blender-asset-tracer, the packer),
lists them in the staged manifest, and builds and validates the zip with Blender's own extension tool
(``blender_ext.py``, the code behind ``blender --command extension build``), taken from the bpy module.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Pure-Python wheels bundled into the extension (Blender 4.2-5.0 run Python 3.11; 5.1+ 3.13: both fine).
# requests, which blender-asset-tracer needs, ships with Blender.
WHEELS = ["blender-asset-tracer==1.23"]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "wheels")


def blender_ext() -> Path:
    """Blender's extension build tool, from the installed bpy module."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("build-addon: the bpy module is not installed (./scripts/setup installs it)")
    root = Path(list(spec.submodule_search_locations)[0])
    found = sorted(root.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        sys.exit(f"build-addon: blender_ext.py not found under {root}")
    return found[-1]


def fetch_wheels(cache: Path) -> list[Path]:
    """Download the wheels once into ``cache`` (pip's own cache makes repeats offline)."""
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--no-deps", "--only-binary", ":all:", "--dest", str(cache), *WHEELS], check=True)
    wheels = sorted(cache.glob("*.whl"))
    impure = [w.name for w in wheels if not w.name.endswith("-none-any.whl")]
    if impure:
        sys.exit(f"build-addon: only pure-Python wheels may be bundled, got {impure}")
    return wheels


def stage(out: Path, wheels: list[Path]) -> Path:
    staging = out / "staging" / "framehive"
    shutil.rmtree(staging.parent, ignore_errors=True)
    shutil.copytree(REPO / "addon", staging, ignore=IGNORE)
    (staging / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, staging / "wheels" / wheel.name)
    manifest = staging / "blender_manifest.toml"
    text = manifest.read_text()
    listed = ", ".join(f'"./wheels/{w.name}"' for w in wheels)
    # The top-level key must come before the first [table] of the TOML file.
    text = re.sub(r"^(\[permissions\])", f"wheels = [{listed}]\n\n\\1", text, count=1, flags=re.M)
    manifest.write_text(text)
    return staging


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=REPO / "dist")
    args = parser.parse_args()
    out: Path = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    build = REPO / "build" / "addon"
    staging = stage(build, fetch_wheels(build / "wheels"))
    tool = blender_ext()
    subprocess.run([sys.executable, str(tool), "build", "--source-dir", str(staging), "--output-dir", str(out)],
                   check=True)
    version = re.search(r'^version = "([^"]+)"', (staging / "blender_manifest.toml").read_text(), re.M)
    assert version is not None
    zip_path = out / f"framehive-{version.group(1)}.zip"
    subprocess.run([sys.executable, str(tool), "validate", str(zip_path)], check=True)
    print(zip_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
