"""A direct upload staged in the object store and then refused leaves nothing behind (issue 15): no object under a
blob key without its blob row (which nothing, the collector included, could reach), no staged object. In-process
coordinator over moto's S3 server (tests/s3.py), real database (SQLite and PostgreSQL).

Before: the staged result was promoted to its blob key before it was judged, so a tier-1 render that decodes but
differs from the frame in alpha (refused by judging: 400 ``bad_result``) stayed in the store under its blob key,
with no row. And a confirmation refused before the staged bytes were read (409 ``lease_lost``: the lease went
between the presigned PUT and the confirmation; 413 over quota) left the staged object for the hourly sweep.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases
from framehive.coordinator.api.decoding import decode_slot
from framehive.coordinator.auth import create_token
from framehive.coordinator.db import db
from framehive.coordinator.models import Blob, Check, Job
from framehive.coordinator.verification import leasing

from tests.coordinator.kit import TIER1_SIZE, noise_png, render, tier1_on
from tests.s3 import MotoServer

PREFIX = "blobs"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer.running() as server:
        yield server


@pytest.fixture
def bucket(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in moto.environment().items():
        monkeypatch.setenv(name, value)
    return moto.create_bucket()


@pytest.fixture
def app(tmp_path: Path, database_url: str, bucket: str):  # type: ignore[no-untyped-def]
    """conftest's in-process app, its blobs in the object store."""
    from framehive.coordinator import create_app

    app = create_app({"TESTING": True, "FRAMEHIVE_START_REAPER": False, "SQLALCHEMY_DATABASE_URI": database_url,
                      "FRAMEHIVE_STORAGE": f"s3://{bucket}/{PREFIX}"}, data_dir=tmp_path / "app")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def stored_keys(moto: MotoServer, bucket: str) -> set[str]:
    return {entry["Key"] for entry in moto.client().list_objects_v2(Bucket=bucket).get("Contents", [])}


def staged_upload(app, url: str, headers: dict[str, str], data: bytes) -> Callable[[], Any]:  # type: ignore[no-untyped-def]
    """The uploader's way with an object store: a presigned PUT from ``url`` (``…/uploads``), done; returns the
    confirmation, to call."""
    client = app.test_client()
    path, _, query = url.partition("?")
    begun = client.post(url, json={"size": len(data)}, headers=headers)
    assert begun.status_code == 201, begun.get_json()
    direct = begun.get_json()
    assert requests.put(direct["url"], data=data, headers=direct["headers"], timeout=30).status_code == 200
    confirm = f"{path}/{direct['upload']}" + (f"?{query}" if query else "")
    return lambda: client.post(confirm, json={"size": len(data)}, headers=headers)


def worker_headers(token: str, worker_id: int, data: bytes) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Framehive-Worker": str(worker_id),
            "X-Content-SHA256": hashlib.sha256(data).hexdigest()}


def staged_result(app, token: str, check: Check, worker_id: int, data: bytes) -> Callable[[], Any]:  # type: ignore[no-untyped-def]
    """A verifier's result staged the agent's way with an object store (a presigned PUT); returns the confirmation."""
    url = f"/api/v1/worker/checks/{check.handle}/result/uploads"
    return staged_upload(app, url, worker_headers(token, worker_id, data), data)


def direct_upload(app, token: str, check: Check, worker_id: int, data: bytes):  # type: ignore[no-untyped-def]
    """A verifier's result the agent's way with an object store: a presigned PUT, then the confirmation."""
    return staged_result(app, token, check, worker_id, data)()


def verifiers_check(v) -> Check:  # type: ignore[no-untyped-def]
    """The renderer's task rendered; the check of it that ``v``'s verifier leases."""
    render(leases.claim_task(v["renderer"].id))
    check = leasing.claim_check(v["verifier"])
    assert check is not None
    return check


def staged(moto: MotoServer, bucket: str) -> set[str]:
    return {key for key in stored_keys(moto, bucket) if "/incoming/" in key}


def test_a_tier1_render_refused_for_its_alpha_leaves_no_object_behind(app, v, moto, bucket):  # type: ignore[no-untyped-def]
    tier1_on(app, db.session.get(Job, v["job_id"]))
    render(leases.claim_task(v["renderer"].id))  # RGB frames
    check = leasing.claim_check(v["verifier"])
    worker = v["verifier"]
    if check is not None and check.kind != "tier1":
        check, worker = leasing.claim_check(v["arbiter"]), v["arbiter"]
    assert check is not None and check.kind == "tier1"
    low = fa.downscale_linear(fa.decode(noise_png(check.frame.number, *TIER1_SIZE), 10**8), 5)  # factor_for
    rgba = np.concatenate([low, np.full(low.shape[:2] + (1,), 255, np.uint8)], axis=2)
    data = fa.encode_png(rgba)  # the right size, decodes, but has an alpha channel the frame has not
    before = stored_keys(moto, bucket)
    token = create_token("worker", f"{worker.name}-agent", worker.account.name)
    response = direct_upload(app, token, check, worker.id, data)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_result", response.get_json()
    assert "alpha" in response.get_json()["error"]["message"]
    sha = hashlib.sha256(data).hexdigest()
    db.session.expire_all()
    assert db.session.get(Blob, sha) is None
    assert stored_keys(moto, bucket) == before, "the refused render is neither kept nor left staged"
    assert db.session.get(Check, check.id).state == "leased", "the verifier may still answer"
    right = fa.encode_png(low)  # then the render it should have sent: judged, and kept by its promotion
    response = direct_upload(app, token, check, worker.id, right)
    assert response.status_code == 201, response.get_json()
    kept = hashlib.sha256(right).hexdigest()
    db.session.expire_all()
    assert db.session.get(Check, check.id).result_sha256 == kept and db.session.get(Blob, kept) is not None
    assert stored_keys(moto, bucket) - before == {f"{PREFIX}/{kept[:2]}/{kept[2:]}"}, "the blob, and nothing staged"


def test_a_frame_confirmed_after_its_lease_went_is_refused_and_not_left_staged(app, v, moto, bucket):  # type: ignore[no-untyped-def]
    task = leases.claim_task(v["renderer"].id)
    assert task is not None
    number = task.frame_numbers[0]
    data = noise_png(number)
    token = create_token("worker", "renderer-agent", v["renderer"].account.name)
    url = f"/api/v1/worker/tasks/{task.id}/frames/{number}/uploads?attempt={task.attempt}"
    confirm = staged_upload(app, url, worker_headers(token, v["renderer"].id, data), data)
    assert staged(moto, bucket), "the frame is staged"
    leases.release_worker(v["renderer"].id, "its connection dropped")  # between the PUT and the confirmation
    refused = confirm()
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "lease_lost"), refused.get_json()
    assert staged(moto, bucket) == set(), "the refused frame's staged object is deleted at once"


def test_a_result_confirmed_after_its_check_went_is_refused_and_not_left_staged(app, v, moto, bucket):  # type: ignore[no-untyped-def]
    check = verifiers_check(v)
    data = noise_png(7, check.render_rect[2], check.render_rect[3])
    token = create_token("worker", "verifier-agent", v["verifier"].account.name)
    confirm = staged_result(app, token, check, v["verifier"].id, data)
    assert staged(moto, bucket), "the result is staged"
    assert leasing.release(check)  # the verifier's lease ran out between the PUT and the confirmation
    db.session.commit()
    refused = confirm()
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "lease_lost"), refused.get_json()
    assert staged(moto, bucket) == set(), "the refused result's staged object is deleted at once"


def test_a_blob_confirmed_over_quota_is_refused_and_not_left_staged(app, tokens, moto, bucket):  # type: ignore[no-untyped-def]
    data = noise_png(3)
    sha = hashlib.sha256(data).hexdigest()
    confirm = staged_upload(app, f"/api/v1/blobs/{sha}/uploads", {"Authorization": f"Bearer {tokens['user']}"}, data)
    assert staged(moto, bucket), "the blob is staged"
    app.config["FRAMEHIVE_STORAGE_QUOTA"] = len(data) - 1  # other uploads filled the account's room meanwhile
    refused = confirm()
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (413, "quota_exceeded"), refused.get_json()
    assert staged(moto, bucket) == set(), "the refused blob's staged object is deleted at once"


def test_a_result_confirmed_while_decodes_are_busy_stays_staged_for_the_retry(app, v, moto, bucket):  # type: ignore[no-untyped-def]
    check = verifiers_check(v)
    job = check.frame.job
    truth = fa.decode(noise_png(check.frame.number, job.resolution_x, job.resolution_y), 10**8)
    data = fa.encode_png(fa.crop(truth, fa.Region.from_list(check.render_rect)))  # an honest render
    token = create_token("worker", "verifier-agent", v["verifier"].account.name)
    confirm = staged_result(app, token, check, v["verifier"].id, data)
    app.config.update(FRAMEHIVE_DECODE_SLOTS=1, FRAMEHIVE_DECODE_WAIT=0.1)
    with decode_slot():  # another upload holds the only decode slot
        busy = confirm()
    assert (busy.status_code, busy.get_json()["error"]["code"]) == (503, "busy"), busy.get_json()
    assert staged(moto, bucket), "a 503 says try again: the agent's retry confirms the same staged object"
    taken = confirm()
    assert (taken.status_code, taken.get_json()) == (201, {"accepted": True}), taken.get_json()
    assert staged(moto, bucket) == set()
