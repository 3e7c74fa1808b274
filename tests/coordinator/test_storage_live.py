"""Storage quota and collection against a real coordinator (its grace, retention and quota set in its environment)
and a real worker agent rendering with Blender.

Before: blobs were never deleted and an account could upload without limit. Now an upload no job uses goes after
the grace period; a live job's files stay however old; a finished job's files (its scene tree and its frames) go
after the retention period, and the job says so (410 for a frame, 409 for a claim); an account's uploads are
capped by its quota (413 quota_exceeded with the numbers), and what the collector deletes frees it again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from framehive.addon.client import ApiError, Client

from tests.farm import Farm, wait_for
from tests.live import mint_tokens

GRACE = 2
RETENTION = 6
COLLECTED_TIMEOUT = 30
RENDER_TIMEOUT = 150


@pytest.fixture
def farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_scene: Path) -> Iterator[Farm]:
    settings = {"BLOB_GRACE": GRACE, "JOB_RETENTION": RETENTION, "COLLECT_INTERVAL": 0.3,
                "STORAGE_QUOTA": sample_scene.stat().st_size + 1000}
    for name, value in settings.items():
        monkeypatch.setenv(f"FRAMEHIVE_{name}", str(value))
    farm = Farm(tmp_path / "farm")
    farm.start_coordinator()
    yield farm
    farm.stop()


def blob_file(farm: Farm, sha: str) -> Path:
    return farm.data_dir / "blobs" / sha[:2] / sha[2:]


def put(client: Client, tmp_path: Path, data: bytes) -> str:
    path = tmp_path / hashlib.sha256(data).hexdigest()[:12]
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    client.upload_blob(path, sha)
    return sha


def collected(farm: Farm, client: Client, sha: str) -> bool:
    return client.missing_blobs([sha]) == [sha] and not blob_file(farm, sha).exists()


def test_an_unused_upload_is_collected_and_frees_the_quota(farm: Farm, tmp_path: Path, sample_scene: Path) -> None:
    alice = Client(farm.url, mint_tokens(farm, alice=("user", "alice"))["alice"])
    junk = put(alice, tmp_path, os.urandom(1500))  # never used by a job
    scene = hashlib.sha256(sample_scene.read_bytes()).hexdigest()
    with pytest.raises(ApiError) as refused:
        alice.upload_blob(sample_scene, scene)
    assert (refused.value.status, refused.value.code) == (413, "quota_exceeded"), refused.value
    size = sample_scene.stat().st_size
    assert refused.value.details == {"used": 1500, "quota": size + 1000, "size": size}
    assert alice.missing_blobs([scene]) == [scene], "nothing of the refused upload was kept"
    wait_for(lambda: collected(farm, alice, junk), COLLECTED_TIMEOUT, "the unused upload to be collected")
    assert alice.upload_blob(sample_scene, scene)["size"] == size, "the collected bytes left the quota"


def test_a_live_jobs_files_stay_and_a_finished_jobs_go_after_retention(farm: Farm, tmp_path: Path,
                                                                       sample_scene: Path) -> None:
    tokens = mint_tokens(farm, alice=("user", "alice"), owner=("worker", "owner"))
    alice = Client(farm.url, tokens["alice"])
    texture = tmp_path / "wood.png"
    texture.write_bytes(os.urandom(200))
    job = alice.submit(sample_scene, frames="1-2", chunk=2, assets={"textures/wood.png": texture})
    files = [job["scene"], job["assets"][0]["sha256"]]
    later = put(alice, tmp_path, os.urandom(100))  # uploaded after the job's files: collected after them
    wait_for(lambda: collected(farm, alice, later), COLLECTED_TIMEOUT, "a pass past the grace period")
    assert alice.missing_blobs(files) == [] and all(blob_file(farm, sha).exists() for sha in files), \
        "a live job's files are never collected"

    farm.start_worker("box", tokens["owner"])
    done = alice.wait(job["id"], poll=0.2, timeout=RENDER_TIMEOUT)
    assert done["state"] == "completed", done
    frames = [entry["sha256"] for entry in done["frame_states"]]
    alice.download_frame(job["id"], 1, tmp_path / "frame1.png")  # within the retention period
    released = wait_for(lambda: alice.job(job["id"])["files_collected_at"] and alice.job(job["id"]),
                        RETENTION + COLLECTED_TIMEOUT, "the finished job's files to be released")
    assert {entry["sha256"] for entry in released["frame_states"]} == {None}
    wait_for(lambda: all(collected(farm, alice, sha) for sha in [*files, *frames]), COLLECTED_TIMEOUT,
             "the scene, its texture and its frames to be deleted")
    with pytest.raises(ApiError) as gone:
        alice.download_frame(job["id"], 1, tmp_path / "again.png")
    assert (gone.value.status, gone.value.code) == (410, "collected")
    with pytest.raises(ApiError) as claim:
        alice.claim(job["id"], "1", "too late")
    assert (claim.value.status, claim.value.code) == (409, "files_collected")
