"""Fixtures of the add-on tests: the extension zip, built once per test session like scripts/build-addon does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _farm_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print what the coordinator and workers of a module's ``site`` said when one of its tests fails."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "site" in request.fixturenames:
        print(request.getfixturevalue("site").farm.logs())
