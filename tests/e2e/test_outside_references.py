"""End to end: scenes that reach outside their tree, against a real coordinator and a real worker agent.

Sent straight to the API (not packed), they are refused before any worker sees them. Through a coordinator whose
check is bypassed (the job's tree swapped for the hostile one in its database, as a compromised or buggy
coordinator could send it), the agent refuses them itself before Blender opens them: the task fails with the
reason, no frame comes back, and the same agent goes on to render the next job. Among them the crafted fluid cache
that crashes Blender (SIGSEGV) while it opens the scene: the agent never lets Blender open it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from framehive.addon.client import ApiError, Client, sha256_file
from framehive.coordinator.db import db
from framehive.coordinator.models import Blob, Job

from tests.farm import Farm, wait_for
from tests.live import farm_database
from tests.scenes import build_outside_references

TIMEOUT = 180


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return build_outside_references(tmp_path_factory.mktemp("outside"))


def tree_files(case: dict[str, Any]) -> tuple[Path, dict[str, Path]]:
    """The case's main .blend and its other files by tree path, as Client.submit takes them."""
    tree = Path(case["tree"])
    return tree / case["scene_path"], {path: tree / path for path in case["files"] if path != case["scene_path"]}


def test_hostile_scenes_sent_straight_to_the_api_are_refused_before_any_worker_sees_them(farm: Farm, cases):  # type: ignore[no-untyped-def]
    user = Client(farm.url, farm.token("user", "artist"))
    for name in ("image_absolute", "library_escapes", "fluid_crafted"):
        blend, assets = tree_files(cases[name])
        with pytest.raises(ApiError) as refused:
            user.submit(blend, frames="1-2", assets=assets, scene_path=cases[name]["scene_path"])
        expected = cases[name]["expect"][0]
        assert (refused.value.status, refused.value.code) == (400, expected["code"]), name
        assert expected["file"] in refused.value.message and expected["path"] in refused.value.message
    assert user.jobs() == []
    assert user.balance()["escrow"] == 0


def test_an_agent_refuses_what_a_bypassed_coordinator_sends_and_keeps_serving(farm: Farm, cases,  # type: ignore[no-untyped-def]
                                                                               sample_scene: Path):
    user = Client(farm.url, farm.token("user", "artist"))
    hostile = {name: _job_with_swapped_tree(farm, user, cases, name) for name in ("image_absolute", "fluid_crafted")}
    worker = farm.start_worker("w1", farm.token("worker", "gpu-owner", trusted=True))

    for name, job_id in hostile.items():
        failure = wait_for(lambda job_id=job_id: user.job(job_id)["failures"], TIMEOUT, f"{name} to fail")[0]
        expected = cases[name]["expect"][0]
        assert failure["error"].startswith(f"refusing the scene: {expected['file']}: "), failure
        assert repr(expected["path"]) in failure["error"], failure
        assert "SIGSEGV" not in failure["error"] and "crashed" not in failure["error"]
        assert all(frame["sha256"] is None for frame in user.job(job_id)["frame_states"]), "no frame came back"

    after = user.submit(sample_scene, frames="1-2")
    assert user.wait(after["id"], poll=0.2, timeout=TIMEOUT)["state"] == "completed"
    assert worker.popen.poll() is None, "the agent is still running"
    log = worker.log_text()
    assert "refusing the scene: shot.blend" in log and "Blender crashed" not in log


def _job_with_swapped_tree(farm: Farm, user: Client, cases, name: str) -> int:  # type: ignore[no-untyped-def]
    """A job of the legitimate ``inside`` tree, whose tree is then swapped in the database for the hostile
    ``name`` one (its files uploaded as blobs): the coordinator's check never saw it."""
    blend, assets = tree_files(cases["inside"])
    job = user.submit(blend, frames="1-2", chunk=2, assets=assets, scene_path="shot.blend")
    blend, assets = tree_files(cases[name])
    for path in (blend, *assets.values()):
        user.upload_blob(path, sha256_file(path))
    with farm_database(farm):
        row = db.session.get(Job, job["id"])
        row.scene_sha256, row.scene_path = sha256_file(blend), cases[name]["scene_path"]
        row.assets = [{"path": path, "sha256": sha256_file(file), "size": db.session.get(Blob, sha256_file(file)).size}
                      for path, file in sorted(assets.items())]
        db.session.commit()
    return job["id"]
