"""Fixtures of the add-on tests: the extension zip, built once per test session like scripts/build-addon does, with
a pristine Python (nothing installed but pip, run isolated): the build needs nothing of the development environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.farm import REPO
from tests.pythons import find_python


@pytest.fixture(scope="session")
def build_python() -> Path:
    """The interpreter the extension is built with: a Python 3.12 or 3.13 outside the test environment."""
    found = find_python("3.12") or find_python("3.13")
    assert found is not None, "no python3.12 or python3.13 to build the extension with (pyenv or PATH)"
    return found


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory: pytest.TempPathFactory, build_python: Path) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([str(build_python), "-I", str(REPO / "scripts" / "build_addon.py"), "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(done.stdout.strip().splitlines()[-1])
