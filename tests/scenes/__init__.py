"""Scene generators (each run under a Python that has ``bpy``, in a subprocess of its own: bpy loads once per
process), and the functions tests call to run them."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ASSET_PROJECT = Path(__file__).with_name("asset_project.py")
OUTSIDE_REFERENCES = Path(__file__).with_name("outside_references.py")


def build_asset_project(root: Path) -> dict[str, Path]:
    """Build tests/scenes/asset_project.py's project under ``root``; its paths by key ("blend", "texture",
    "library", "stripes", "missing", "cache"), and "root"."""
    done = subprocess.run([sys.executable, str(ASSET_PROJECT), "build", str(root)], capture_output=True,
                          text=True, timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROJECT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    paths = {key: Path(value) for key, value in json.loads(lines[0][len("PROJECT "):]).items()}
    paths["root"] = paths["blend"].parents[2]
    return paths


def build_outside_references(root: Path) -> dict[str, dict[str, Any]]:
    """Build tests/scenes/outside_references.py's trees under ``root``: each case's tree, scene_path, files and
    the problems a check must report (see that module)."""
    done = subprocess.run([sys.executable, str(OUTSIDE_REFERENCES), str(root)], capture_output=True, text=True,
                          timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("CASES ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[0][len("CASES "):])


def outside_files(project: dict[str, Path]) -> list[str]:
    """The real paths of the files the asset project's scene uses from outside its .blend's folder (all but the
    missing image, which sits inside it), as the packer lists them."""
    cache = sorted(str(path.resolve()) for path in project["cache"].iterdir())
    return sorted([str(project[key].resolve()) for key in ("texture", "library", "stripes")] + cache)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``root`` (a project the tests must leave alone): its sha256 and modification time."""
    return {path.relative_to(root).as_posix(): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(root.rglob("*")) if path.is_file()}
