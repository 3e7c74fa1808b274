"""Blender sessions of the operator tests: tests/addon/render_session.py in a fresh bpy process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SESSION = Path(__file__).with_name("render_session.py")


def run_session(zip_path: Path, blend: Path, steps: list[dict[str, Any]], home: Path) -> list[dict[str, Any]]:
    """Install the extension in a fresh Blender (user folder under ``home``), open ``blend`` and run the steps
    (see render_session.py); their results."""
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(home / "blender-user")}
    done = subprocess.run([sys.executable, str(SESSION), "--", str(zip_path), str(blend), json.dumps(steps)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=home)
    results = [json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and len(results) == len(steps), done.stdout[-4000:] + done.stderr[-4000:]
    return results
