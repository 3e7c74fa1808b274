"""Network statistics on a real database (SQLite and PostgreSQL), after real flows: the numbers an admin sees,
and the narrower ones an artist or a GPU owner sees."""

from __future__ import annotations

import json
from typing import Any

from framehive.coordinator import config, leases, ledger, stats, transitions
from framehive.coordinator.db import db
from framehive.coordinator.models import Account, Frame, now
from framehive.coordinator.states import FrameState
from framehive.coordinator.verification import leasing
from sqlalchemy import func, select

from tests.coordinator.conftest import Api
from tests.coordinator.kit import answer, noise_png, render, stored_bytes


def account(name: str) -> Account:
    return db.session.execute(select(Account).filter_by(name=name)).scalar_one()


def balance(name: str) -> int:
    return ledger.balance(ledger.account_book(account(name).id))


def network(v: dict[str, Any], app, tokens, scene_sha: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """One passed check (its task's two frames verified, one of them 11 minutes ago), one failed check awaiting
    arbitration, alice's second job queued (two tasks), bob's job paused (three tasks), and the workers' devices:
    renderer OPTIX, verifier and arbiter CPU, sibling offline."""
    alice, bob = Api(app, tokens["user"]), Api(app, tokens["other"])
    good = leases.claim_task(v["renderer"].id)
    render(good)
    answer(leasing.claim_check(v["verifier"]))
    render(leases.claim_task(v["renderer"].id), image=lambda n: noise_png(1000 + n))
    answer(leasing.claim_check(v["verifier"]))  # fails; the arbitration stays queued
    old = db.session.execute(select(Frame).filter_by(task_id=good.id).order_by(Frame.number)).scalars().first()
    old.verified_at = now() - 11 * 60
    v["renderer"].device = "OPTIX"
    v["sibling"].online = False
    db.session.commit()
    second = alice.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "5-6", "chunk": 1}).get_json()["id"]
    bob.upload(stored_bytes(app, scene_sha))  # his own copy: a job names only its account's blobs
    bobs = bob.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-3", "chunk": 1}).get_json()["id"]
    assert bob.post(f"/api/v1/jobs/{bobs}/pause").status_code == 200
    return {"second": second, "bobs": bobs}


def test_the_admin_sees_the_whole_network(v, app, tokens, scene_sha):  # type: ignore[no-untyped-def]
    network(v, app, tokens, scene_sha)
    numbers = stats.overview(None)
    assert json.loads(json.dumps(numbers)) == numbers, "JSON-serialisable as it is"
    assert numbers["scope"] == "network"
    assert numbers["workers_online"] == {"total": 3, "by_device": {"CPU": 2, "OPTIX": 1}}
    assert (numbers["window_minutes"], numbers["frames_verified"]) == (stats.WINDOW_MINUTES, 1)
    assert numbers["frames_per_minute"] == round(1 / stats.WINDOW_MINUTES, 2)
    assert numbers["queue_depth"] == 2, "the paused job's three tasks wait for nobody"
    assert (numbers["jobs_running"], numbers["jobs_queued"], numbers["jobs_paused"]) == (1, 1, 1)
    assert numbers["verification"] == {"passed": 1, "failed": 1, "pass_rate": 0.5}
    accounts = db.session.execute(select(func.count()).select_from(Account)).scalar_one()
    assert numbers["points_in_circulation"] == accounts * config.STARTING_GRANT, "every point ever granted"
    assert [e["kind"] for e in numbers["recent_events"]][:2] == ["job_paused", "job_submitted"]


def test_an_artist_and_a_gpu_owner_see_their_own(v, app, tokens, scene_sha):  # type: ignore[no-untyped-def]
    ids = network(v, app, tokens, scene_sha)
    alice = stats.overview(account("alice"))
    assert alice["scope"] == "alice" and alice["workers_online"] == {"total": 0, "by_device": {}}
    assert (alice["frames_verified"], alice["queue_depth"], alice["jobs_running"], alice["jobs_queued"],
            alice["jobs_paused"]) == (1, 2, 1, 1, 0)
    assert alice["verification"] == {"passed": 1, "failed": 1, "pass_rate": 0.5}
    earned_by_others = (balance("renderer-owner") - 1000) + (balance("verifier-owner") - 1000)
    assert earned_by_others > 0
    assert alice["points_in_circulation"] == 1000 - earned_by_others, "her balance and her live jobs' escrow"
    assert {e["job"] for e in alice["recent_events"]} == {v["job_id"], ids["second"]}

    bob = stats.overview(account("bob"))
    assert (bob["queue_depth"], bob["jobs_paused"], bob["frames_verified"]) == (0, 1, 0)
    assert bob["verification"] == {"passed": 0, "failed": 0, "pass_rate": None}
    assert bob["points_in_circulation"] == 1000

    owner = stats.overview(account("renderer-owner"))
    assert owner["workers_online"] == {"total": 1, "by_device": {"OPTIX": 1}}, "the sibling is offline"
    assert owner["frames_verified"] == 1, "frames its workers rendered"
    assert owner["verification"]["failed"] == 1 and owner["queue_depth"] == 0
    assert owner["points_in_circulation"] == balance("renderer-owner")


def test_the_stats_endpoint_is_scoped_to_the_caller(v, app, tokens, scene_sha):  # type: ignore[no-untyped-def]
    network(v, app, tokens, scene_sha)
    as_admin = Api(app, tokens["admin"]).get("/api/v1/stats").get_json()
    as_bob = Api(app, tokens["other"]).get("/api/v1/stats").get_json()
    assert (as_admin["scope"], as_admin["jobs_paused"], as_admin["queue_depth"]) == ("network", 1, 2)
    assert (as_bob["scope"], as_bob["jobs_paused"], as_bob["queue_depth"], as_bob["jobs_running"]) == ("bob", 1, 0, 0)
    assert Api(app, None).get("/api/v1/stats").status_code == 401


def test_verified_at_follows_the_frame_state(v):  # type: ignore[no-untyped-def]
    v["renderer"].account.trusted = True
    db.session.commit()
    task = leases.claim_task(v["renderer"].id)
    render(task)
    frames = db.session.execute(select(Frame).filter_by(task_id=task.id)).scalars().all()
    assert all(f.state == "verified" and now() - 60 < f.verified_at <= now() for f in frames)
    transitions.move_frame(frames[0], FrameState.QUEUED)  # sent back, as a caught renderer's frames are
    db.session.commit()
    assert frames[0].verified_at is None
    assert stats.frames_verified_since(now() - 60, None) == 1
