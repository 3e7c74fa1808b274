"""The authorization matrix: every REST endpoint × every kind of caller → the status code it must answer.

One world, on SQLite and on PostgreSQL: the user ``alice`` owns a job with verified frames and a claim; the user
``bob`` owns another job, which he paused; the worker account ``worker-lease`` has an agent that holds a task lease
(on bob's job: a lease in flight when the job was paused, which may finish) and a check lease (on alice's job); the
worker account ``worker-idle`` has an agent that holds nothing, is suspended and is blocklisted for alice's job;
``admin`` is an admin; ``none`` sends no token. Each row of ``ROWS`` is one request; its six expected codes are, in
order, the columns of ``CALLERS``.

The rules the matrix encodes: a user sees and controls (pause, resume, requeue, priority, cancel) only its own
jobs, frames and claims, and anyone else's job is a 404 like a job that does not exist; events and statistics are
the caller's own (an admin's: everything); a worker downloads only the files (the scene's .blend and its assets)
of a job whose task or check one of its agents holds; a job names only blobs its account sent (another account's
hash is 400 unknown_blob, the answer for a hash nobody sent: the admin sent alice's tree too, to submit it); a
worker upload names an agent (X-Framehive-Worker): someone else's agent is 403, its own agent without the lease is
409 ``lease_lost`` (the answer an agent whose lease ran out gets, telling it to drop the work); users and the admin
have no agent and name the lease holder's, which is 403; admins see everything, and only admins reach /admin/*; no
token is 401 everywhere but /health and /openapi.json.

The world is built once per database (``Stage``). A write that is expected to succeed may change it, and is
undone after its cell; every other cell (reads, and refused writes) must leave every table and the blob store
exactly as they were, or it fails (and is undone too): each cell sees the same world.
``test_the_matrix_covers_every_documented_route`` fails when the OpenAPI document (which test_openapi.py proves
equal to the app's routes) has an operation without a row here; the WebSocket route has its own tests
(test_worker_channel.py).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases
from framehive.coordinator.auth import create_token, hash_token
from framehive.coordinator.db import db
from framehive.coordinator.models import Account, ApiToken, Frame, JobBlock, Worker
from framehive.coordinator.verification import leasing
from sqlalchemy import select, text

from tests.coordinator.kit import answer, noise_png, render
from tests.farm import make_scene

API = "/api/v1"
WEBSOCKET = (f"{API}/worker/ws", "get")
CALLERS = ("none", "alice", "bob", "worker-lease", "worker-idle", "admin")
ACCOUNTS = {"alice": "alice", "bob": "bob", "worker-lease": "holder-farm", "worker-idle": "idle-farm",
            "admin": "root"}
AGENTS = {"worker-lease": "holder", "worker-idle": "idle"}
ERROR_CODES = {400: "unknown_blob", 401: "missing_token", 403: "forbidden", 404: "not_found", 409: "lease_lost"}
NEW_BLOB = b"a blob uploaded by the authorization matrix"
NEW_BLOB_SHA = hashlib.sha256(NEW_BLOB).hexdigest()
# Each job's scene is a tree with one asset besides its .blend (the coordinator never opens assets).
ASSETS = {"alice": b"alice's texture", "bob": b"bob's texture"}
ASSET_PATH = "textures/checker.png"
UNKNOWN_SHA = "0" * 64
NO_SUCH_JOB = 999_999


@dataclass
class World:
    """What the cells need to know about the world: secrets, ids and prepared upload bodies."""

    tokens: dict[str, str]
    agents: dict[str, int]
    job_a: int
    job_b: int
    scene_a: str
    scene_b: str
    asset_a: str  # a file of alice's scene tree
    asset_b: str  # a file of bob's
    frame_sha: str  # alice's verified frame 1
    done_task: int  # the task that rendered it (done, not leased to anyone)
    task: int  # leased to the holder's agent (bob's job)
    task_attempt: int
    task_frame: int
    frame_png: bytes
    check: str  # the handle of a check leased to the holder's agent (alice's job)
    check_png: bytes
    bob_token_id: int

    def agent(self, caller: str) -> int:
        """The agent a caller's worker upload names: its own, or (having none) the lease holder's."""
        return self.agents.get(caller, self.agents["worker-lease"])


Params = Callable[[World], dict[str, Any]]
Send = Callable[[World, str], dict[str, Any]]
Check = Callable[[Any, World, str], None]


@dataclass(frozen=True)
class Row:
    method: str
    route: str  # the OpenAPI path without /api/v1, e.g. /jobs/{job_id}
    expect: dict[str, int]
    label: str
    params: Params  # the route's path parameters
    query: Params  # the query string
    send: Send | None  # body and extra headers, per caller
    mutates: bool
    check: Check | None

    def url(self, world: World) -> str:
        return API + self.route.format(**self.params(world))

    def name(self) -> str:
        return f"{self.method} {self.route}" + (f" [{self.label}]" if self.label else "")


def row(expect: str, method: str, route: str, *, label: str = "", params: Params | None = None,
        query: Params | None = None, send: Send | None = None, mutates: bool = False, check: Check | None = None
        ) -> Row:
    codes = [int(code) for code in expect.split()]
    assert len(codes) == len(CALLERS), f"{method} {route}: one code per caller {CALLERS}"
    return Row(method, route, dict(zip(CALLERS, codes, strict=True)), label, params or (lambda w: {}),
               query or (lambda w: {}), send, mutates, check)


# --- request bodies ------------------------------------------------------------------------------------------


def own_agent(w: World, caller: str) -> int:
    return w.agent(caller)


def holders_agent(w: World, caller: str) -> int:
    return w.agents["worker-lease"]


def upload(data: Callable[[World], bytes], agent: Callable[[World, str], int]) -> Send:
    """A worker upload: the bytes, their sha256 and the agent the caller speaks for."""
    def send(w: World, caller: str) -> dict[str, Any]:
        payload = data(w)
        return {"data": payload, "headers": {"X-Framehive-Worker": str(agent(w, caller)),
                                             "X-Content-SHA256": hashlib.sha256(payload).hexdigest()}}
    return send


def direct_upload(data: Callable[[World], bytes], agent: Callable[[World, str], int]) -> Send:
    """Asking for (or confirming) a worker's direct upload of these bytes: their size, sha256 and agent."""
    def send(w: World, caller: str) -> dict[str, Any]:
        payload = data(w)
        return {"json": {"size": len(payload)},
                "headers": {"X-Framehive-Worker": str(agent(w, caller)),
                            "X-Content-SHA256": hashlib.sha256(payload).hexdigest()}}
    return send


def body(payload: Any) -> Send:
    return lambda w, caller: {"json": payload}


def job_a(w: World) -> dict[str, Any]:
    return {"job_id": w.job_a}


def alice(w: World) -> dict[str, Any]:
    return {"account": "alice"}


def leased_frame(w: World) -> dict[str, Any]:
    return {"task_id": w.task, "number": w.task_frame}


def leased_attempt(w: World) -> dict[str, Any]:
    return {"attempt": w.task_attempt}


def leased_check(w: World) -> dict[str, Any]:
    return {"handle": w.check}


# --- extra assertions on successful answers (what a caller sees, not only that it may look) -------------------


def sees_own_account(response: Any, w: World, caller: str) -> None:
    assert response.get_json()["account"]["name"] == ACCOUNTS[caller]


def balance_of_caller(response: Any, w: World, caller: str) -> None:
    assert response.get_json()["account"] == ACCOUNTS[caller]


def balance_of_alice(response: Any, w: World, caller: str) -> None:
    assert response.get_json()["account"] == "alice"


def sees_own_jobs(response: Any, w: World, caller: str) -> None:
    ids = {job["id"] for job in response.get_json()["jobs"]}
    expected = {"alice": {w.job_a}, "bob": {w.job_b}, "admin": {w.job_a, w.job_b}}[caller]
    assert ids == expected, f"{caller} must see exactly {expected}"


def sees_own_workers(response: Any, w: World, caller: str) -> None:
    names = {worker["name"] for worker in response.get_json()["workers"]}
    expected = {"alice": set(), "bob": set(), "worker-lease": {"holder"}, "worker-idle": {"idle"},
                "admin": {"holder", "idle", "renderer", "verifier"}}[caller]
    assert names == expected


def is_job(key: str) -> Check:
    def check(response: Any, w: World, caller: str) -> None:
        assert response.get_json()["id"] == getattr(w, key)
    return check


def is_blob(key: str) -> Check:
    def check(response: Any, w: World, caller: str) -> None:
        assert hashlib.sha256(response.get_data()).hexdigest() == getattr(w, key)
    return check


def is_marked_unverified(response: Any, w: World, caller: str) -> None:
    assert response.headers["X-Framehive-Verified"] == "no"
    assert b"tEXtFramehive\0UNVERIFIED: frame 3 of Framehive job" in response.get_data()[:300]
    assert hashlib.sha256(response.get_data()).hexdigest() == response.headers["X-Content-SHA256"]


def is_alices_frame(response: Any, w: World, caller: str) -> None:
    assert response.headers["X-Content-SHA256"] == w.frame_sha
    assert hashlib.sha256(response.get_data()).hexdigest() == w.frame_sha


def only_alice_sees_her_jobs_entries(response: Any, w: World, caller: str) -> None:
    entries = response.get_json()["entries"]
    assert (entries != []) == (caller == "alice"), "another account's ledger must not show alice's job"
    assert all(entry["job"] == w.job_a for entry in entries)


def one_claim(response: Any, w: World, caller: str) -> None:
    assert [claim["frames"] for claim in response.get_json()["claims"]] == ["1"]


def fields(**expected: Any) -> Check:
    """The answer's JSON has these values (a callable value is computed from the world)."""
    def check(response: Any, w: World, caller: str) -> None:
        got = response.get_json()
        for key, value in expected.items():
            assert got[key] == (value(w) if callable(value) else value), (key, got)
    return check


def job_of_caller(response: Any, w: World, caller: str) -> None:
    assert response.get_json()["owner"] == ACCOUNTS[caller]


def sees_own_events(response: Any, w: World, caller: str) -> None:
    """Events of the caller's jobs, agents and account only; alice, bob and the idle agent's owner have some."""
    events = response.get_json()["events"]
    if caller == "admin":
        assert {e["job"] for e in events} >= {w.job_a, w.job_b} and any(e["worker"] for e in events)
        return
    jobs = {"alice": {w.job_a}, "bob": {w.job_b}}.get(caller, set())
    agents = {w.agents[caller]} if caller in w.agents else set()
    assert all(e["job"] in jobs or e["worker"] in agents or e["account"] == ACCOUNTS[caller] for e in events), events
    assert (events != []) == (caller != "worker-lease"), events


def own_statistics(response: Any, w: World, caller: str) -> None:
    got = response.get_json()
    expected = {"alice": ("alice", 1, 0, 0), "bob": ("bob", 0, 1, 0), "worker-lease": ("holder-farm", 0, 0, 1),
                "worker-idle": ("idle-farm", 0, 0, 1), "admin": ("network", 1, 1, 4)}[caller]
    assert (got["scope"], got["jobs_running"], got["jobs_paused"], got["workers_online"]["total"]) == expected


def agent(caller: str) -> Params:
    return lambda w: {"worker_id": w.agents[caller]}


def frame_png(w: World) -> bytes:
    return w.frame_png


def check_png(w: World) -> bytes:
    return w.check_png


# The matrix: the expected status per caller (columns: none, alice, bob, worker-lease, worker-idle, admin), then
# the request.
ROWS = [
    row("200  200  200  200  200  200", "GET", "/health"),
    row("200  200  200  200  200  200", "GET", "/openapi.json"),
    row("401  200  200  200  200  200", "GET", "/me", check=sees_own_account),
    row("401  200  200  200  200  200", "GET", "/pricing"),
    row("401  200  200  200  200  200", "GET", "/balance", check=balance_of_caller),
    row("401  403  403  403  403  200", "GET", "/balance", label="?account=alice", query=alice,
        check=balance_of_alice),
    row("401  200  200  200  200  200", "GET", "/ledger"),
    row("401  403  403  403  403  200", "GET", "/ledger", label="?account=alice", query=alice),
    row("401  200  200  200  200  200", "GET", "/ledger", label="?job=alice's job",
        query=lambda w: {"job": w.job_a}, check=only_alice_sees_her_jobs_entries),
    row("401  200  200  200  200  200", "GET", "/workers", check=sees_own_workers),
    # blobs: users upload; a worker downloads only the scene of a task or check leased to one of its agents
    row("401  200  200  403  403  200", "POST", "/blobs/missing", send=body({"sha256": [UNKNOWN_SHA]})),
    row("401  201  201  403  403  201", "PUT", "/blobs/{sha256}", label="new blob", mutates=True,
        params=lambda w: {"sha256": NEW_BLOB_SHA}, send=lambda w, caller: {"data": NEW_BLOB},
        check=fields(sha256=NEW_BLOB_SHA, existed=False)),
    # direct uploads (object stores only): on local disk the coordinator says {url: null}, and has none to confirm
    row("401  200  200  403  403  200", "POST", "/blobs/{sha256}/uploads", label="new blob, local disk",
        params=lambda w: {"sha256": NEW_BLOB_SHA}, send=body({"size": len(NEW_BLOB)}), check=fields(url=None)),
    row("401  404  404  403  403  404", "POST", "/blobs/{sha256}/uploads/{upload}", label="local disk",
        params=lambda w: {"sha256": NEW_BLOB_SHA, "upload": "h" * 32}, send=body({"size": len(NEW_BLOB)})),
    row("401  403  403  200  403  200", "GET", "/blobs/{sha256}", label="scene under a leased check",
        params=lambda w: {"sha256": w.scene_a}, check=is_blob("scene_a")),
    row("401  403  403  200  403  200", "GET", "/blobs/{sha256}", label="scene of a leased task",
        params=lambda w: {"sha256": w.scene_b}, check=is_blob("scene_b")),
    row("401  403  403  200  403  200", "GET", "/blobs/{sha256}", label="asset under a leased check",
        params=lambda w: {"sha256": w.asset_a}, check=is_blob("asset_a")),
    row("401  403  403  200  403  200", "GET", "/blobs/{sha256}", label="asset of a leased task",
        params=lambda w: {"sha256": w.asset_b}, check=is_blob("asset_b")),
    row("401  403  403  403  403  200", "GET", "/blobs/{sha256}", label="a rendered frame",
        params=lambda w: {"sha256": w.frame_sha}, check=is_blob("frame_sha")),
    row("401  403  403  403  403  404", "GET", "/blobs/{sha256}", label="unknown",
        params=lambda w: {"sha256": UNKNOWN_SHA}),
    # jobs: the owner and admins see a job; anyone else gets the 404 of a job that does not exist
    row("401  200  200  403  403  200", "GET", "/jobs", check=sees_own_jobs),
    row("401  201  201  403  403  201", "POST", "/jobs", label="own scene (bob's for bob)", mutates=True,
        send=lambda w, caller: {"json": {"scene": w.scene_b if caller == "bob" else w.scene_a, "frames": "1-2",
                                         "assets": {ASSET_PATH: w.asset_b if caller == "bob" else w.asset_a}}},
        check=job_of_caller),
    # a blob is used by its uploaders only: another account's hash is a blob nobody uploaded (admins too)
    row("401  400  400  403  403  400", "POST", "/jobs", label="another account's scene (alice's for bob)",
        send=lambda w, caller: {"json": {"scene": w.scene_a if caller == "bob" else w.scene_b, "frames": "1-2"}}),
    row("401  400  400  403  403  400", "POST", "/jobs", label="another account's asset (alice's for bob)",
        send=lambda w, caller: {"json": {"scene": w.scene_b if caller == "bob" else w.scene_a, "frames": "1-2",
                                         "assets": {ASSET_PATH: w.asset_a if caller == "bob" else w.asset_b}}}),
    row("401  200  404  403  403  200", "GET", "/jobs/{job_id}", label="alice's", params=job_a,
        check=is_job("job_a")),
    row("401  404  200  403  403  200", "GET", "/jobs/{job_id}", label="bob's",
        params=lambda w: {"job_id": w.job_b}, check=is_job("job_b")),
    row("401  404  404  403  403  404", "GET", "/jobs/{job_id}", label="no such job",
        params=lambda w: {"job_id": NO_SUCH_JOB}),
    row("401  200  404  403  403  200", "POST", "/jobs/{job_id}/cancel", params=job_a, mutates=True,
        check=fields(id=lambda w: w.job_a, state="cancelled")),
    row("401  200  404  403  403  200", "POST", "/jobs/{job_id}/pause", params=job_a, mutates=True,
        check=fields(id=lambda w: w.job_a, state="paused")),
    row("401  404  200  403  403  200", "POST", "/jobs/{job_id}/resume", label="bob's, paused",
        params=lambda w: {"job_id": w.job_b}, mutates=True, check=fields(id=lambda w: w.job_b, state="running")),
    row("401  200  404  403  403  200", "POST", "/jobs/{job_id}/requeue", params=job_a, mutates=True,
        check=fields(id=lambda w: w.job_a, requeued=0)),
    row("401  200  404  403  403  200", "POST", "/jobs/{job_id}/priority", params=job_a, mutates=True,
        send=body({"priority": 80}), check=fields(id=lambda w: w.job_a, priority=80)),
    row("401  200  404  403  403  200", "GET", "/jobs/{job_id}/frames/{number}", label="verified",
        params=lambda w: {"job_id": w.job_a, "number": 1}, check=is_alices_frame),
    row("401  200  404  403  403  200", "GET", "/jobs/{job_id}/unverified/{number}", label="rendered, awaiting checks",
        params=lambda w: {"job_id": w.job_a, "number": 3}, check=is_marked_unverified),
    row("401  200  404  403  403  200", "GET", "/jobs/{job_id}/claims", params=job_a, check=one_claim),
    row("401  201  404  403  403  201", "POST", "/jobs/{job_id}/claims", params=job_a, mutates=True,
        send=body({"frames": "2", "reason": "frame 2 flickers"}), check=fields(job=lambda w: w.job_a, frames="2")),
    # worker uploads: only for the lease the agent holds; an own agent without it → 409, another's agent → 403
    row("401  403  403  201  409  403", "PUT", "/worker/tasks/{task_id}/frames/{number}", label="own agent",
        params=leased_frame, query=leased_attempt, send=upload(frame_png, own_agent), mutates=True,
        check=fields(accepted=True)),
    row("401  403  403  201  403  403", "PUT", "/worker/tasks/{task_id}/frames/{number}", label="the holder's agent",
        params=leased_frame, query=leased_attempt, send=upload(frame_png, holders_agent), mutates=True,
        check=fields(accepted=True)),
    row("401  403  403  409  409  403", "PUT", "/worker/tasks/{task_id}/frames/{number}",
        label="a frame another agent already rendered", params=lambda w: {"task_id": w.done_task, "number": 1},
        query=lambda w: {"attempt": 1}, send=upload(frame_png, own_agent), mutates=True),
    row("401  403  403  200  409  403", "POST", "/worker/tasks/{task_id}/frames/{number}/uploads",
        label="own agent, local disk", params=leased_frame, query=leased_attempt,
        send=direct_upload(frame_png, own_agent), check=fields(url=None)),
    row("401  403  403  404  409  403", "POST", "/worker/tasks/{task_id}/frames/{number}/uploads/{upload}",
        label="own agent, local disk", params=lambda w: {**leased_frame(w), "upload": "h" * 32},
        query=leased_attempt, send=direct_upload(frame_png, own_agent)),
    row("401  403  403  201  409  403", "PUT", "/worker/checks/{handle}/result", label="own agent",
        params=leased_check, send=upload(check_png, own_agent), mutates=True,
        check=fields(accepted=True)),
    row("401  403  403  201  403  403", "PUT", "/worker/checks/{handle}/result", label="the holder's agent",
        params=leased_check, send=upload(check_png, holders_agent), mutates=True,
        check=fields(accepted=True)),
    row("401  403  403  200  409  403", "POST", "/worker/checks/{handle}/result/uploads",
        label="own agent, local disk", params=leased_check, send=direct_upload(check_png, own_agent),
        check=fields(url=None)),
    row("401  403  403  404  409  403", "POST", "/worker/checks/{handle}/result/uploads/{upload}",
        label="own agent, local disk", params=lambda w: {**leased_check(w), "upload": "h" * 32},
        send=direct_upload(check_png, own_agent)),
    # admin only
    row("401  403  403  403  403  200", "GET", "/admin/tokens"),
    row("401  403  403  403  403  200", "GET", "/admin/tokens", label="?account=alice", query=alice),
    row("401  403  403  403  403  201", "POST", "/admin/tokens", mutates=True,
        send=body({"kind": "user", "name": "carol"}), check=fields(account="carol", kind="user", state="active")),
    row("401  403  403  403  403  200", "DELETE", "/admin/tokens/{token_id}", label="bob's token", mutates=True,
        params=lambda w: {"token_id": w.bob_token_id}, check=fields(account="bob", state="revoked")),
    row("401  403  403  403  403  201", "POST", "/admin/grants", mutates=True,
        send=body({"account": "alice", "amount": 5, "memo": "matrix"}), check=fields(account="alice")),
    row("401  403  403  403  403  200", "POST", "/admin/workers/{worker_id}/suspend", label="the lease holder",
        params=agent("worker-lease"), mutates=True, check=fields(name="holder", suspended=True)),
    row("401  403  403  403  403  200", "POST", "/admin/workers/{worker_id}/unsuspend", label="the idle agent",
        params=agent("worker-idle"), mutates=True, check=fields(name="idle", suspended=False)),
    row("401  403  403  403  403  200", "DELETE", "/admin/workers/{worker_id}/blocks", label="the idle agent",
        params=agent("worker-idle"), mutates=True, check=fields(removed=1)),
    row("401  403  403  403  403  200", "DELETE", "/admin/workers/{worker_id}/blocks", label="?job=alice's",
        params=agent("worker-idle"), query=lambda w: {"job": w.job_a}, mutates=True, check=fields(removed=1)),
    # events and statistics: each caller its own, admins everything
    row("401  200  200  200  200  200", "GET", "/events", check=sees_own_events),
    row("401  200  200  200  200  200", "GET", "/stats", check=own_statistics),
]


def call(app: Flask, world: World, r: Row, caller: str) -> Any:
    kwargs = r.send(world, caller) if r.send else {}
    headers = dict(kwargs.pop("headers", {}))
    if caller != "none":
        headers["Authorization"] = f"Bearer {world.tokens[caller]}"
    return app.test_client().open(r.url(world), method=r.method, query_string=r.query(world), headers=headers,
                                  **kwargs)


def assert_cell(app: Flask, world: World, r: Row, caller: str) -> None:
    response = call(app, world, r, caller)
    expected = r.expect[caller]
    assert response.status_code == expected, (
        f"{r.name()} as {caller}: expected {expected}, got {response.status_code}: {response.get_data(as_text=True)}")
    if expected >= 400:
        assert response.get_json()["error"]["code"] == ERROR_CODES[expected], response.get_json()
    elif r.check is not None:
        r.check(response, world, caller)


def may_change(r: Row, caller: str) -> bool:
    """Only a write that is expected to succeed may change the world; every other cell must leave no trace."""
    return r.mutates and r.expect[caller] < 400


def cells(changing: bool) -> list[Any]:
    return [pytest.param(r, caller, id=f"{r.name()} as {caller}")
            for r in ROWS for caller in CALLERS if may_change(r, caller) == changing]


# --- the world -----------------------------------------------------------------------------------------------


def make_app(data_dir: Path, database_url: str | None) -> Flask:
    from framehive.coordinator import create_app

    config: dict[str, Any] = {"TESTING": True, "FRAMEHIVE_START_REAPER": False, "FRAMEHIVE_AUDIT_RATE": 0.0,
                              "FRAMEHIVE_RINGER_RATE": 0.0, "FRAMEHIVE_SPOT_RATE": 0.0,
                              "FRAMEHIVE_LEASE_TIMEOUT": 3600.0}
    if database_url is not None:
        config["SQLALCHEMY_DATABASE_URI"] = database_url
    return create_app(config, data_dir=data_dir)


def close(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def build_world(app: Flask, scene_a: bytes, scene_b: bytes) -> World:
    with app.app_context():
        tokens = {
            "alice": create_token("user", "alice"),
            "bob": create_token("user", "bob"),
            "worker-lease": create_token("worker", "holder-token", ACCOUNTS["worker-lease"]),
            "worker-idle": create_token("worker", "idle-token", ACCOUNTS["worker-idle"]),
            "admin": create_token("admin", "root"),
        }
        owners = {"holder": ACCOUNTS["worker-lease"], "idle": ACCOUNTS["worker-idle"], "renderer": "render-farm",
                  "verifier": "verify-farm"}
        agents = {}
        for name, owner in owners.items():
            account = db.session.execute(select(Account).filter_by(name=owner)).scalar_one_or_none()
            if account is None:
                account = Account(name=owner)
                db.session.add(account)
                db.session.flush()
            agents[name] = Worker(account_id=account.id, name=name, online=True, roles=["render", "verify"],
                                  blender_version="5.0.1", device="CPU")
        db.session.add_all(agents.values())
        db.session.commit()
        agent_ids = {name: agent.id for name, agent in agents.items()}
        bob_token_id = db.session.execute(
            select(ApiToken.id).filter_by(token_hash=hash_token(tokens["bob"]))).scalar_one()

    client = app.test_client()

    def as_(caller: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[caller]}"}

    shas, assets = {}, {}
    for caller, data in (("alice", scene_a), ("bob", scene_b)):
        for store, blob in ((shas, data), (assets, ASSETS[caller])):
            sha = hashlib.sha256(blob).hexdigest()
            assert client.put(f"{API}/blobs/{sha}", data=blob, headers=as_(caller)).status_code == 201
            store[caller] = sha
    for blob in (scene_a, ASSETS["alice"]):  # the admin sends alice's tree too, to submit it as its own
        sha = hashlib.sha256(blob).hexdigest()
        assert client.put(f"{API}/blobs/{sha}", data=blob, headers=as_("admin")).status_code == 201
    assert shas["alice"] != shas["bob"], "the two scenes must differ"
    job_a = client.post(f"{API}/jobs", json={"scene": shas["alice"], "frames": "1-4", "chunk": 2,
                                             "assets": {ASSET_PATH: assets["alice"]}},
                        headers=as_("alice")).get_json()["id"]
    job_b = client.post(f"{API}/jobs", json={"scene": shas["bob"], "frames": "1-2", "chunk": 2,
                                             "assets": {ASSET_PATH: assets["bob"]}},
                        headers=as_("bob")).get_json()["id"]

    with app.app_context():
        renderer, verifier, holder = (db.session.get(Worker, agent_ids[n]) for n in ("renderer", "verifier", "holder"))
        done = leases.claim_task(renderer.id)
        assert done is not None and done.job_id == job_a
        render(done)
        answer(leasing.claim_check(verifier))
        assert done.state == "done"
        frame = db.session.execute(select(Frame).filter_by(job_id=job_a, number=1)).scalar_one()
        assert frame.state == "verified"
        verifying = leases.claim_task(renderer.id)
        assert verifying is not None and verifying.job_id == job_a
        render(verifying)
        check = leasing.claim_check(holder)
        assert check is not None and check.job_id == job_a and check.state == "leased"
        task = leases.claim_task(holder.id)
        assert task is not None and task.job_id == job_b and task.state == "leased"
        truth = fa.decode(noise_png(check.frame.number), 10**8)
        world = World(
            tokens=tokens, agents={caller: agent_ids[name] for caller, name in AGENTS.items()},
            job_a=job_a, job_b=job_b, scene_a=shas["alice"], scene_b=shas["bob"], asset_a=assets["alice"],
            asset_b=assets["bob"], frame_sha=frame.blob_sha256,
            done_task=done.id, task=task.id, task_attempt=task.attempt, task_frame=task.frame_numbers[0],
            frame_png=noise_png(101), check=check.handle,
            check_png=fa.encode_png(fa.crop(truth, fa.Region.from_list(check.render_rect))),
            bob_token_id=bob_token_id)
        assert done.attempt == 1, "the 'frame already rendered' rows name attempt 1"
    claim = client.post(f"{API}/jobs/{job_a}/claims", json={"frames": "1", "reason": "frame 1 looks wrong"},
                        headers=as_("alice"))
    assert claim.status_code == 201, claim.get_json()
    paused = client.post(f"{API}/jobs/{job_b}/pause", headers=as_("bob"))
    assert paused.status_code == 200 and paused.get_json()["state"] == "paused", paused.get_json()
    idle = world.agents["worker-idle"]
    suspended = client.post(f"{API}/admin/workers/{idle}/suspend", headers=as_("admin"))
    assert suspended.status_code == 200, suspended.get_json()
    with app.app_context():
        db.session.add(JobBlock(job_id=job_a, worker_id=idle))
        db.session.commit()
    return world


State = dict[str, list[tuple[Any, ...]]]


def state(app: Flask) -> State:
    """Every row of every table, and the blob store's files."""
    with app.app_context():
        rows = {table.name: [tuple(row) for row in db.session.execute(
                    table.select().order_by(*table.primary_key.columns)).all()]
                for table in db.metadata.sorted_tables}
        db.session.remove()
    root = app.extensions["framehive_storage"].root
    rows["blob store"] = sorted((str(path.relative_to(root)),) for path in root.rglob("*") if path.is_file())
    return rows


class Stage:
    """The world on one database, and the way back to it after a cell changed it.

    Each table's rows are kept in a ``pristine_<table>`` copy in the same database (``CREATE TABLE … AS SELECT``
    works on SQLite and PostgreSQL alike and keeps the stored values exactly), the blob store in a copied
    directory. Restoring deletes every row and copies the pristine ones back, in foreign-key order.
    """

    def __init__(self, app: Flask, world: World, pristine_blobs: Path) -> None:
        self.app, self.world = app, world
        self.blobs = app.extensions["framehive_storage"].root
        self.pristine_blobs = pristine_blobs
        shutil.copytree(self.blobs, pristine_blobs)
        with app.app_context():
            for table in db.metadata.sorted_tables:
                db.session.execute(text(f"CREATE TABLE {quote('pristine_' + table.name)} AS "
                                        f"SELECT * FROM {quote(table.name)}"))
            db.session.commit()
        self.baseline = state(app)

    def restore_if_changed(self) -> list[str]:
        """What the last cell changed (tables, or the blob store); anything changed is put back."""
        now = state(self.app)
        changed = sorted(name for name in self.baseline if now[name] != self.baseline[name])
        if changed:
            with self.app.app_context():
                tables = db.metadata.sorted_tables
                for table in reversed(tables):
                    db.session.execute(table.delete())
                for table in tables:
                    db.session.execute(text(f"INSERT INTO {quote(table.name)} "
                                            f"SELECT * FROM {quote('pristine_' + table.name)}"))
                db.session.commit()
                db.session.remove()
            if "blob store" in changed:
                shutil.rmtree(self.blobs)
                shutil.copytree(self.pristine_blobs, self.blobs)
            assert state(self.app) == self.baseline, "the world could not be restored"
        return changed


def quote(name: str) -> str:
    return db.engine.dialect.identifier_preparer.quote(name)


@pytest.fixture(scope="module")
def second_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bob's scene: another file than alice's, so that each lease makes a different scene downloadable."""
    return make_scene(tmp_path_factory.mktemp("scenes") / "other.blend", frames=6)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sample_scene: Path,
          second_scene: Path) -> Iterator[Stage]:
    root = tmp_path_factory.mktemp(f"matrix-{request.param}")
    url = request.getfixturevalue("postgres").create_database() if request.param == "postgresql" else None
    app = make_app(root / "data", url)
    try:
        world = build_world(app, sample_scene.read_bytes(), second_scene.read_bytes())
        yield Stage(app, world, root / "pristine-blobs")
    finally:
        close(app)


# --- the tests -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("r", "caller"), cells(changing=False))
def test_cell_that_changes_nothing(stage: Stage, r: Row, caller: str) -> None:
    """Reads, and refused writes: the status code, and no trace in the database or the blob store."""
    try:
        assert_cell(stage.app, stage.world, r, caller)
    finally:
        changed = stage.restore_if_changed()
        assert not changed, f"{r.name()} as {caller} changed {changed}"


@pytest.mark.parametrize(("r", "caller"), cells(changing=True))
def test_cell_that_changes_the_world(stage: Stage, r: Row, caller: str) -> None:
    """Writes that are allowed; the world is put back afterwards, so every cell sees the same one."""
    try:
        assert_cell(stage.app, stage.world, r, caller)
    finally:
        changed = stage.restore_if_changed()
    assert changed, f"{r.name()} as {caller} was accepted but changed nothing"


def test_the_matrix_covers_every_documented_route(stage: Stage) -> None:
    document = stage.app.test_client().get(f"{API}/openapi.json").get_json()
    documented = {(path, method) for path, item in document["paths"].items() for method in item
                  if method in {"get", "post", "put", "delete", "patch"}}
    assert WEBSOCKET in documented
    covered = {(API + r.route, r.method.lower()) for r in ROWS}
    assert documented - {WEBSOCKET} - covered == set(), "endpoints without a row in the authorization matrix"
    assert covered - documented == set(), "rows for endpoints the API does not document"
