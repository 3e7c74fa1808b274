"""Python interpreters other than the test environment's: pristine ones (only pip installed) for the tests that
prove a command or an install works without the development environment."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PYENV = Path.home() / ".pyenv" / "versions"


def find_python(version: str) -> Path | None:
    """An interpreter of ``version`` ("3.12"): pyenv's, else ``python3.12`` on PATH; None when there is none."""
    for candidate in sorted(PYENV.glob(f"{version}.*/bin/python{version}"), reverse=True):
        return candidate
    found = shutil.which(f"python{version}")
    return Path(found) if found else None


def is_pristine(python: Path) -> bool:
    """Whether ``python`` (run isolated, ``-I``) has nothing installed but pip."""
    listed = subprocess.run([str(python), "-I", "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                            capture_output=True, text=True, timeout=60)
    names = {line.split("==")[0].lower() for line in listed.stdout.split()}
    return listed.returncode == 0 and names <= {"pip", "setuptools", "wheel"}
