"""A verifier's result staged in the object store and refused while it is judged leaves nothing behind (issue 15):
no object under a blob key without its blob row (which nothing, the collector included, could reach), no staged
object. In-process coordinator over moto's S3 server (tests/s3.py), real database (SQLite and PostgreSQL).

Before: the staged result was promoted to its blob key before it was judged, so a tier-1 render that decodes but
differs from the frame in alpha (refused by judging: 400 ``bad_result``) stayed in the store under its blob key,
with no row.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases
from framehive.coordinator.auth import create_token
from framehive.coordinator.db import db
from framehive.coordinator.models import Blob, Check, Job
from framehive.coordinator.verification import leasing

from tests.coordinator.kit import TIER1_SIZE, noise_png, render, tier1_on
from tests.s3 import MotoServer

PREFIX = "blobs"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    root = Path(tempfile.mkdtemp(prefix="framehive-moto-"))
    server = MotoServer(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


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


def direct_upload(app, token: str, check: Check, worker_id: int, data: bytes):  # type: ignore[no-untyped-def]
    """The agent's way with an object store: a presigned PUT, then the confirmation."""
    sha = hashlib.sha256(data).hexdigest()
    headers = {"Authorization": f"Bearer {token}", "X-Framehive-Worker": str(worker_id), "X-Content-SHA256": sha}
    client = app.test_client()
    url = f"/api/v1/worker/checks/{check.handle}/result/uploads"
    begun = client.post(url, json={"size": len(data)}, headers=headers)
    assert begun.status_code == 201, begun.get_json()
    direct = begun.get_json()
    assert requests.put(direct["url"], data=data, headers=direct["headers"], timeout=30).status_code == 200
    return client.post(f"{url}/{direct['upload']}", json={"size": len(data)}, headers=headers)


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
