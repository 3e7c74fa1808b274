"""The collector's rules on a real database (SQLite and PostgreSQL), passes run at chosen times.

The real coordinator's collector thread, its quota and its settings are tested in test_storage_live.py.
"""

from __future__ import annotations

import hashlib

from framehive.coordinator import config, leases, outcomes
from framehive.coordinator.blob_collection import PLACEHOLDER, collect
from framehive.coordinator.db import db
from framehive.coordinator.models import Blob, Check, Event, Frame, Job, now
from framehive.coordinator.verification import leasing, ringers
from sqlalchemy import select

from tests.coordinator.kit import answer, render

from .conftest import Api

YEARS = 10 * 365 * 86400.0
AFTER_GRACE = config.BLOB_GRACE + 1
AFTER_RETENTION = config.JOB_RETENTION + 1


def stored(sha: str) -> bool:
    return db.session.get(Blob, sha) is not None


def finish(v) -> Job:  # type: ignore[no-untyped-def]
    """Render and verify the whole job of the ``v`` fixture."""
    for _ in range(2):
        render(leases.claim_task(v["renderer"].id))
        answer(leasing.claim_check(v["verifier"]))
    job = db.session.get(Job, v["job_id"])
    assert job.state == "completed"
    return job


def test_a_live_jobs_files_are_never_collected_however_old(v, api: Api) -> None:  # type: ignore[no-untyped-def]
    render(leases.claim_task(v["renderer"].id))  # some frames in, the job running
    job = db.session.get(Job, v["job_id"])
    frames = [f.blob_sha256 for f in job.frames if f.blob_sha256]
    assert frames
    done = collect(at=now() + YEARS)
    assert done.jobs == [] and done.blobs == []
    assert all(stored(sha) for sha in [job.scene_sha256, *frames])


def test_an_unused_upload_waits_for_the_grace_period_from_its_last_upload(app, api: Api) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        sha = api.upload(b"an upload nobody submits")
        assert collect(at=now() + AFTER_GRACE - 2).blobs == []
        later = now() + AFTER_GRACE - 2
        api.upload(b"an upload nobody submits")  # sent again: its grace starts again
        assert collect(at=now() + AFTER_GRACE - 2).blobs == []
        assert collect(at=later + AFTER_GRACE + 2).blobs == [sha]
        assert not stored(sha) and not app.extensions["framehive_storage"].exists(sha)


def test_a_finished_job_is_released_after_retention_but_not_with_an_open_check(v, api: Api) -> None:  # type: ignore[no-untyped-def]
    job = finish(v)
    pixels = {f.blob_sha256 for f in job.frames}
    scene = job.scene_sha256
    audit = Check(job_id=job.id, frame_id=job.frames[0].id, kind="audit", region=[0, 0, 8, 8],
                  render_rect=[0, 0, 8, 8], renderer_sha256=job.frames[0].blob_sha256)
    db.session.add(audit)
    db.session.commit()
    assert collect(at=now() + AFTER_RETENTION).jobs == [], "an audit still needs the job's files"
    audit.state = "void"
    db.session.commit()
    assert collect(at=now() + AFTER_RETENTION + AFTER_GRACE).jobs == [job.id]
    db.session.expire_all()
    job = db.session.get(Job, job.id)
    assert job.files_collected_at is not None and job.scene_sha256 == PLACEHOLDER
    assert {f.state for f in job.frames} == {"verified"}, "the frames' states stay"
    assert {f.blob_sha256 for f in job.frames} == {None}
    assert not any(stored(sha) for sha in [*pixels, scene])
    checks = db.session.execute(select(Check).filter_by(job_id=job.id)).scalars().all()
    assert {(c.result_sha256, c.renderer_sha256) for c in checks} == {(None, None)}
    assert db.session.execute(select(Event).filter_by(kind="job_files_collected", job_id=job.id)).scalar_one()
    response = api.get(f"/api/v1/jobs/{job.id}/frames/1")
    assert (response.status_code, response.get_json()["error"]["code"]) == (410, "collected")
    assert api.get(f"/api/v1/jobs/{job.id}").get_json()["files_collected_at"]


def ringer_frames(worker) -> int:  # type: ignore[no-untyped-def]
    query = ringers._ringer_frames(worker)
    return len(db.session.execute(query).scalars().all())


def test_a_released_jobs_frames_are_no_ringers(v) -> None:  # type: ignore[no-untyped-def]
    finish(v)
    assert ringer_frames(v["arbiter"]) == 0, "ringers come from running jobs only (test_ringers.py)"
    collect(at=now() + AFTER_RETENTION)
    assert ringer_frames(v["arbiter"]) == 0, "a ringer needs the frame's pixels and the scene"


def test_a_released_failed_job_cannot_be_requeued(v, api: Api) -> None:  # type: ignore[no-untyped-def]
    job = db.session.get(Job, v["job_id"])
    outcomes.fail_job(job, "made to fail for the test")
    db.session.commit()
    assert collect(at=now() + AFTER_RETENTION).jobs == [job.id]
    response = api.post(f"/api/v1/jobs/{job.id}/requeue")
    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "files_collected")


def test_a_frame_replaced_by_a_re_render_is_collected_the_new_one_kept(v, api: Api) -> None:  # type: ignore[no-untyped-def]
    task = leases.claim_task(v["renderer"].id)
    render(task)
    frame = db.session.execute(select(Frame).filter_by(task_id=task.id)).scalars().first()
    old = frame.blob_sha256
    replacement = hashlib.sha256(b"elsewhere").hexdigest()
    db.session.add(Blob(sha256=replacement, size=1, uploader_id=v["renderer"].account_id))  # its re-render
    for check in db.session.execute(select(Check).filter_by(frame_id=frame.id)).scalars():
        check.renderer_sha256 = replacement  # the checks under way look at the new frame
    frame.blob_sha256 = replacement
    db.session.commit()
    app_storage = api.client.application.extensions["framehive_storage"]
    assert old in collect(at=now() + AFTER_GRACE).blobs and not app_storage.exists(old)
    assert stored(replacement)
