"""A submission may name only blobs its account holds (coordinator/blob_access.py): knowing another account's
hash is not enough to render its scene or use its textures, and the refusal is the one a never-uploaded hash
gets (400 unknown_blob), so it tells nobody that the blob exists."""

from __future__ import annotations

from typing import Any

from framehive.coordinator import leases
from framehive.coordinator.db import db
from framehive.coordinator.models import Account, BlobUpload, Frame, Job, LedgerEntry, Task, Worker
from sqlalchemy import func, select

from tests.coordinator.conftest import Api
from tests.coordinator.kit import render

TEXTURE = b"alice's private texture: never opened by the coordinator"


def rows(app) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return tuple(db.session.execute(select(func.count()).select_from(model)).scalar_one()
                     for model in (Job, Task, Frame, LedgerEntry, BlobUpload))


def submit(api: Api, scene: str, **fields: Any):  # type: ignore[no-untyped-def]
    return api.post("/api/v1/jobs", json={"scene": scene, "frames": "1-2", **fields})


def refused_as_unknown(app, api: Api, scene: str, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    before = rows(app)
    response = submit(api, scene, **fields)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "unknown_blob", error
    assert rows(app) == before, "a refused submission creates nothing"
    return error


def test_another_accounts_scene_cannot_be_submitted_by_its_hash(app, tokens, scene_sha):  # type: ignore[no-untyped-def]
    bob = Api(app, tokens["other"])
    never = refused_as_unknown(app, bob, "0" * 64)
    error = refused_as_unknown(app, bob, scene_sha)  # Alice uploaded it (the scene_sha fixture)
    assert error["message"] == never["message"], "the same answer as for a hash nobody uploaded"
    assert submit(Api(app, tokens["user"]), scene_sha).status_code == 201, "its owner still may"


def test_another_accounts_asset_cannot_be_named_in_a_tree(app, api, tokens, sample_scene):  # type: ignore[no-untyped-def]
    texture = api.upload(TEXTURE)
    bob = Api(app, tokens["other"])
    bobs_scene = bob.upload(sample_scene.read_bytes())  # his own copy of the bytes: he really sent them
    error = refused_as_unknown(app, bob, bobs_scene, assets={"textures/wood.png": texture})
    assert error["details"]["missing"] == ["textures/wood.png"]
    assert bob.upload(TEXTURE) == texture  # sending the bytes himself makes the file his too
    assert submit(bob, bobs_scene, assets={"textures/wood.png": texture}).status_code == 201


def test_a_frame_of_your_own_job_is_yours_to_use_and_nobody_elses(app, api, tokens, scene_sha,  # type: ignore[no-untyped-def]
                                                                   sample_scene):  # type: ignore[no-untyped-def]
    job = submit(api, scene_sha, chunk=2).get_json()
    with app.app_context():
        app.config.update(FRAMEHIVE_AUDIT_RATE=0.0, FRAMEHIVE_RINGER_RATE=0.0, FRAMEHIVE_SPOT_RATE=0.0)
        owner = Account(name="gpu-owner")
        db.session.add(owner)
        db.session.flush()
        worker = Worker(account_id=owner.id, name="renderer", online=True, roles=["render"],
                        blender_version="5.0.1", device="CPU")
        db.session.add(worker)
        db.session.commit()
        render(leases.claim_task(worker.id))
        frame = db.session.execute(select(Frame.blob_sha256).filter_by(job_id=job["id"], number=1)).scalar_one()
        db.session.remove()
    bob = Api(app, tokens["other"])
    bobs_scene = bob.upload(sample_scene.read_bytes())
    refused_as_unknown(app, bob, bobs_scene, assets={"plates/frame1.png": frame})
    assert submit(api, scene_sha, assets={"plates/frame1.png": frame}).status_code == 201, "Alice's own frame"
