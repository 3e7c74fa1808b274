"""Fixtures for in-process coordinator tests: the real Flask app and SQLite, driven by its test client."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from framehive.coordinator.auth import create_token
from framehive.coordinator.db import db
from framehive.coordinator.models import Account, Worker


class Api:
    """A thin caller around Flask's test client that adds a bearer token."""

    def __init__(self, app, token: str | None) -> None:  # type: ignore[no-untyped-def]
        self.client = app.test_client()
        self.token = token

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    def get(self, path: str, **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path: str, **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.post(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def put(self, path: str, **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.put(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def upload(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        response = self.put(f"/api/v1/blobs/{sha}", data=data)
        assert response.status_code in (200, 201), response.get_json()
        return sha


@pytest.fixture
def tokens(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return {
            "user": create_token("user", "alice"),
            "other": create_token("user", "bob"),
            "worker": create_token("worker", "gpu"),
            "admin": create_token("admin", "root"),
        }


@pytest.fixture
def api(app, tokens):  # type: ignore[no-untyped-def]
    return Api(app, tokens["user"])


@pytest.fixture
def scene_sha(api, sample_scene: Path) -> str:  # type: ignore[no-untyped-def]
    return api.upload(sample_scene.read_bytes())


@pytest.fixture
def v(app, api, scene_sha):  # type: ignore[no-untyped-def]
    """A 4-frame job in 2 tasks, a renderer, a verifier and an arbiter of three owners, and a second
    agent of the renderer's own owner that also verifies. Any owner may arbitrate here (the arbiter's required
    record is tested on its own, in test_verification.py). No spot checks unless a test turns them on
    (test_spot_checks.py), and the sample scene's 64x36 gets no tier 1 (kit.tier1_on makes a job one that does), so
    each task has exactly its region check."""
    app.config.update(FRAMEHIVE_AUDIT_RATE=0.0, FRAMEHIVE_RINGER_RATE=0.0, FRAMEHIVE_ARBITER_MIN_TRUST=0,
                      FRAMEHIVE_SPOT_RATE=0.0)
    job = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-4", "chunk": 2}).get_json()
    with app.app_context():
        workers = {}
        for name in ("renderer", "verifier", "arbiter"):
            account = Account(name=f"{name}-owner")
            db.session.add(account)
            db.session.flush()
            workers[name] = Worker(account_id=account.id, name=name, online=True, roles=["render", "verify"],
                                   blender_version="5.0.1", device="CPU")
        workers["sibling"] = Worker(account_id=workers["renderer"].account_id, name="sibling", online=True,
                                    roles=["render", "verify"], blender_version="5.0.1", device="CPU")
        db.session.add_all(workers.values())
        db.session.commit()
        yield {"job_id": job["id"], **workers}
        db.session.remove()


@pytest.fixture
def referee(v):  # type: ignore[no-untyped-def]
    """A verifier of a fourth owner, online, added to ``v``: a ringer is made only while two other owners than its
    verifier's may take the real check (one for it, one left to arbitrate a dispute of either verdict:
    verification/ringers.py)."""
    v["referee"] = online_agent("referee", "referee-owner")
    return v["referee"]


def online_agent(name: str, owner: str, trusted: bool = False) -> Worker:
    """An online agent that renders and verifies, of a new owner (``trusted``: a trusted node), committed."""
    account = Account(name=owner, trusted=trusted)
    db.session.add(account)
    db.session.flush()
    worker = Worker(account_id=account.id, name=name, online=True, roles=["render", "verify"],
                    blender_version="5.0.1", device="CPU")
    db.session.add(worker)
    db.session.commit()
    return worker
