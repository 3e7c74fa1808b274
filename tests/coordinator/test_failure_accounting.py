"""Failure accounting by account (issue 12) and limit failures (issue 11), through the scheduler functions on a
real database (SQLite and PostgreSQL).

The cast: alice's jobs; grief, a griefing account whose agents fail what they get (several names: each name a
new worker); xavier, a second account; olga, an honest owner. Everyone's agents render.
"""

from __future__ import annotations

from typing import Any

import pytest
from framehive.coordinator import leases, outcomes, worker_control
from framehive.coordinator.db import db
from framehive.coordinator.models import (
    Account,
    AccountBlock,
    Event,
    Frame,
    Job,
    LimitHit,
    Task,
    TaskFailure,
    Worker,
    now,
)
from framehive.coordinator.verification import leasing as check_leasing
from sqlalchemy import func, select

from tests.coordinator import kit


@pytest.fixture
def net(app, api, scene_sha):  # type: ignore[no-untyped-def]
    """Two jobs of alice: ``job`` (6 frames, a task each) and ``single`` (one task of 2 frames); agents g1, g2 of
    grief, x of xavier and h of olga, online."""
    app.config.update(FRAMEHIVE_AUDIT_RATE=0.0, FRAMEHIVE_RINGER_RATE=0.0, FRAMEHIVE_SPOT_RATE=0.0)
    job = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-6", "chunk": 1}).get_json()
    single = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-2", "chunk": 2}).get_json()
    with app.app_context():
        ids: dict[str, Any] = {"job": job["id"], "single": single["id"]}
        for account, names in (("grief", ("g1", "g2")), ("xavier", ("x",)), ("olga", ("h",))):
            owner = Account(name=account)
            db.session.add(owner)
            db.session.flush()
            ids[account] = owner.id
            for name in names:
                ids[name] = agent(owner.id, name)
        db.session.commit()
        yield ids
        db.session.remove()


def agent(account_id: int, name: str, online: bool = True) -> int:
    worker = Worker(account_id=account_id, name=name, online=online, roles=["render", "verify"],
                    blender_version="5.0.1", device="CPU")
    db.session.add(worker)
    db.session.flush()
    return worker.id


def offline(*worker_ids: int) -> None:
    for worker_id in worker_ids:
        db.session.get(Worker, worker_id).online = False
    db.session.commit()


def fail(worker_id: int, job_id: int | None = None, limit: str | None = None) -> Task:
    """``worker_id`` claims a task (of ``job_id``, when given, by pausing nothing: it must be the one it gets) and
    fails it."""
    task = leases.claim_task(worker_id)
    assert task is not None, f"worker {worker_id} got nothing"
    assert job_id is None or task.job_id == job_id, (task.job_id, job_id)
    outcomes.record_failure(task, "render_failed", "boom", limit=limit)
    db.session.commit()
    return task


def job(job_id: int) -> Job:
    return db.session.get(Job, job_id, populate_existing=True)


def blocks(job_id: int) -> dict[int, str]:
    return dict(db.session.execute(select(AccountBlock.account_id, AccountBlock.reason).filter_by(job_id=job_id)).all())


def events_of(kind: str) -> list[Event]:
    return list(db.session.execute(select(Event).filter_by(kind=kind).order_by(Event.id)).scalars())


@pytest.fixture
def only_job(net):  # type: ignore[no-untyped-def]
    """``single`` out of the way (cancelled): claims go to ``job``."""
    outcomes.cancel_job(job(net["single"]))
    return net


@pytest.fixture
def only_single(net):  # type: ignore[no-untyped-def]
    outcomes.cancel_job(job(net["job"]))
    return net


# ------------------------------------------------------------------------------------------- one task, one account


def test_a_task_does_not_go_back_to_an_account_that_failed_it(only_job):  # type: ignore[no-untyped-def]
    net = only_job
    first = fail(net["g1"])
    again = leases.claim_task(net["g2"])  # another name of the same account
    assert again.id != first.id, "a new identity of the account that failed the task does not get it"
    assert leases.claim_task(net["h"]).id == first.id, "an agent of another account does"


def test_a_lone_owner_gets_its_task_back_after_a_transient_failure(only_single):  # type: ignore[no-untyped-def]
    """The one-owner network: olga's agent loses its lease once (a dropped connection); nobody else is online,
    so the task goes back to it; it renders it, and nothing counts against olga."""
    net = only_single
    offline(net["g1"], net["g2"], net["x"])
    h = db.session.get(Worker, net["h"])
    h.trust = 8
    db.session.commit()
    task = leases.claim_task(net["h"])
    leases.release_worker(net["h"], "the worker disconnected")
    again = leases.claim_task(net["h"])
    assert (again.id, again.attempt) == (task.id, 2)
    kit.render(again)
    assert again.state == "verifying", "every frame is in; its checks follow"
    assert blocks(net["single"]) == {} and h.trust == 8 and not h.suspended
    assert job(net["single"]).state == "running"


def test_a_lone_owner_failing_again_and_again_is_blocklisted_and_the_job_waits(only_single, app):  # type: ignore[no-untyped-def]
    """Three failures of the only account online: the job is not failed (one account's word), the account is
    blocklisted for it and the job says why it waits; an admin lifting the block lets it run again."""
    net = only_single
    offline(net["g1"], net["g2"], net["x"])
    for _ in range(3):
        fail(net["h"], net["single"])
    assert job(net["single"]).state == "running"
    assert blocks(net["single"]) == {net["olga"]: "failures"}
    assert leases.claim_task(net["h"]) is None
    leases.settle_jobs_nobody_may_run()
    waiting = job(net["single"]).waiting
    assert waiting is not None and "account olga" in waiting and "blocklisted" in waiting, waiting
    with app.test_request_context():
        assert worker_control.unblock_worker(db.session.get(Worker, net["h"]), job(net["single"])) == 1
    assert leases.claim_task(net["h"]).job_id == net["single"]
    leases.settle_jobs_nobody_may_run()
    assert job(net["single"]).waiting is None


# ------------------------------------------------------------------------------------------- a griefing account


def test_a_griefing_account_is_blocklisted_for_the_job_whatever_its_names(only_job):  # type: ignore[no-untyped-def]
    net = only_job
    offline(net["h"], net["x"])
    for worker in (net["g1"], net["g2"]):
        db.session.get(Worker, worker).trust = 8
    db.session.commit()
    g3 = agent(net["grief"], "g3")  # a third name, made mid-attack
    db.session.commit()
    for worker in (net["g1"], net["g2"], g3):
        fail(worker, net["job"])
    assert blocks(net["job"]) == {net["grief"]: "failures"}
    g4 = agent(net["grief"], "g4")  # a name made after the block
    db.session.commit()
    assert all(leases.claim_task(w) is None for w in (net["g1"], net["g2"], g3, g4))
    assert [db.session.get(Worker, w).trust for w in (net["g1"], net["g2"])] == [4, 4], "its trust falls"
    assert job(net["job"]).state == "running", "one account's failures never fail another artist's job"
    blocked = events_of("account_blocklisted")
    assert len(blocked) == 1 and blocked[0].job_id == net["job"] and "grief" in blocked[0].message
    leases.settle_jobs_nobody_may_run()
    reason = job(net["job"]).waiting
    assert reason is not None and "account grief" in reason and "another account" in reason, reason
    assert [e.job_id for e in events_of("job_waiting")] == [net["job"]]
    offline(net["g1"])
    db.session.get(Worker, net["h"]).online = True
    db.session.commit()
    leases.settle_jobs_nobody_may_run()
    assert job(net["job"]).waiting is None, "an agent that may take it is online"
    assert leases.claim_task(net["h"]).job_id == net["job"]


def test_one_accounts_repeated_failures_of_a_task_do_not_fail_the_job(only_single, app):  # type: ignore[no-untyped-def]
    net = only_single
    app.config["FRAMEHIVE_BLOCKLIST_THRESHOLD"] = 99
    offline(net["h"], net["x"])
    for worker in ("g1", "g2", "g1", "g2"):
        task = fail(net[worker], net["single"])
    assert task.failures == 4 and task.state == "queued"
    assert job(net["single"]).state == "running"


def test_a_job_fails_when_agents_of_two_accounts_failed_its_task(only_single):  # type: ignore[no-untyped-def]
    net = only_single
    offline(net["h"])
    fail(net["g1"], net["single"])
    assert leases.claim_task(net["g2"]) is None, "xavier has not failed it: it waits for xavier, not grief"
    fail(net["x"], net["single"])
    fail(net["g2"], net["single"])  # both failed it: it may go back to either
    failed = job(net["single"])
    assert failed.state == "failed"
    assert "failed 3 times on agents of 2 account(s)" in failed.error and "boom" in failed.error, failed.error


def test_failures_on_the_artists_own_account_are_conclusive(app, api, only_single):  # type: ignore[no-untyped-def]
    """An artist whose own agents fail its job harms nobody else: three failures fail it, as they always did."""
    net = only_single
    offline(net["g1"], net["g2"], net["x"], net["h"])
    mine = agent(job(net["single"]).account_id, "alice-box")
    db.session.commit()
    for _ in range(3):
        fail(mine, net["single"])
    assert job(net["single"]).state == "failed"


def test_failing_other_artists_jobs_again_and_again_suspends_the_account(app, api, scene_sha, net):  # type: ignore[no-untyped-def]
    """grief gets blocklisted for two of alice's jobs within the window (threshold 1 here) and rendered nothing
    verified: the account is suspended, every agent it has; the work they hold goes back to the queue."""
    app.config.update(FRAMEHIVE_BLOCKLIST_THRESHOLD=1, FRAMEHIVE_ACCOUNT_SUSPEND_JOBS=2)
    offline(net["h"], net["x"])
    held = leases.claim_task(net["g2"])  # g2 holds a task of the first job meanwhile
    fail(net["g1"], net["job"])
    assert not db.session.get(Account, net["grief"]).suspended
    fail(net["g1"], net["single"])
    account = db.session.get(Account, net["grief"])
    assert account.suspended
    assert all(db.session.get(Worker, w).suspended for w in (net["g1"], net["g2"]))
    assert db.session.get(Task, held.id).state == "queued", "its other agent's lease was taken back"
    assert [e.account_id for e in events_of("account_suspended")] == [net["grief"]]
    with app.test_request_context():
        worker_control.unsuspend_worker(db.session.get(Worker, net["g1"]))
    assert not db.session.get(Account, net["grief"]).suspended, "an admin unsuspending an agent lifts it"


def test_an_account_with_verified_work_in_the_window_is_not_suspended(app, net):  # type: ignore[no-untyped-def]
    app.config.update(FRAMEHIVE_BLOCKLIST_THRESHOLD=1, FRAMEHIVE_ACCOUNT_SUSPEND_JOBS=2)
    offline(net["h"], net["x"])
    frame = db.session.execute(select(Frame).filter_by(job_id=net["job"], number=6)).scalar_one()
    frame.worker_id, frame.verified_at = net["g2"], now()  # a frame of its passed a check an hour ago, say
    db.session.commit()
    fail(net["g1"], net["job"])
    fail(net["g1"], net["single"])
    assert not db.session.get(Account, net["grief"]).suspended


# ------------------------------------------------------------------------------------------- limits


def test_limit_failures_of_two_owners_fail_the_job_and_blame_nobody(only_job):  # type: ignore[no-untyped-def]
    net = only_job
    for worker in (net["g1"], net["h"]):
        db.session.get(Worker, worker).trust = 8
    db.session.commit()
    fail(net["g1"], net["job"], limit="memory")
    assert job(net["job"]).state == "running", "one owner's limit is its machine's, not the scene's"
    fail(net["h"], net["job"], limit="memory")
    failed = job(net["job"])
    assert failed.state == "failed"
    assert failed.error == "the scene exceeds the workers' limits (memory: 2 agent(s) of 2 owner(s))"
    assert blocks(net["job"]) == {}
    assert [db.session.get(Worker, w).trust for w in (net["g1"], net["h"])] == [8, 8]
    reasons = db.session.execute(select(TaskFailure.reason).filter_by(job_id=net["job"])).scalars().all()
    assert reasons == ["limit", "limit"]


def test_one_owners_limit_failures_block_it_without_blame(only_job, app):  # type: ignore[no-untyped-def]
    net = only_job
    app.config.update(FRAMEHIVE_ACCOUNT_SUSPEND_JOBS=1)
    offline(net["h"], net["x"])
    db.session.get(Worker, net["g1"]).trust = 8
    db.session.commit()
    for worker in ("g1", "g2", "g1"):
        fail(net[worker], net["job"], limit="frame_time")
    assert job(net["job"]).state == "running"
    assert blocks(net["job"]) == {net["grief"]: "limits"}, "its machines cannot render this scene"
    assert db.session.get(Worker, net["g1"]).trust == 8
    assert not db.session.get(Account, net["grief"]).suspended, "limit failures are no offence"
    leases.settle_jobs_nobody_may_run()
    assert "hit their limits" in job(net["job"]).waiting


def test_an_unknown_limit_is_an_ordinary_failure(only_job):  # type: ignore[no-untyped-def]
    from framehive.coordinator.failure_accounting import limit_of
    from framehive.protocol import messages as m

    message = m.TaskFailed(task_id=1, attempt=1, error="x")
    assert limit_of(message) is None
    message.limit = "gpu_fan"  # type: ignore[attr-defined]
    assert limit_of(message) is None
    message.limit = "output_size"  # type: ignore[attr-defined]
    assert limit_of(message) == "output_size"


def test_verifiers_of_two_owners_hitting_a_limit_fail_the_job(v):  # type: ignore[no-untyped-def]
    """A check whose verifier hits a limit goes to another account's verifier; a second owner hitting one too
    means the scene exceeds the workers' limits."""
    task = leases.claim_task(v["renderer"].id)
    kit.render(task)
    check = check_leasing.claim_check(v["verifier"])
    assert check is not None
    check_leasing.release(check)
    assert outcomes.check_limit_hit(check, v["verifier"], "memory") == []
    db.session.commit()
    assert v["verifier"].account_id in check.excluded_accounts
    again = check_leasing.claim_check(v["arbiter"])
    assert again is not None and again.id == check.id
    check_leasing.release(again)
    outcomes.check_limit_hit(again, v["arbiter"], "memory")
    db.session.commit()
    failed = db.session.get(Job, v["job_id"], populate_existing=True)
    assert failed.state == "failed" and failed.error.startswith("the scene exceeds the workers' limits (memory")
    hits = db.session.execute(select(func.count()).select_from(LimitHit).filter_by(job_id=v["job_id"])).scalar_one()
    assert hits == 2


def test_a_block_takes_back_what_the_accounts_other_names_hold_on_the_job(only_job, app):  # type: ignore[no-untyped-def]
    """A griefer pipelining names: the leases its other agents took before the block are taken back with it, so
    it fails no more than the threshold."""
    net = only_job
    app.config["FRAMEHIVE_BLOCKLIST_THRESHOLD"] = 2
    offline(net["h"], net["x"])
    held = leases.claim_task(net["g2"])
    fail(net["g1"], net["job"])
    lost = outcomes.record_failure(leases.claim_task(net["g1"]), "render_failed", "boom")
    db.session.commit()
    assert [(x.task_id, x.worker_id) for x in lost] == [(held.id, net["g2"])]
    assert db.session.get(Task, held.id).state == "queued"
    assert leases.held_task(net["g2"], held.id) is None, "its late report will be ignored"


def test_a_done_report_with_missing_frames_that_blocks_the_account_returns_its_other_leases(only_job, app):  # type: ignore[no-untyped-def]
    """The same block, reached by a task_done that names frames never uploaded (a 'bad_result' failure): the leases
    taken back come up to the worker channel, which tells those agents to drop them."""
    net = only_job
    app.config["FRAMEHIVE_BLOCKLIST_THRESHOLD"] = 2
    offline(net["h"], net["x"])
    held = leases.claim_task(net["g2"])
    fail(net["g1"], net["job"])
    done = outcomes.task_done(leases.claim_task(net["g1"]))
    assert done.missing == [3]
    assert [(x.task_id, x.worker_id) for x in done.lost] == [(held.id, net["g2"])]
    assert db.session.get(Task, held.id).state == "queued"


def test_a_limit_failure_reported_after_the_last_frame_came_in_leaves_the_completed_job_alone(only_single):  # type: ignore[no-untyped-def]
    """The artist's own agent uploads every frame of the job's one task, then reports a limit hit (conclusive: its
    own account). Requeueing the task commits it and completes the job; the limit verdict then finds nothing live
    to fail (before: IllegalTransition, completed to failed)."""
    net = only_single
    offline(net["g1"], net["g2"], net["x"], net["h"])
    job(net["single"]).account.trusted = True  # its frames are accepted without checks
    mine = agent(job(net["single"]).account_id, "alice-box")
    db.session.commit()
    task = leases.claim_task(mine)
    for number in task.frame_numbers:
        outcomes.frame_rendered(task, number, kit.store(kit.noise_png(number), job(net["single"]).account_id), 30)
    lost = outcomes.record_failure(task, "render_failed", "out of memory", limit="memory")
    db.session.commit()
    assert lost == []
    assert (job(net["single"]).state, task.state) == ("completed", "done")
    assert db.session.execute(select(func.count()).select_from(LimitHit)).scalar_one() == 1
