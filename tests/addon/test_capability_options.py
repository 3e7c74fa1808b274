"""The panel's Device, Max Workers and Blender Version options reach the job (issue 13, point 6), headless in a
real Blender with the built extension, against a real coordinator; a pin older than the scene's Blender is
refused with the coordinator's reason and nothing is submitted."""

from __future__ import annotations

from pathlib import Path

from framehive.addon.client import Client

from tests.addon.sessions import run_session
from tests.farm import Farm


def test_the_panel_options_reach_the_job(farm: Farm, sample_scene: Path, extension_zip: Path,
                                         tmp_path: Path) -> None:
    artist = farm.token("user", "artist")
    scene = {"url": farm.url, "token": artist, "frame_end": 1}
    steps = [{**scene, "options": {"device": "gpu", "max_workers": 2, "blender_version": " 5.0 "}},
             {**scene, "options": {"device": "any", "max_workers": 0, "blender_version": "4.2"}}]
    pinned, refused = run_session(extension_zip, sample_scene, steps, tmp_path)
    assert pinned["result"] == ["FINISHED"], pinned
    job = Client(farm.url, artist).job(pinned["job_id"])
    assert job["requirements"] == {"blender": "5.0", "blender_version": "5.0", "max_workers": 2, "device": "gpu",
                                   "summary": "Blender 5.0, a GPU, at most 2 agent(s) at once"}
    assert refused["result"] == ["CANCELLED"] and "Blender 4.2 is older" in refused["error"], refused
    assert [j["id"] for j in Client(farm.url, artist).jobs()] == [pinned["job_id"]], "nothing else submitted"
