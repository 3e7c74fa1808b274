"""Bad input gets a clear JSON error with the right status, and nothing is half-created."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from framehive.coordinator.db import db
from framehive.coordinator.models import Blob, Frame, Job, Task


def row_counts(app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return {m.__name__: db.session.query(m).count() for m in (Blob, Job, Task, Frame)}


def assert_error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body


def test_malformed_json_is_rejected(app, api, scene_sha):  # type: ignore[no-untyped-def]
    before = row_counts(app)
    assert_error(api.post("/api/v1/jobs", data="{not json", content_type="application/json"), 400, "bad_json")
    assert_error(api.post("/api/v1/jobs", json=[1, 2]), 400, "bad_request")
    assert_error(api.post("/api/v1/jobs", json={"scene": scene_sha, "bogus": 1}), 400, "bad_request")
    assert_error(api.post("/api/v1/jobs", json={"scene": scene_sha, "chunk": 0}), 400, "bad_request")
    assert_error(api.post("/api/v1/jobs", json={"scene": scene_sha, "priority": "high"}), 400, "bad_request")
    assert_error(api.post("/api/v1/blobs/missing", json={"sha256": "abc"}), 400, "bad_request")
    assert_error(api.post("/api/v1/blobs/missing", json={"sha256": ["xyz"]}), 400, "bad_hash")
    assert row_counts(app) == before


def test_unknown_job_and_frame(api, scene_sha):  # type: ignore[no-untyped-def]
    assert_error(api.get("/api/v1/jobs/999"), 404, "not_found")
    assert_error(api.post("/api/v1/jobs/999/cancel"), 404, "not_found")
    job = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-2"}).get_json()
    assert_error(api.get(f"/api/v1/jobs/{job['id']}/frames/7"), 404, "not_found")
    assert_error(api.get(f"/api/v1/jobs/{job['id']}/frames/1"), 404, "not_verified")
    assert_error(api.get("/api/v1/no-such-endpoint"), 404, "not_found")


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer "])
def test_missing_or_wrong_token(app, header):  # type: ignore[no-untyped-def]
    client = app.test_client()
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/jobs", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] in ("missing_token", "bad_token")


def test_wrong_token_kind_is_forbidden(app, tokens):  # type: ignore[no-untyped-def]
    client = app.test_client()
    response = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {tokens['worker']}"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_other_users_job_is_invisible(app, api, tokens, scene_sha):  # type: ignore[no-untyped-def]
    job = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1"}).get_json()
    other = {"Authorization": f"Bearer {tokens['other']}"}
    client = app.test_client()
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=other).status_code == 404
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=other).status_code == 404
    assert client.get("/api/v1/jobs", headers=other).get_json()["jobs"] == []


def test_hash_mismatch_stores_nothing(app, api):  # type: ignore[no-untyped-def]
    before = row_counts(app)
    wrong = hashlib.sha256(b"something else").hexdigest()
    assert_error(api.put(f"/api/v1/blobs/{wrong}", data=b"BLENDER-v500 not really"), 400, "hash_mismatch")
    assert_error(api.put("/api/v1/blobs/not-a-hash", data=b"x"), 400, "bad_hash")
    assert row_counts(app) == before
    storage_root = Path(app.config["FRAMEHIVE_STORAGE"].removeprefix("file://"))
    assert [p for p in storage_root.rglob("*") if p.is_file()] == []


def test_upload_over_the_limit_is_refused(app, api):  # type: ignore[no-untyped-def]
    app.config["FRAMEHIVE_MAX_SCENE_BYTES"] = 1000
    data = b"x" * 5000
    assert_error(api.put(f"/api/v1/blobs/{hashlib.sha256(data).hexdigest()}", data=data), 413, "too_large")
    assert row_counts(app)["Blob"] == 0


@pytest.mark.parametrize("content", [b"", b"hello, not a blend file", b"BLENDER-v500" + b"\0" * 64])
def test_empty_or_non_blend_scene(app, api, content):  # type: ignore[no-untyped-def]
    sha = hashlib.sha256(content).hexdigest()
    response = api.put(f"/api/v1/blobs/{sha}", data=content)
    if not content:
        assert_error(response, 400, "empty")
        return
    assert response.status_code == 201
    before = row_counts(app)
    assert_error(api.post("/api/v1/jobs", json={"scene": sha}), 400, "not_a_blend")
    assert row_counts(app) == before


def test_unknown_scene_blob(app, api):  # type: ignore[no-untyped-def]
    assert_error(api.post("/api/v1/jobs", json={"scene": "0" * 64}), 400, "unknown_blob")
    assert row_counts(app)["Job"] == 0


@pytest.mark.parametrize("frames", ["0-5", "10-14", "13", "1-3,40", "5-1", "a-b", "", "1,,2", "-3-2"])
def test_bad_frame_ranges(app, api, scene_sha, frames):  # type: ignore[no-untyped-def]
    before = row_counts(app)
    response = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": frames})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] in ("frames_out_of_range", "bad_frames")
    assert row_counts(app) == before


def test_good_submit_creates_tasks_and_frames(app, api, scene_sha):  # type: ignore[no-untyped-def]
    response = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "2-11", "chunk": 4, "priority": 70})
    assert response.status_code == 201
    job = response.get_json()
    assert job["state"] == "queued"
    assert [t["frames"] for t in job["tasks"]] == ["2-5", "6-9", "10-11"]
    assert [f["frame"] for f in job["frame_states"]] == list(range(2, 12))
    assert job["resolution"] == [64, 36]
    assert job["counts"]["queued"] == 10
