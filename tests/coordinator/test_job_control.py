"""Job controls (pause, resume, requeue, priority, cancel) on a real database (SQLite and PostgreSQL), through
the real API and the real lease path (leases.claim_task, which the dispatcher uses).

The ``v`` fixture (conftest.py): alice's 4-frame job in 2 tasks, and agents of three other owners. Where a test
is about leases and not verification, the renderer's owner is trusted: its frames are accepted without checks.
"""

from __future__ import annotations

from typing import Any

import pytest
from framehive.coordinator import job_control, leases, ledger, outcomes
from framehive.coordinator.db import db
from framehive.coordinator.models import Check, Event, Frame, Job, Task, TaskFailure
from framehive.coordinator.payments import job_price
from framehive.coordinator.verification import leasing
from sqlalchemy import func, select

from tests.coordinator.conftest import Api
from tests.coordinator.kit import answer, render


def job_of(v: dict[str, Any]) -> Job:
    db.session.expire_all()
    job = db.session.get(Job, v["job_id"])
    assert job is not None
    return job


def trust_renderer(v: dict[str, Any]) -> None:
    v["renderer"].account.trusted = True
    db.session.commit()


def act(api: Api, v: dict[str, Any], action: str, status: int = 200, **kw: Any) -> dict[str, Any]:
    response = api.post(f"/api/v1/jobs/{v['job_id']}/{action}", **kw)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def alice_balance(v: dict[str, Any]) -> int:
    return ledger.balance(ledger.account_book(job_of(v).account_id))


def escrow(v: dict[str, Any]) -> int:
    return ledger.balance(ledger.escrow_book(v["job_id"]))


def test_a_paused_job_is_leased_to_nobody_and_resuming_makes_it_leasable(v, api):  # type: ignore[no-untyped-def]
    held = escrow(v)
    assert act(api, v, "pause")["state"] == "paused"
    assert leases.claim_task(v["renderer"].id) is None
    assert leases.claim_task(v["verifier"].id) is None
    assert escrow(v) == held, "pausing leaves the escrow alone"
    assert act(api, v, "resume")["state"] == "queued", "never leased: back to queued"
    task = leases.claim_task(v["renderer"].id)
    assert task is not None and task.job_id == v["job_id"]
    assert job_of(v).state == "running"


def test_leases_in_flight_finish_while_paused_and_the_last_one_completes_the_job(v, api):  # type: ignore[no-untyped-def]
    trust_renderer(v)
    first = leases.claim_task(v["renderer"].id)
    act(api, v, "pause")
    render(first)  # the lease it held when the job was paused is honoured to the end
    assert first.state == "done" and job_of(v).state == "paused"
    assert db.session.execute(select(Task.state).where(Task.job_id == v["job_id"], Task.id != first.id)
                              ).scalar_one() == "queued"
    assert leases.claim_task(v["renderer"].id) is None
    assert act(api, v, "resume")["state"] == "running", "it had started: back to running"
    second = leases.claim_task(v["renderer"].id)
    act(api, v, "pause")
    render(second)
    assert job_of(v).state == "completed", "a paused job whose last work finishes has nothing left to wait for"
    assert escrow(v) == 0


def test_controls_are_refused_in_the_wrong_state_and_change_nothing(v, api):  # type: ignore[no-untyped-def]
    events = db.session.execute(select(func.count()).select_from(Event)).scalar_one()
    assert act(api, v, "resume", 409)["error"]["code"] == "not_paused"
    act(api, v, "pause")
    assert act(api, v, "pause", 409)["error"]["code"] == "not_pausable"
    act(api, v, "cancel")
    for action, code in (("pause", "not_pausable"), ("resume", "not_paused"), ("requeue", "job_finished"),
                         ("cancel", "job_finished")):
        assert act(api, v, action, 409)["error"]["code"] == code, action
    assert act(api, v, "priority", 409, json={"priority": 60})["error"]["code"] == "job_finished"
    assert job_of(v).state == "cancelled"
    kinds = db.session.execute(select(Event.kind).order_by(Event.id).offset(events)).scalars().all()
    assert kinds == ["job_paused", "job_cancelled"], "a refused action writes nothing"


def fail_second_task(v: dict[str, Any], app) -> Task:  # type: ignore[no-untyped-def]
    """The renderer finishes the first task; the second fails on every attempt (agents of three accounts: one
    account's failures alone never fail another artist's job) until the job fails."""
    app.config["FRAMEHIVE_BLOCKLIST_THRESHOLD"] = 99
    render(leases.claim_task(v["renderer"].id))
    for name in ("renderer", "verifier", "arbiter"):
        task = leases.claim_task(v[name].id)
        outcomes.record_failure(task, "render_failed", "out of memory")
        db.session.commit()
    assert job_of(v).state == "failed" and task.state == "failed"
    return task


def test_requeue_brings_a_failed_job_back_and_charges_what_it_still_owes(v, api, app):  # type: ignore[no-untyped-def]
    trust_renderer(v)
    failed = fail_second_task(v, app)
    attempts = failed.attempt
    before = alice_balance(v)
    assert escrow(v) == 0, "the failure refunded the escrow"
    answer_ = act(api, v, "requeue")
    assert answer_["requeued"] == 1 and answer_["state"] == "running" and answer_["error"] is None
    assert alice_balance(v) == before - job_price(2), "only the two unverified frames are paid for again"
    assert escrow(v) == job_price(2)
    db.session.expire_all()
    assert (failed.state, failed.failures, failed.attempt) == ("queued", 0, attempts), \
        "a fresh failure budget; the attempt counter (the idempotency key of reports) goes on"
    frames = db.session.execute(select(Frame.state).where(Frame.task_id == failed.id)).scalars().all()
    assert frames == ["queued", "queued"]
    assert db.session.execute(select(func.count()).select_from(TaskFailure)).scalar_one() == 3, "history stays"
    again = leases.claim_task(v["renderer"].id)
    assert again is not None and again.id == failed.id and again.attempt == attempts + 1
    render(again)
    assert job_of(v).state == "completed" and job_of(v).finished_at is not None


def test_requeue_sends_a_task_whose_frames_were_all_in_straight_to_fresh_checks(v, api):  # type: ignore[no-untyped-def]
    first = leases.claim_task(v["renderer"].id)
    render(first)
    assert first.state == "verifying"
    outcomes.fail_job(job_of(v), "an admin's test")
    db.session.commit()
    assert first.state == "failed"
    assert db.session.execute(select(Check.state)).scalars().all() == ["void"]
    assert act(api, v, "requeue")["requeued"] == 2
    db.session.expire_all()
    assert first.state == "verifying", "its frames are kept; only the checks start again"
    check = leasing.claim_check(v["verifier"])
    assert check is not None and check.task_id == first.id and check.key_id is not None
    answer(check)
    assert first.state == "done"
    second = leases.claim_task(v["renderer"].id)
    assert second is not None and second.id != first.id
    render(second)
    answer(leasing.claim_check(v["verifier"]))
    assert job_of(v).state == "completed"


def test_requeue_of_a_failed_job_needs_the_points(v, api, app):  # type: ignore[no-untyped-def]
    trust_renderer(v)
    fail_second_task(v, app)
    book = ledger.account_book(job_of(v).account_id)
    ledger.transfer(book, ledger.NETWORK, ledger.balance(book) - job_price(2) + 1, "stake")
    db.session.commit()
    error = act(api, v, "requeue", 402)["error"]
    assert error["code"] == "insufficient_points"
    assert error["details"] == {"balance": job_price(2) - 1, "price": job_price(2)}
    assert job_of(v).state == "failed"
    assert leases.claim_task(v["renderer"].id) is None


def test_requeue_of_a_live_job_gives_tasks_awaiting_a_retry_a_fresh_budget(v, api, app):  # type: ignore[no-untyped-def]
    app.config["FRAMEHIVE_BLOCKLIST_THRESHOLD"] = 99
    render(leases.claim_task(v["sibling"].id))  # the first task is done: the failures all fall on the second
    for name in ("renderer", "verifier"):
        outcomes.record_failure(leases.claim_task(v[name].id), "render_failed", "driver reset")
        db.session.commit()
    assert act(api, v, "requeue")["requeued"] == 1
    assert act(api, v, "requeue")["requeued"] == 0
    for name in ("arbiter", "renderer"):  # two more: the job would have failed on the first without the requeue
        outcomes.record_failure(leases.claim_task(v[name].id), "render_failed", "driver reset")
        db.session.commit()
    assert job_of(v).state == "running"


def test_priority_decides_which_job_is_leased_first(v, api, scene_sha):  # type: ignore[no-untyped-def]
    later = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "5-6", "chunk": 2}).get_json()
    first = leases.claim_task(v["renderer"].id)
    assert first.job_id == v["job_id"], "equal priorities: the older job first"
    response = api.post(f"/api/v1/jobs/{later['id']}/priority", json={"priority": 90})
    assert response.status_code == 200 and response.get_json()["priority"] == 90
    assert leases.claim_task(v["verifier"].id).job_id == later["id"]
    assert leases.claim_task(v["arbiter"].id).job_id == v["job_id"]


@pytest.mark.parametrize("body", [{"priority": 101}, {"priority": -1}, {"priority": "90"}, {"priority": True},
                                  {"priority": 5.5}, {}, {"priority": 5, "other": 1}, [5]])
def test_bad_priorities_are_refused(v, api, body):  # type: ignore[no-untyped-def]
    error = act(api, v, "priority", 400, json=body)["error"]
    assert error["code"] in ("bad_priority", "bad_request")
    assert job_of(v).priority == 50


def test_an_admin_acts_on_anyones_job_and_is_named(v, app, tokens):  # type: ignore[no-untyped-def]
    admin, bob = Api(app, tokens["admin"]), Api(app, tokens["other"])
    assert act(bob, v, "pause", 404)["error"]["code"] == "not_found"
    act(admin, v, "pause")
    act(admin, v, "priority", json={"priority": 70})
    cancelled = act(admin, v, "cancel")
    assert (cancelled["state"], cancelled["error"]) == ("cancelled", "cancelled by root")
    actions = db.session.execute(select(Event.kind, Event.actor, Event.message).where(Event.actor.is_not(None))
                                 .order_by(Event.id)).all()
    assert [(kind, actor) for kind, actor, _ in actions] == [
        ("job_paused", "root"), ("job_priority", "root"), ("job_cancelled", "root")]
    assert actions[1].message.endswith("priority 50 -> 70 (by root)")


def test_the_functions_raise_a_domain_error(v):  # type: ignore[no-untyped-def]
    job = job_of(v)
    with pytest.raises(job_control.JobControlError) as info:
        job_control.resume_job(job)
    assert (info.value.code, info.value.status) == ("not_paused", 409)
    with pytest.raises(job_control.JobControlError) as info:
        job_control.set_priority(job, 1000)
    assert (info.value.code, info.value.status) == ("bad_priority", 400)
    job_control.pause_job(job)
    job_control.resume_job(job)
    assert job_control.requeue_job(job) == 0
    job_control.cancel_job(job)
    assert job_of(v).state == "cancelled"
