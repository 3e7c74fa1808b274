"""Fixtures of the add-on tests: the extension zip, built once per test session like scripts/build-addon does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.farm import REPO


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "build_addon.py"), "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(done.stdout.strip().splitlines()[-1])
