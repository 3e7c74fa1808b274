"""Jobs whose scene is a folder tree: the .blend plus the textures, libraries and caches it uses, each a blob.

A submission's tree is checked completely before anything is written (a refused one leaves no job, no task,
no frame and no ledger entry), the job remembers it, and the orders sent to workers list every file.
"""

from __future__ import annotations

import hashlib
from typing import Any

from framehive.coordinator import leases
from framehive.coordinator.db import db
from framehive.coordinator.dispatch import assign_message, verify_message
from framehive.coordinator.models import Account, Blob, Frame, Job, LedgerEntry, Task, Worker
from framehive.coordinator.verification import leasing
from sqlalchemy import select

from tests.coordinator.kit import render

TEXTURE = b"not really a PNG: the coordinator never opens assets"
LIBRARY = b"not really a .blend either"
SHA_OF = {data: hashlib.sha256(data).hexdigest() for data in (TEXTURE, LIBRARY)}


def rows(app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return {m.__name__: db.session.query(m).count() for m in (Job, Task, Frame, LedgerEntry)}


def submit(api, scene_sha: str, **fields: Any):  # type: ignore[no-untyped-def]
    return api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-2", **fields})


def test_a_job_records_its_tree_and_every_order_lists_the_files(app, api, scene_sha):  # type: ignore[no-untyped-def]
    texture, library = api.upload(TEXTURE), api.upload(LIBRARY)
    response = submit(api, scene_sha, chunk=1, scene_path="shots/shot.blend",
                      assets={"textures/checker.png": texture, "lib/sphere.blend": library})
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    assert (job["scene_path"], job["asset_count"]) == ("shots/shot.blend", 2)
    assert job["assets"] == [  # sorted by path, with sizes
        {"path": "lib/sphere.blend", "sha256": library, "size": len(LIBRARY)},
        {"path": "textures/checker.png", "sha256": texture, "size": len(TEXTURE)},
    ]
    listed = api.get("/api/v1/jobs").get_json()["jobs"][0]
    assert (listed["scene_path"], listed["asset_count"]) == ("shots/shot.blend", 2) and "assets" not in listed

    with app.app_context():
        renderer, verifier = _workers("renderer", "verifier")
        task = leases.claim_task(renderer.id)
        scene = assign_message(task).scene
        assert scene["sha256"] == scene_sha and scene["url"] == f"/api/v1/blobs/{scene_sha}"
        assert scene["size"] > 0 and scene["path"] == "shots/shot.blend"
        assert scene["assets"] == [{**entry, "url": f"/api/v1/blobs/{entry['sha256']}"} for entry in job["assets"]]
        render(task)
        check = leasing.claim_check(verifier)
        assert check is not None and verify_message(check).scene == scene, "a verifier gets the same tree"


def test_a_lone_blend_keeps_its_file_name_as_its_path(app, api, scene_sha):  # type: ignore[no-untyped-def]
    cases = {"shot.blend": "shot.blend", "C:\\scenes\\shot.blend": "scene.blend", None: "scene.blend"}
    for filename, expected in cases.items():
        fields = {"filename": filename} if filename else {}
        job = submit(api, scene_sha, **fields).get_json()
        assert (job["scene_path"], job["asset_count"], job["assets"]) == (expected, 0, []), filename
        with app.app_context():
            task = db.session.execute(select(Task).filter_by(job_id=job["id"])).scalars().first()
            scene = assign_message(task).scene
            assert (scene["path"], scene["assets"]) == (expected, [])


HOSTILE_TREES: list[tuple[str, dict[str, Any]]] = [
    ("absolute", {"assets": {"/etc/passwd": "TEX"}}),
    ("parent", {"assets": {"../outside.png": "TEX"}}),
    ("parent inside", {"assets": {"textures/../../outside.png": "TEX"}}),
    ("dot", {"assets": {"./textures/a.png": "TEX"}}),
    ("empty part", {"assets": {"textures//a.png": "TEX"}}),
    ("trailing slash", {"assets": {"textures/": "TEX"}}),
    ("drive", {"assets": {"C:/textures/a.png": "TEX"}}),
    ("backslash", {"assets": {"textures\\a.png": "TEX"}}),
    ("newline", {"assets": {"textures/a\n.png": "TEX"}}),
    ("long name", {"assets": {"textures/" + "n" * 256: "TEX"}}),
    ("empty", {"assets": {"": "TEX"}}),
    ("same as scene_path", {"scene_path": "shots/shot.blend", "assets": {"shots/shot.blend": "TEX"}}),
    ("scene_path, other case", {"scene_path": "shots/shot.blend", "assets": {"Shots/Shot.blend": "TEX"}}),
    ("case collision", {"assets": {"textures/A.png": "TEX", "textures/a.png": "LIB"}}),
    ("file and folder", {"assets": {"textures": "TEX", "textures/a.png": "LIB"}}),
    ("hostile scene_path", {"scene_path": "../shot.blend"}),
    ("absolute scene_path", {"scene_path": "/tmp/shot.blend"}),
]
BAD_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("assets a list", {"assets": ["textures/a.png"]}, "bad_request"),
    ("sha not hex", {"assets": {"textures/a.png": "not-a-sha"}}, "bad_request"),
    ("sha upper case", {"assets": {"textures/a.png": "A" * 64}}, "bad_request"),
    ("sha not a string", {"assets": {"textures/a.png": 7}}, "bad_request"),
    ("scene_path not a string", {"scene_path": ["shots", "shot.blend"]}, "bad_request"),
    ("NUL", {"assets": {"textures/a\x00.png": "TEX"}}, "bad_request"),  # no JSON string may hold one: bodies.py
    ("never uploaded", {"assets": {"textures/a.png": "TEX", "textures/missing.png": "0" * 64}}, "unknown_blob"),
]


def test_bad_trees_are_refused_before_anything_is_written(app, api, scene_sha):  # type: ignore[no-untyped-def]
    shas = {"TEX": api.upload(TEXTURE), "LIB": api.upload(LIBRARY)}
    before, balance = rows(app), api.get("/api/v1/balance").get_json()
    cases = [(name, fields, "bad_path") for name, fields in HOSTILE_TREES] + BAD_REQUESTS
    for name, fields, code in cases:
        if isinstance(fields.get("assets"), dict):
            fields = {**fields, "assets": {p: shas.get(s, s) for p, s in fields["assets"].items()}}
        response = submit(api, scene_sha, **fields)
        assert response.status_code == 400, (name, response.get_json())
        error = response.get_json()["error"]
        assert error["code"] == code and error["message"], (name, error)
    assert rows(app) == before, "a refused submission must leave no job, task, frame or ledger entry"
    assert api.get("/api/v1/balance").get_json() == balance, "no escrow is charged"


def test_an_unknown_blob_is_named_by_its_path(api, scene_sha):  # type: ignore[no-untyped-def]
    response = submit(api, scene_sha, assets={"textures/wood.png": "0" * 64, "textures/z.png": "1" * 64})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "unknown_blob"
    assert "'textures/wood.png'" in error["message"] and "1 more" in error["message"]
    assert error["details"]["missing"] == ["textures/wood.png", "textures/z.png"]


def test_the_number_of_files_and_their_size_are_limited(app, api, scene_sha):  # type: ignore[no-untyped-def]
    texture, library = api.upload(TEXTURE), api.upload(LIBRARY)
    with app.app_context():
        scene_size = db.session.get(Blob, scene_sha).size
    before = rows(app)
    app.config.update(FRAMEHIVE_MAX_ASSETS=1)
    response = submit(api, scene_sha, assets={"a.png": texture, "b.blend": library})
    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "too_many_files")
    app.config.update(FRAMEHIVE_MAX_ASSETS=2, FRAMEHIVE_MAX_JOB_BYTES=scene_size + len(TEXTURE) + len(LIBRARY) - 1)
    response = submit(api, scene_sha, assets={"a.png": texture, "b.blend": library})
    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "too_large")
    assert rows(app) == before
    app.config.update(FRAMEHIVE_MAX_JOB_BYTES=scene_size + len(TEXTURE) + len(LIBRARY))
    assert submit(api, scene_sha, assets={"a.png": texture, "b.blend": library}).status_code == 201, "at the limit"


def _workers(*names: str) -> list[Worker]:
    """Agents of distinct owners (a verifier never checks its own owner's frames)."""
    workers = []
    for name in names:
        account = Account(name=f"{name}-owner")
        db.session.add(account)
        db.session.flush()
        workers.append(Worker(account_id=account.id, name=name, online=True, roles=["render", "verify"],
                              blender_version="5.0.1", device="CPU"))
    db.session.add_all(workers)
    db.session.commit()
    return workers
