"""``bpy.ops.framehive.render_on_network`` headless, as an artist's script would call it, against a real
coordinator and real workers: the frames come back verified into the scene's output path, identical to a
local render, and the artist's .blend on disk is untouched. Error paths: coordinator down, bad token, not
enough points: a clear message and nothing half-submitted.

Blender runs in subprocesses (tests/addon/render_session.py) with a fresh user folder each, the extension
installed from the zip scripts/build-addon makes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from addon.client import Client
from tests.farm import REPO, Farm, make_scene
from tests.images import same_pixels
from tests.live import free_port

SESSION = Path(__file__).with_name("render_session.py")


def run_session(zip_path: Path, blend: Path, attempts: list[dict[str, Any]], home: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(home / "blender-user")}
    done = subprocess.run([sys.executable, str(SESSION), "--", str(zip_path), str(blend), json.dumps(attempts)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=home)
    results = [json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and len(results) == len(attempts), done.stdout[-4000:] + done.stderr[-4000:]
    return results


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The artist's scene in a project folder of its own (frames go to //render/ next to it)."""
    root = tmp_path_factory.mktemp("project")
    return make_scene(root / "shots" / "shot.blend")


def test_frames_come_back_verified_into_the_output_path(farm: Farm, project: Path, extension_zip: Path,
                                                        tmp_path: Path) -> None:
    artist = farm.token("user", "artist")
    farm.start_worker("gpu-1", farm.token("worker", "owner-1"))
    farm.start_worker("gpu-2", farm.token("worker", "owner-2"))
    before = sha256(project)

    (result,) = run_session(extension_zip, project, [{"url": farm.url, "token": artist, "wait": True}], tmp_path)

    assert result["result"] == ["FINISHED"], result
    assert sha256(project) == before, "the artist's .blend on disk is byte-identical"
    job = Client(farm.url, artist).job(result["job_id"])
    assert job["state"] == "completed"
    expected = {int(k): Path(v) for k, v in result["paths"].items()}
    assert sorted(expected) == list(range(1, 13))
    assert all(p == project.parent / "render" / f"frame_{n:04d}.png" for n, p in expected.items()), expected
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, str(REPO / "tests" / "reference_render.py"), str(project), str(reference),
                    *map(str, expected)], check=True, capture_output=True, timeout=600)
    differing = [n for n, p in expected.items() if not same_pixels(p, reference / f"ref_{n:04d}.png")]
    assert differing == [], f"frames {differing} differ from a local render"


def test_errors_are_clear_and_nothing_is_half_submitted(farm: Farm, project: Path, extension_zip: Path,
                                                         tmp_path: Path) -> None:
    """No workers here: every job stays queued, so the 'pauper' can park most of its points in escrow."""
    pauper = farm.token("user", "pauper")
    client = Client(farm.url, pauper)
    long_scene = make_scene(tmp_path / "long.blend", frames=80)
    client.submit(long_scene)  # 80 x 12 points held: 40 left, less than the 12-frame shot's 144
    balance = client.balance()["balance"]
    attempts = [
        {"url": f"http://127.0.0.1:{free_port()}", "token": pauper},
        {"url": farm.url, "token": "fhu_" + "0" * 40},
        {"url": farm.url, "token": pauper},
    ]

    down, bad_token, poor = run_session(extension_zip, project, attempts, tmp_path)

    assert "cannot reach" in down["error"] or "refused" in down["error"], down
    assert "token" in bad_token["error"] and "refused" in bad_token["error"], bad_token
    assert "not enough points" in poor["error"] and "144" in poor["error"] and str(balance) in poor["error"], poor
    assert all(r["result"] == ["CANCELLED"] and r["job_id"] == 0 for r in (down, bad_token, poor))
    assert len(client.jobs()) == 1 and client.balance()["balance"] == balance, "nothing was created or charged"
