"""The extension's panel, preferences and file dialog draw on the Blender this Python runs (bpy 5.0.1 here; 5.3.0
and the oldest the manifest claims, 4.2.0, through tests/test_other_blenders.py): installed from the zip into a
fresh Blender, each drawn into a layout that checks every call against that Blender's own UILayout
(tests/addon/draw_session.py). An icon, a keyword or a layout function that Blender lacks is an error when the
artist opens the panel, and on that Blender only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SESSION = Path(__file__).with_name("draw_session.py")


@pytest.fixture(scope="module")
def drawn(extension_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("drawing")
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(home / "blender-user")}
    done = subprocess.run([sys.executable, str(SESSION), "--", str(extension_zip)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=home)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-4000:] + done.stderr[-4000:]
    return dict(json.loads(lines[-1][len("RESULT "):]))


def test_this_blender_takes_every_call_the_extension_draws_with(drawn: dict[str, Any]) -> None:
    assert drawn["refused"] == [], f"Blender {drawn['blender']} refuses: {drawn['refused']}"


def test_the_panel_draws_the_scene_settings_and_the_button(drawn: dict[str, Any]) -> None:
    panel = drawn["panel"]
    assert {"prop: priority", "prop: policy", "prop: device", "operator: framehive.render_on_network"} <= set(panel)
    assert any(line.startswith("label: Frames ") for line in panel), panel
    assert "progress: uploading shot.blend" in drawn["panel_submitting"]
    assert any(line.startswith("label: Price ") and line.endswith(" points · balance 3")
               for line in drawn["panel_submitting"]), drawn["panel_submitting"]
    assert "label: Account: token refused" in drawn["panel_news_awaited"]
    assert "label: Job 7: waiting for news…" in drawn["panel_news_awaited"]


def test_the_job_box_draws_each_part_of_a_running_and_a_completed_job(drawn: dict[str, Any]) -> None:
    running, completed = drawn["panel_running"], drawn["panel_completed"]
    assert {"label: Job 7: running", "progress: 100 / 240 verified", "prop: unverified",
            "operator: framehive.cancel_job", "operator: framehive.open_output"} <= set(running), running
    assert sum(line.startswith("label: ") and "wait for a verifier" in line for line in running) > 1  # wrapped
    assert "operator: framehive.claim_frames" in completed and "operator: framehive.cancel_job" not in completed


def test_the_preferences_and_the_file_dialog_draw(drawn: dict[str, Any]) -> None:
    assert {"prop: coordinator_url", "prop: token", "operator: framehive.test_connection", "label: connected",
            "prop: download_folder"} <= set(drawn["preferences"]), drawn["preferences"]
    dialog = drawn["confirm_files"]
    assert any("2 file(s) from outside" in line for line in dialog) and any("1 file(s)" in line for line in dialog)
