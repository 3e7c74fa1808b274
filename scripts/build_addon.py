"""Build the Blender extension zip: ``dist/framehive-<version>.zip`` (run through ``scripts/build-addon``).

Needs only Python 3.11+ with its own pip (for the one wheel bundled): no virtual environment, no Blender, no bpy.
Stages ``addon/`` with the pure-Python wheels Blender does not ship (blender-asset-tracer, the packer) and the
modules of ``protocol/`` the add-on imports (as the subpackage ``_protocol``: addon/vocabulary.py), writes
the version of framehive/__init__.py into the staged manifest and ``version.py`` and lists the wheels in the
manifest, then zips the staging folder the way Blender's ``blender --command extension build`` does (files at the
zip's root, wheels stored, the rest deflated). Blender's own validation of the zip runs in the tests
(tests/addon/test_extension.py), where bpy is installed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIN_PYTHON = (3, 11)
# Pure-Python wheels bundled into the extension (Blender 4.2-5.0 run Python 3.11; 5.1+ 3.13: both fine).
# requests, which blender-asset-tracer needs, ships with Blender.
WHEELS = ["blender-asset-tracer==1.23"]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "wheels")
# protocol/'s modules the add-on imports, copied into the zip as the subpackage VENDORED_PROTOCOL (Blender imports
# the extension without the framehive package; addon/vocabulary.py takes this copy first). Standard library only.
PROTOCOL_MODULES = ("__init__.py", "vocabulary.py")
VENDORED_PROTOCOL = "_protocol"
# Blender's build stores these uncompressed (blender_ext.py, filepath_skip_compress); the rest is deflated.
STORED_SUFFIXES = (".whl", ".zip", ".gz", ".bz2", ".xz", ".zst", ".png", ".jpg")
VERSION_MODULE = '''"""The add-on's version, written by scripts/build_addon.py from framehive/__init__.py."""

VERSION = "{version}"

__all__ = ["VERSION"]
'''


def project_version() -> str:
    """``__version__`` of framehive/__init__.py, read as text (nothing of the project is imported)."""
    text = (REPO / "framehive" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "(\d+\.\d+\.\d+)"$', text, re.M)
    if found is None:
        sys.exit("build-addon: no __version__ = \"X.Y.Z\" line in framehive/__init__.py")
    return found.group(1)


def fetch_wheels(cache: Path) -> list[Path]:
    """Download the wheels once into ``cache`` (pip's own cache makes repeats offline)."""
    cache.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--only-binary", ":all:", "--dest", str(cache), *WHEELS], check=True)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"build-addon: `{sys.executable} -m pip download {' '.join(WHEELS)}` failed (exit {exc.returncode});"
                 " this Python needs its pip module (python3 -m ensurepip) and access to the package index")
    wheels = sorted(cache.glob("*.whl"))
    impure = [w.name for w in wheels if not w.name.endswith("-none-any.whl")]
    if impure:
        sys.exit(f"build-addon: only pure-Python wheels may be bundled, got {impure}")
    return wheels


def stage(staging: Path, wheels: list[Path], version: str) -> None:
    """Copy the add-on into ``staging`` with protocol/'s modules it imports, the wheels, the version and the wheel
    list written in."""
    shutil.copytree(REPO / "addon", staging, ignore=IGNORE)
    (staging / VENDORED_PROTOCOL).mkdir()
    for name in PROTOCOL_MODULES:
        shutil.copy2(REPO / "protocol" / name, staging / VENDORED_PROTOCOL / name)
    (staging / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, staging / "wheels" / wheel.name)
    (staging / "version.py").write_text(VERSION_MODULE.format(version=version), encoding="utf-8")
    manifest = staging / "blender_manifest.toml"
    text = manifest.read_text(encoding="utf-8")
    text, count = re.subn(r'^version = "[^"]*"$', f'version = "{version}"', text, count=1, flags=re.M)
    if count != 1:
        sys.exit("build-addon: addon/blender_manifest.toml has no version line")
    listed = ", ".join(f'"./wheels/{w.name}"' for w in wheels)
    # The top-level key must come before the first [table] of the TOML file.
    text = re.sub(r"^(\[permissions\])", f"wheels = [{listed}]\n\n\\1", text, count=1, flags=re.M)
    manifest.write_text(text, encoding="utf-8")


def write_zip(staging: Path, zip_path: Path) -> None:
    """Zip ``staging``'s files at the archive's root, in a stable order; replaced atomically."""
    partial = zip_path.with_name(f".{zip_path.name}")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            stored = path.name.lower().endswith(STORED_SUFFIXES)
            archive.write(path, path.relative_to(staging).as_posix(),
                          compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
    os.replace(partial, zip_path)


def main() -> int:
    if sys.version_info < MIN_PYTHON:
        sys.exit(f"build-addon: needs Python {'.'.join(map(str, MIN_PYTHON))} or newer, this is "
                 f"{sys.version.split()[0]} ({sys.executable})")
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=REPO / "dist")
    args = parser.parse_args()
    out: Path = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    version = project_version()
    wheels = fetch_wheels(REPO / "build" / "addon" / "wheels")
    zip_path = out / f"framehive-{version}.zip"
    # A staging folder per run: builds running side by side (parallel test sessions) do not share one.
    with tempfile.TemporaryDirectory(prefix="framehive-addon-") as scratch:
        staging = Path(scratch) / "framehive"
        stage(staging, wheels, version)
        write_zip(staging, zip_path)
    print(zip_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
