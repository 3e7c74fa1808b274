"""The systemd units in deploy/ pass ``systemd-analyze verify``, as the README's "Running a network" says: their
keys, sandboxing options and specifiers are ones systemd knows. Their ExecStart names /opt/framehive/bin, which a
test machine does not have, so they are checked with this environment's console scripts in its place. (They are
not run as services here.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNITS = ("framehive-coordinator.service", "framehive-worker.service")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_deploy_units_pass_systemd_analyze_verify(tmp_path: Path):
    scripts = Path(sys.executable).parent
    for name in UNITS:
        text = (REPO / "deploy" / name).read_text()
        assert "/opt/framehive/bin/" in text, name
        (tmp_path / name).write_text(text.replace("/opt/framehive/bin/", f"{scripts}/"))
    checked = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / name) for name in UNITS)],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and checked.stderr.strip() == "", checked.stderr
