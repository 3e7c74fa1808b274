"""The event log on a real database (SQLite and PostgreSQL): the real flows write their events (a job's life,
cheats and lying verifiers caught, claims, admin actions), and each account reads only its own.

Workers joining and leaving over the real channel: test_worker_control.py (the suspension test)."""

from __future__ import annotations

from typing import Any

from framehive.coordinator import events, leases, outcomes
from framehive.coordinator.db import db
from framehive.coordinator.models import Account, Event, Frame
from framehive.coordinator.verification import leasing
from sqlalchemy import select

from tests.coordinator.conftest import Api
from tests.coordinator.kit import answer, noise_png, render, stored_bytes


def logged(*kinds: str) -> list[tuple[str, int | None, int | None]]:
    """(kind, job id, worker id) of the events of these kinds, oldest first."""
    query = select(Event.kind, Event.job_id, Event.worker_id).order_by(Event.id)
    if kinds:
        query = query.where(Event.kind.in_(kinds))
    return [tuple(row) for row in db.session.execute(query).all()]  # type: ignore[misc]


def account(name: str) -> Account:
    return db.session.execute(select(Account).filter_by(name=name)).scalar_one()


def test_a_jobs_life_is_logged(v, api):  # type: ignore[no-untyped-def]
    v["renderer"].account.trusted = True
    db.session.commit()
    job = v["job_id"]
    render(leases.claim_task(v["renderer"].id))
    assert api.post(f"/api/v1/jobs/{job}/pause").status_code == 200
    assert api.post(f"/api/v1/jobs/{job}/resume").status_code == 200
    render(leases.claim_task(v["renderer"].id))
    assert logged() == [("job_submitted", job, None), ("job_paused", job, None), ("job_resumed", job, None),
                        ("job_completed", job, None)]
    submitted, paused = db.session.execute(select(Event).order_by(Event.id).limit(2)).scalars()
    assert submitted.message == f"job {job} (job) submitted: 4 frames (1-4), priority 50" and submitted.actor is None
    assert paused.message == f"job {job} (job) paused (by alice)" and paused.actor == "alice"


def test_a_failed_and_a_cancelled_job_are_logged(v, api, app, scene_sha):  # type: ignore[no-untyped-def]
    app.config["FRAMEHIVE_BLOCKLIST_THRESHOLD"] = 99
    for name in ("renderer", "verifier", "arbiter"):  # agents of several accounts: the job is at fault
        outcomes.record_failure(leases.claim_task(v[name].id), "render_failed", "GPU fell off the bus")
        db.session.commit()
    other = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1"}).get_json()["id"]
    assert api.post(f"/api/v1/jobs/{other}/cancel").status_code == 200
    failed, cancelled = (db.session.execute(select(Event).filter_by(kind=kind)).scalar_one()
                         for kind in ("job_failed", "job_cancelled"))
    assert failed.job_id == v["job_id"] and "GPU fell off the bus" in failed.message
    assert (cancelled.job_id, cancelled.actor) == (other, "alice")


def test_caught_cheats_lying_verifiers_and_their_suspension_are_logged(v, app):  # type: ignore[no-untyped-def]
    app.config["FRAMEHIVE_SUSPEND_AFTER"] = 1
    job, renderer, verifier = v["job_id"], v["renderer"], v["verifier"]
    render(leases.claim_task(renderer.id), image=lambda n: noise_png(1000 + n))  # faked pixels
    answer(leasing.claim_check(verifier))
    answer(leasing.claim_check(v["arbiter"]))
    render(leases.claim_task(v["sibling"].id))  # honest
    answer(leasing.claim_check(verifier), seed_of_truth=999)  # the verifier lies
    answer(leasing.claim_check(v["arbiter"]))
    assert logged("cheat_caught", "verifier_caught", "worker_suspended") == [
        ("cheat_caught", job, renderer.id), ("worker_suspended", None, renderer.id),
        ("verifier_caught", None, verifier.id), ("worker_suspended", None, verifier.id)]
    cheat = db.session.execute(select(Event).filter_by(kind="cheat_caught")).scalar_one()
    assert cheat.message.startswith(f"renderer renderer caught cheating on job {job}: ")


def test_claims_filed_and_settled_are_logged(v, api):  # type: ignore[no-untyped-def]
    v["arbiter"].account.trusted = True  # a trusted node settles claims
    db.session.commit()
    task = leases.claim_task(v["renderer"].id)
    render(task)
    answer(leasing.claim_check(v["verifier"]))
    frame = db.session.execute(select(Frame).filter_by(task_id=task.id).order_by(Frame.number)).scalars().first()
    response = api.post(f"/api/v1/jobs/{v['job_id']}/claims", json={"frames": str(frame.number), "reason": "smudge"})
    assert response.status_code == 201
    answer(leasing.claim_check(v["arbiter"]))
    filed, settled = db.session.execute(select(Event).where(Event.kind.in_(("claim_filed", "claim_settled")))
                                        .order_by(Event.id)).scalars()
    claim = response.get_json()["id"]
    assert (filed.job_id, filed.message) == (v["job_id"], f"claim {claim} filed on job {v['job_id']} frames "
                                                           f"{frame.number}: smudge")
    assert settled.job_id == v["job_id"] and settled.message.startswith(f"claim {claim} on job {v['job_id']} rejected")


def test_admin_grants_and_tokens_are_logged_with_the_admin(app, tokens):  # type: ignore[no-untyped-def]
    admin = Api(app, tokens["admin"])
    assert admin.post("/api/v1/admin/grants", json={"account": "bob", "amount": 7, "memo": "prize"}).status_code == 201
    token = admin.post("/api/v1/admin/tokens", json={"kind": "user", "name": "carol"}).get_json()
    revoked = admin.client.delete(f"/api/v1/admin/tokens/{token['id']}", headers={"Authorization": f"Bearer "
                                                                                               f"{tokens['admin']}"})
    assert revoked.status_code == 200
    with app.app_context():
        rows = db.session.execute(select(Event.kind, Event.message, Event.actor).order_by(Event.id)).all()
        assert [tuple(r) for r in rows] == [
            ("points_granted", "7 points granted to bob: prize (by root)", "root"),
            ("token_created", f"user token {token['id']} (carol) created (by root)", "root"),
            ("token_revoked", f"user token {token['id']} (carol) revoked (by root)", "root")]
        carol = account("carol")
        assert [e.kind for e in events.recent(account=carol)] == ["token_revoked", "token_created"]


def test_each_account_reads_its_own_events_and_admins_all(v, app, tokens, scene_sha):  # type: ignore[no-untyped-def]
    bob = Api(app, tokens["other"])
    bob.upload(stored_bytes(app, scene_sha))  # his own copy: a job names only its account's blobs
    theirs = bob.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1"})
    assert theirs.status_code == 201, theirs.get_json()
    bobs_job = theirs.get_json()["id"]
    render(leases.claim_task(v["renderer"].id), image=lambda n: noise_png(1000 + n))
    answer(leasing.claim_check(v["verifier"]))
    answer(leasing.claim_check(v["arbiter"]))
    alice, renderer_owner = account("alice"), account("renderer-owner")
    mine = events.recent(account=alice)
    assert {e.job_id for e in mine} == {v["job_id"]} and "cheat_caught" in {e.kind for e in mine}
    assert {e.job_id for e in events.recent(account=account("bob"))} == {bobs_job}
    assert [e.kind for e in events.recent(account=renderer_owner)] == ["cheat_caught"], "its worker's"
    everything = events.recent()
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True), "newest first"
    assert {e.job_id for e in everything if e.job_id is not None} == {v["job_id"], bobs_job}
    assert len(events.recent(limit=1)) == 1

    def read(token: str, query: str = "") -> Any:
        return Api(app, token).get(f"/api/v1/events{query}")

    as_bob = read(tokens["other"]).get_json()["events"]
    assert [e["kind"] for e in as_bob] == ["job_submitted"] and as_bob[0]["job"] == bobs_job
    assert {e["job"] for e in read(tokens["user"]).get_json()["events"]} == {v["job_id"]}
    as_admin = read(tokens["admin"], "?limit=2").get_json()["events"]
    assert [e["id"] for e in as_admin] == [e.id for e in everything[:2]]
    assert set(as_admin[0]) == {"id", "at", "time", "kind", "message", "job", "job_name", "worker", "worker_name",
                                "account", "actor"}
    assert read(tokens["worker"]).get_json()["events"] == [], "the gpu account has no jobs or agents yet"
    for bad in ("?limit=0", "?limit=501"):
        assert read(tokens["admin"], bad).status_code == 400
