"""Worker controls (suspend, unsuspend, unblock): on a real database (SQLite and PostgreSQL) through the real API
and lease paths, and once over the real worker channel (a coordinator process and protocol-level workers)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from framehive.addon.client import Client
from framehive.coordinator import leases, outcomes, worker_control
from framehive.coordinator.db import db
from framehive.coordinator.models import Check, Event, Frame, Job, JobBlock, Task, TaskFailure, Worker
from framehive.coordinator.verification import leasing
from framehive.protocol import messages as m
from sqlalchemy import func, select

from tests.coordinator.conftest import Api
from tests.coordinator.kit import render, store
from tests.farm import Farm, wait_for
from tests.protocol_worker import ProtocolWorker, error_of, png


@pytest.fixture
def admin(app, tokens) -> Api:  # type: ignore[no-untyped-def]
    return Api(app, tokens["admin"])


def control(admin: Api, worker_id: int, action: str, status: int = 200) -> dict[str, Any]:
    response = admin.post(f"/api/v1/admin/workers/{worker_id}/{action}")
    assert response.status_code == status, response.get_json()
    db.session.expire_all()
    return response.get_json()


def unblock(admin: Api, worker_id: int, query: str = "", status: int = 200) -> dict[str, Any]:
    response = admin.client.delete(f"/api/v1/admin/workers/{worker_id}/blocks{query}",
                                   headers={"Authorization": f"Bearer {admin.token}"})
    assert response.status_code == status, response.get_json()
    db.session.expire_all()
    return response.get_json()


def test_a_suspended_worker_hands_its_task_back_without_a_failure_and_gets_no_more(v, admin):  # type: ignore[no-untyped-def]
    renderer = v["renderer"]
    task = leases.claim_task(renderer.id)
    outcomes.frame_rendered(task, task.frame_numbers[0], store(png()), 30)  # one frame already uploaded
    answer = control(admin, renderer.id, "suspend")
    assert answer["suspended"] is True and answer["current_task"] is None
    assert (task.state, task.failures, task.worker_id) == ("queued", 0, None)
    assert db.session.execute(select(func.count()).select_from(TaskFailure)).scalar_one() == 0
    assert db.session.execute(select(Frame.state).where(Frame.task_id == task.id).order_by(Frame.number)
                              ).scalars().all() == ["rendered", "queued"], "what it uploaded is kept"
    assert leases.claim_task(renderer.id) is None
    again = leases.claim_task(v["verifier"].id)
    assert (again.id, again.attempt) == (task.id, 2)
    assert control(admin, renderer.id, "suspend", 409)["error"]["code"] == "already_suspended"


def test_a_suspended_verifier_gives_its_check_back(v, admin):  # type: ignore[no-untyped-def]
    render(leases.claim_task(v["renderer"].id))
    check = leasing.claim_check(v["verifier"])
    assert check is not None
    control(admin, v["verifier"].id, "suspend")
    assert db.session.get(Check, check.id).state == "queued"
    assert leasing.claim_check(v["verifier"]) is None
    assert leasing.claim_check(v["arbiter"]).id == check.id


def test_unsuspend_lets_it_work_again_and_keeps_its_record(v, admin):  # type: ignore[no-untyped-def]
    renderer = v["renderer"]
    assert control(admin, renderer.id, "unsuspend", 409)["error"]["code"] == "not_suspended"
    renderer.times_caught = 1
    db.session.commit()
    control(admin, renderer.id, "suspend")
    assert control(admin, renderer.id, "unsuspend")["suspended"] is False
    assert renderer.times_caught == 1, "its record stands"
    assert leases.claim_task(renderer.id) is not None
    kinds = db.session.execute(select(Event.kind, Event.actor).where(Event.worker_id == renderer.id)
                               .order_by(Event.id)).all()
    assert [tuple(k) for k in kinds] == [("worker_suspended", "root"), ("worker_unsuspended", "root")]


def test_unblock_lets_a_blocklisted_worker_back_on_the_job(v, admin, app, api, scene_sha):  # type: ignore[no-untyped-def]
    app.config.update(FRAMEHIVE_BLOCKLIST_THRESHOLD=1, FRAMEHIVE_MAX_TASK_FAILURES=99)
    renderer = v["renderer"]
    outcomes.record_failure(leases.claim_task(renderer.id), "render_failed", "crash")
    db.session.commit()
    assert leases.claim_task(renderer.id) is None, "blocklisted for its only job"
    other = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "5", "chunk": 1}).get_json()["id"]
    db.session.add(JobBlock(job_id=other, worker_id=renderer.id))
    db.session.commit()
    assert unblock(admin, renderer.id, f"?job={v['job_id']}") == {"worker": renderer.id, "job": v["job_id"],
                                                                "removed": 1}
    task = leases.claim_task(renderer.id)
    assert task is not None and task.job_id == v["job_id"]
    assert unblock(admin, renderer.id)["removed"] == 1, "without ?job: every job's entry"
    assert unblock(admin, renderer.id)["removed"] == 0
    assert unblock(admin, renderer.id, "?job=999999", 404)["error"]["code"] == "not_found"
    assert unblock(admin, renderer.id, "?job=x", 404)["error"]["code"] == "not_found"
    events = db.session.execute(select(Event.message).filter_by(kind="worker_unblocked").order_by(Event.id)
                                ).scalars().all()
    assert events == [f"worker renderer (renderer-owner) unblocked for job {v['job_id']} (by root)",
                      "worker renderer (renderer-owner) unblocked for 1 job(s) (by root)"]


def test_unknown_workers_are_404(v, admin):  # type: ignore[no-untyped-def]
    ghost = 999_999
    for action in ("suspend", "unsuspend"):
        assert control(admin, ghost, action, 404)["error"]["code"] == "not_found"
    assert unblock(admin, ghost, "", 404)["error"]["code"] == "not_found"


def test_the_functions_raise_a_domain_error(v):  # type: ignore[no-untyped-def]
    with pytest.raises(worker_control.WorkerControlError) as info:
        worker_control.unsuspend_worker(v["verifier"])
    assert (info.value.code, info.value.status) == ("not_suspended", 409)
    worker_control.suspend_worker(v["verifier"], by="root")
    assert db.session.get(Worker, v["verifier"].id).suspended
    assert worker_control.unblock_worker(v["verifier"], db.session.get(Job, v["job_id"])) == 0


def test_suspending_a_connected_worker_cancels_its_task_and_another_gets_it(farm: Farm, sample_scene):  # type: ignore[no-untyped-def]
    """Over the real channel: the suspended agent is told to drop its task, the idle one is given it at once,
    and after unsuspending, the first agent is given queued work again."""
    token = farm.token("worker", "owner", trusted=True)
    admin = {"Authorization": f"Bearer {farm.token('admin', 'root')}"}
    user = Client(farm.url, farm.token("user", "artist"))
    first = ProtocolWorker(farm.url, token, "first")
    job = user.submit(sample_scene, frames="1-2", chunk=2)
    assign = first.receive()
    assert isinstance(assign, m.Assign) and assign.job_id == job["id"]
    second = ProtocolWorker(farm.url, token, "second")
    response = requests.post(f"{farm.url}/api/v1/admin/workers/{first.worker_id}/suspend", headers=admin, timeout=30)
    assert response.status_code == 200 and response.json()["suspended"] is True
    cancel = first.receive_alive()
    assert isinstance(cancel, m.Cancel) and cancel.task_id == assign.task_id
    moved = second.receive_alive()
    assert isinstance(moved, m.Assign) and (moved.task_id, moved.attempt) == (assign.task_id, assign.attempt + 1)
    assert error_of(first.upload(assign, 1)) == "lease_lost"
    for frame in (1, 2):
        assert second.upload(moved, frame).status_code == 201
    second.send(m.TaskDone(task_id=moved.task_id, attempt=moved.attempt))
    assert user.wait(job["id"], poll=0.1, timeout=30)["state"] == "completed"
    two = user.submit(sample_scene, frames="3-4", chunk=1)  # two tasks: the second agent takes one
    taken = second.receive_alive()
    assert isinstance(taken, m.Assign) and taken.job_id == two["id"]
    response = requests.post(f"{farm.url}/api/v1/admin/workers/{first.worker_id}/unsuspend", headers=admin,
                             timeout=30)
    assert response.status_code == 200
    given = first.receive_alive()
    assert isinstance(given, m.Assign) and given.job_id == two["id"] and given.task_id != taken.task_id
    second.close()

    def kinds() -> list[str]:
        events = requests.get(f"{farm.url}/api/v1/events", headers=admin, timeout=30).json()["events"]
        return [e["kind"] for e in reversed(events) if e["worker_name"] in ("first", "second")]

    assert wait_for(lambda: "worker_left" in kinds() and kinds(), 30, "the second agent's departure") == [
        "worker_joined", "worker_joined", "worker_suspended", "worker_unsuspended", "worker_left"]
    first.close()


def test_leases_module_refuses_a_suspended_worker(v):  # type: ignore[no-untyped-def]
    v["renderer"].suspended = True
    db.session.commit()
    assert leases.claim_task(v["renderer"].id) is None
    assert db.session.execute(select(Task.state).where(Task.job_id == v["job_id"])).scalars().all() == [
        "queued", "queued"]
