"""Leasing and state transitions, driven through the scheduler functions on a real SQLite database."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from framehive.coordinator import leases, outcomes, worker_channel
from framehive.coordinator.db import db
from framehive.coordinator.dispatch import Connection, dispatcher
from framehive.coordinator.models import Account, AccountBlock, Blob, Check, Frame, Job, Task, TaskFailure, Worker
from framehive.coordinator.states import TASK_TRANSITIONS, IllegalTransition, check_move
from framehive.coordinator.transitions import LostLease
from framehive.coordinator.verification import leasing as check_leasing
from framehive.protocol import messages as m
from framehive.protocol.session import PROTOCOL_VERSION, CoordinatorSession
from sqlalchemy import event, select, update

from tests.coordinator.kit import render


@pytest.fixture
def ctx(app, api, scene_sha):  # type: ignore[no-untyped-def]
    """An app context with a 6-frame job in 3 tasks of 2, two workers of its owner's account (a, b) and one of
    another account (c).

    The owner's account is trusted, so committed tasks are accepted without checks: these tests are about
    leases. Verification has its own tests (test_verification.py), failures by account test_failure_accounting.py.
    """
    job = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-6", "chunk": 2}).get_json()
    with app.app_context():
        account_id = db.session.get(Job, job["id"]).account_id
        db.session.get(Job, job["id"]).account.trusted = True
        for name in ("a", "b"):
            db.session.add(Worker(account_id=account_id, name=name, online=True, blender_version="5.0.1"))
        carol = Account(name="carol")
        db.session.add(carol)
        db.session.flush()
        db.session.add(Worker(account_id=carol.id, name="c", online=True, blender_version="5.0.1"))
        for digit in "012":  # stand-in frame blobs for the frames these tests record
            db.session.add(Blob(sha256=digit * 64, size=1, uploader_id=account_id))  # sent by worker a
        db.session.commit()
        yield {"job_id": job["id"], "a": 1, "b": 2, "c": 3}
        db.session.remove()


def job_of(ctx) -> Job:  # type: ignore[no-untyped-def]
    return db.session.get(Job, ctx["job_id"], populate_existing=True)


def render_all(task: Task) -> None:
    for n in task.frame_numbers:
        outcomes.frame_rendered(task, n, "0" * 64, 30)


def test_claim_leases_in_order_and_starts_the_job(ctx):  # type: ignore[no-untyped-def]
    first = leases.claim_task(ctx["a"])
    second = leases.claim_task(ctx["b"])
    assert (first.frames_spec, first.state, first.attempt, first.worker_id) == ("1-2", "leased", 1, ctx["a"])
    assert second.frames_spec == "3-4"
    assert job_of(ctx).state == "running"
    assert leases.claim_task(ctx["a"]).frames_spec == "5-6"
    assert leases.claim_task(ctx["b"]) is None


def test_a_task_cannot_be_claimed_twice(ctx):  # type: ignore[no-untyped-def]
    task = leases.claim_task(ctx["a"])
    # A second claimer racing on the same row: the compare-and-set finds it no longer queued.
    won = db.session.execute(
        update(Task).where(Task.id == task.id, Task.state == "queued").values(state="leased", worker_id=ctx["b"])
    ).rowcount
    db.session.commit()
    assert won == 0
    assert db.session.get(Task, task.id, populate_existing=True).worker_id == ctx["a"]


def test_only_the_lease_holder_and_attempt_match(ctx):  # type: ignore[no-untyped-def]
    task = leases.claim_task(ctx["a"])
    assert leases.held_task(ctx["a"], task.id, 1) is task
    assert leases.held_task(ctx["b"], task.id, 1) is None
    assert leases.held_task(ctx["a"], task.id, 2) is None


def test_a_heartbeat_renews_and_marks_its_frame_in_two_updates_and_only_for_the_holder(ctx):  # type: ignore[no-untyped-def]
    """A heartbeat naming the frame just started was a locked read of the task, a read of the frame and two writes
    (with the task read again after the commit: 8 statements a frame at 300 agents, issue 16). Now two
    compare-and-set UPDATEs; a worker that does not hold the lease (or names another attempt) writes nothing."""
    task = leases.claim_task(ctx["a"])
    task_id, before = task.id, task.lease_expires
    sent: list[str] = []

    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement.split()[0].upper())

    def frame_states() -> list[str]:
        return list(db.session.execute(select(Frame.state).where(Frame.task_id == task_id).order_by(Frame.number))
                    .scalars())

    event.listen(db.engine, "before_cursor_execute", _count)
    try:
        assert not leases.renew(ctx["b"], task_id, None, 1)  # not its lease
        assert not leases.renew(ctx["a"], task_id, 2, 1)  # not this attempt
        assert frame_states() == ["queued", "queued"]
        sent.clear()
        assert leases.renew(ctx["a"], task_id, 1, 2)
        assert sent == ["UPDATE", "UPDATE"]  # in the transaction the read above began
    finally:
        event.remove(db.engine, "before_cursor_execute", _count)
    assert frame_states() == ["queued", "rendering"]
    assert db.session.get(Task, task_id, populate_existing=True).lease_expires > before
    assert leases.renew(ctx["a"], task_id, None)  # a plain heartbeat: the lease only
    assert frame_states() == ["queued", "rendering"]


def test_done_task_completes_the_job_when_all_tasks_are_done(ctx):  # type: ignore[no-untyped-def]
    for _ in range(3):
        task = leases.claim_task(ctx["a"])
        render_all(task)
        assert outcomes.task_done(task).missing == []
    assert job_of(ctx).state == "completed"
    assert job_of(ctx).finished_at is not None


def test_duplicate_frame_is_harmless(ctx):  # type: ignore[no-untyped-def]
    task = leases.claim_task(ctx["a"])
    assert outcomes.frame_rendered(task, 1, "1" * 64, 30) is True
    assert outcomes.frame_rendered(task, 1, "2" * 64, 30) is False
    frame = next(f for f in job_of(ctx).frames if f.number == 1)
    assert frame.blob_sha256 == "1" * 64


def test_done_with_missing_frames_counts_as_failure_and_requeues(ctx):  # type: ignore[no-untyped-def]
    task = leases.claim_task(ctx["a"])
    outcomes.frame_rendered(task, 1, "1" * 64, 30)
    assert outcomes.task_done(task).missing == [2]
    assert (task.state, task.failures, task.worker_id) == ("queued", 1, None)
    again = leases.claim_task(ctx["c"])  # another account: the owner's failed it, so it would get the next task
    assert again.id == task.id and again.attempt == 2
    from framehive.coordinator.dispatch import assign_message
    assert assign_message(again).frames == [2], "frames already uploaded are kept, not re-rendered"


def test_expired_lease_is_requeued(ctx):  # type: ignore[no-untyped-def]
    task = leases.claim_task(ctx["a"])
    task.lease_expires = 0
    db.session.commit()
    lost = leases.expire_leases()
    assert [(x.task_id, x.worker_id) for x in lost] == [(task.id, ctx["a"])]
    assert task.state == "queued"
    failure = db.session.query(TaskFailure).one()
    assert failure.reason == "lease_lost"


def test_retries_are_bounded_and_fail_the_job(ctx, app):  # type: ignore[no-untyped-def]
    app.config["FRAMEHIVE_BLOCKLIST_THRESHOLD"] = 99
    others = [leases.claim_task(ctx["b"]) for _ in range(2)]  # two tasks in flight, cancelled when the job fails
    for attempt, worker in enumerate(("a", "c", "a")):  # the third goes back to a: c's account failed it too
        task = leases.claim_task(ctx[worker])
        assert task.frames_spec == "5-6", attempt
        lost = outcomes.record_failure(task, "render_failed", "boom")
        db.session.commit()
    job = job_of(ctx)
    assert job.state == "failed" and "boom" in job.error and "2 account(s)" in job.error
    assert [x.task_id for x in lost] == [other.id for other in others]
    assert {t.state for t in job.tasks} == {"failed"}, "a failed job stops its unfinished tasks as failed"
    assert leases.claim_task(ctx["a"]) is None


def test_repeated_failures_blocklist_the_account_for_the_job(ctx, app):  # type: ignore[no-untyped-def]
    app.config["FRAMEHIVE_BLOCKLIST_THRESHOLD"] = 2
    app.config["FRAMEHIVE_MAX_TASK_FAILURES"] = 99
    for _ in range(2):
        outcomes.record_failure(leases.claim_task(ctx["a"]), "render_failed", "driver crash")
        db.session.commit()
    assert db.session.query(AccountBlock).filter_by(job_id=ctx["job_id"]).count() == 1
    assert leases.claim_task(ctx["a"]) is None, "a blocklisted account gets no more of this job"
    assert leases.claim_task(ctx["b"]) is None, "any agent of it"
    assert leases.claim_task(ctx["c"]) is not None


def test_job_fails_when_every_online_worker_is_blocklisted(ctx, app):  # type: ignore[no-untyped-def]
    app.config["FRAMEHIVE_BLOCKLIST_THRESHOLD"] = 1
    app.config["FRAMEHIVE_MAX_TASK_FAILURES"] = 99
    outcomes.record_failure(leases.claim_task(ctx["a"]), "render_failed", "x")
    outcomes.record_failure(leases.claim_task(ctx["c"]), "render_failed", "x")
    db.session.commit()
    leases.settle_jobs_nobody_may_run()
    assert job_of(ctx).state == "failed"
    assert "blocklisted" in job_of(ctx).error


def test_hand_back_requeues_without_a_failure(ctx):  # type: ignore[no-untyped-def]
    task = leases.claim_task(ctx["a"])
    leases.hand_back(task)
    assert (task.state, task.failures) == ("queued", 0)


def test_requeue_of_a_fully_uploaded_task_finishes_it(ctx):  # type: ignore[no-untyped-def]
    task = leases.claim_task(ctx["a"])
    render_all(task)
    leases.release_worker(ctx["a"], "disconnected")
    assert task.state == "done"


def test_cancel_stops_queued_and_leased_tasks(ctx):  # type: ignore[no-untyped-def]
    task = leases.claim_task(ctx["a"])
    outcomes.frame_rendered(task, 1, "1" * 64, 30)
    lost = outcomes.cancel_job(job_of(ctx))
    job = job_of(ctx)
    assert job.state == "cancelled"
    assert [x.task_id for x in lost] == [task.id]
    assert {t.state for t in job.tasks} == {"cancelled"}
    assert [f.state for f in job.frames] == ["rendered"] + ["cancelled"] * 5
    with pytest.raises(IllegalTransition):
        outcomes.cancel_job(job)


def test_transition_table_rejects_leaving_final_states():
    with pytest.raises(IllegalTransition):
        check_move(TASK_TRANSITIONS, "done", "leased")
    with pytest.raises(IllegalTransition):
        check_move(TASK_TRANSITIONS, "cancelled", "queued")
    with pytest.raises(IllegalTransition):
        check_move(TASK_TRANSITIONS, "queued", "done")
    check_move(TASK_TRANSITIONS, "leased", "queued")


def test_workers_not_heard_from_go_offline(ctx):  # type: ignore[no-untyped-def]
    a = db.session.get(Worker, ctx["a"])
    a.last_seen = 0
    db.session.get(Worker, ctx["b"]).last_seen = 10**12
    db.session.commit()
    assert leases.mark_silent_workers_offline() == 1
    assert (a.online, db.session.get(Worker, ctx["b"]).online) == (False, True)


# ------------------------------------------------------------------------------------------ the dispatcher's kick


class Socket:
    """An agent's end of its WebSocket, as far as the dispatcher uses it: keeps the messages sent to it."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))


def connect(ctx, *names: str) -> list[Connection]:  # type: ignore[no-untyped-def]
    """Register an idle connection for each named worker of ``ctx``, signed on as the dispatcher expects."""
    conns = []
    for name in names:
        worker = db.session.get(Worker, ctx[name])
        worker.connected_at = 1.0
        conn = Connection(worker.id, name, Socket(), connected_at=1.0)
        dispatcher().register(conn)
        conns.append(conn)
    db.session.commit()
    return conns


def statements_of_a_kick() -> int:
    count = 0

    def _count(*_args: Any) -> None:
        nonlocal count
        count += 1

    event.listen(db.engine, "before_cursor_execute", _count)
    try:
        dispatcher().kick()
    finally:
        event.remove(db.engine, "before_cursor_execute", _count)
    return count


def test_a_kick_leases_each_queued_task_once(ctx):  # type: ignore[no-untyped-def]
    conns = connect(ctx, "a", "b", "c")
    dispatcher().kick()
    dispatcher().kick()  # nothing left: nobody gets a second order
    assert [len(conn.ws.sent) for conn in conns] == [1, 1, 1]  # type: ignore[attr-defined]
    assigned = {conn.ws.sent[0]["task_id"]: conn.worker_id for conn in conns}  # type: ignore[attr-defined]
    assert {conn.current.id for conn in conns if conn.current} == set(assigned)
    leased = {task_id: worker_id for task_id, worker_id in
              db.session.execute(select(Task.id, Task.worker_id).where(Task.state == "leased"))}
    assert leased == assigned and len(assigned) == 3


def test_a_failed_pass_ends_no_session_and_the_next_kick_leases(ctx, monkeypatch):  # type: ignore[no-untyped-def]
    """A kick runs in the thread of whichever agent's message caused it: a pass that raised (seen in a CI run: a
    lease given back twice) ended that agent's session and cost it its own lease. Now the pass is logged and the
    next kick does its work."""
    conns = connect(ctx, "a")
    real = leases.queued_work
    calls = 0

    def fails_once() -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a pass that goes wrong")
        return real()

    monkeypatch.setattr(leases, "queued_work", fails_once)
    dispatcher().kick()  # must not raise into its caller
    assert conns[0].ws.sent == []  # type: ignore[attr-defined]
    dispatcher().kick()
    assert [message["type"] for message in conns[0].ws.sent] == ["assign"]  # type: ignore[attr-defined]


class Vanishing(Socket):
    """A socket that dies as its order is sent, its connection's end having already taken the lease back (the
    connection's own thread, on the agent's disconnect): the CI race behind the pass that raised."""

    def __init__(self, worker_id: int) -> None:
        super().__init__()
        self.worker_id = worker_id

    def send(self, text: str) -> None:
        leases.release_worker(self.worker_id, "connection lost")
        raise ConnectionError("the agent is gone")


def test_work_whose_agent_vanished_and_released_it_is_not_given_back_twice(ctx, caplog):  # type: ignore[no-untyped-def]
    conn = connect(ctx, "a")[0]
    conn.ws = Vanishing(ctx["a"])
    dispatcher().kick()
    assert "a dispatch pass failed" not in caplog.text
    task = db.session.execute(select(Task).where(Task.failures == 1)).scalar_one()
    assert (task.state, task.worker_id) == ("queued", None)  # lost once, by its end; the pass changed nothing more


def test_a_kick_with_nothing_queued_asks_no_agent(ctx):  # type: ignore[no-untyped-def]
    """Every task is leased (to c): a kick costs the same with one idle agent as with two, instead of a claim (a
    write transaction on SQLite) per idle agent."""
    while leases.claim_task(ctx["c"]) is not None:
        pass
    connect(ctx, "a")
    one_idle = statements_of_a_kick()
    connect(ctx, "b")
    assert statements_of_a_kick() == one_idle
    assert db.session.execute(select(Task.id).where(Task.state == "queued")).first() is None


def test_kicks_that_wait_for_a_pass_are_served_by_it(ctx, app, monkeypatch):  # type: ignore[no-untyped-def]
    """Three handler threads kick while a pass runs: the next pass began after all three were asked for, so it
    does their work and the two others return without a pass of their own. The idle agent is paused, so every
    pass asks it and gives it nothing."""
    asked_agent = []
    kicker = dispatcher()
    give_work = kicker._give_work
    monkeypatch.setattr(kicker, "_give_work", lambda *args, **kwargs: asked_agent.append(1) or give_work(*args,
                                                                                                       **kwargs))
    connect(ctx, "a")
    db.session.get(Worker, ctx["a"]).pause_reason = "its owner's schedule"
    db.session.commit()
    asked = kicker._requested

    def kick() -> None:
        with app.app_context():
            kicker.kick()
            db.session.remove()

    threads = [threading.Thread(target=kick) for _ in range(3)]
    with kicker._dispatching:  # the pass running meanwhile
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while kicker._requested < asked + 3:
            assert time.monotonic() < deadline, "the kicks were not asked for"
            time.sleep(0.01)  # polling interval of a deadline loop: each kick is numbered before it waits
    for thread in threads:
        thread.join(30)
    assert len(asked_agent) == 1
    assert db.session.execute(select(Task.id).where(Task.state == "leased")).first() is None


def test_a_pass_leases_to_its_idle_agents_in_one_write_transaction(ctx):  # type: ignore[no-untyped-def]
    """Three idle agents, three queued tasks: on SQLite the pass takes the write lock once for all three (it took
    a turn per claim, each behind every other writer, issue 16), and each agent still gets its own task."""
    conns = connect(ctx, "a", "b", "c")
    begins: list[str] = []

    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.upper().startswith("BEGIN"):
            begins.append(statement.upper())

    event.listen(db.engine, "before_cursor_execute", _count)
    try:
        dispatcher().kick()
    finally:
        event.remove(db.engine, "before_cursor_execute", _count)
    assert sorted(conn.ws.sent[0]["task_id"] for conn in conns) == [1, 2, 3]  # type: ignore[attr-defined]
    if db.engine.dialect.name == "sqlite":
        assert begins.count("BEGIN IMMEDIATE") == 1, begins


def test_a_pass_gives_a_check_only_to_an_agent_that_may_take_it(v):  # type: ignore[no-untyped-def]
    """One pass, one transaction: the renderer's sibling (its owner's other agent), idle first, never gets the
    renderer's check; it gets the other task, and the verifier, next, gets the check."""
    render(leases.claim_task(v["renderer"].id))
    (check,) = db.session.execute(select(Check)).scalars().all()
    other = db.session.execute(select(Task).where(Task.state == "queued")).scalar_one()
    sibling, verifier = (Connection(v[name].id, name, Socket(), connected_at=1.0) for name in ("sibling", "verifier"))
    for conn in (sibling, verifier):
        db.session.get(Worker, conn.worker_id).connected_at = 1.0
        dispatcher().register(conn)
    db.session.commit()
    dispatcher().kick()
    to_sibling, to_verifier = sibling.ws.sent, verifier.ws.sent  # type: ignore[attr-defined]
    assert [(m["type"], m.get("task_id")) for m in to_sibling] == [("assign", other.id)]
    assert [m["type"] for m in to_verifier] == ["verify"]
    assert db.session.get(Check, check.id, populate_existing=True).verifier_id == v["verifier"].id


def test_a_check_heartbeat_renews_only_the_verifier_s_current_lease(v):  # type: ignore[no-untyped-def]
    """A check's heartbeat is one compare-and-set UPDATE: its verifier, under the handle of this lease, renews it;
    another agent, or an old handle, writes nothing and is told it lost the check."""
    render(leases.claim_task(v["renderer"].id))
    check = check_leasing.claim_check(v["verifier"])
    assert check is not None
    check_id, handle, before = check.id, check.handle, check.lease_expires
    assert not check_leasing.renew(v["arbiter"].id, handle)
    assert not check_leasing.renew(v["verifier"].id, "x" * 22)
    assert db.session.get(Check, check_id, populate_existing=True).lease_expires == before
    assert check_leasing.renew(v["verifier"].id, handle)
    assert db.session.get(Check, check_id, populate_existing=True).lease_expires > before
    assert check_leasing.release(db.session.get(Check, check_id))
    db.session.commit()
    assert not check_leasing.renew(v["verifier"].id, handle)  # released: the handle names nothing held


def run_out(model: type[Task] | type[Check], ident: int) -> None:
    """The lease of that task or check ran out long ago."""
    db.session.execute(update(model).where(model.id == ident).values(lease_expires=0))
    db.session.commit()


def test_the_sweep_renews_a_lease_that_ran_out_under_an_agent_still_at_work(ctx, app):  # type: ignore[no-untyped-def]
    """A safety net for an upkeep renewal that comes late (its write waits for SQLite's lock): the sweep renews a
    lease whose agent is connected here, has that work in hand and was heard within a lease; an agent not heard for
    a lease loses it as before."""
    (conn,) = connect(ctx, "a")
    dispatcher().kick()
    assert conn.current is not None and conn.current.kind == "task"
    task_id = conn.current.id
    run_out(Task, task_id)
    conn.heard = time.monotonic()
    assert leases.expire_leases(dispatcher().still_working) == []
    task = db.session.get(Task, task_id, populate_existing=True)
    assert (task.state, task.worker_id) == ("leased", ctx["a"]) and task.lease_expires > time.time()
    assert leases.expire_leases() == []  # nothing ran out any more

    run_out(Task, task_id)
    conn.heard = time.monotonic() - 2 * float(app.config["FRAMEHIVE_LEASE_TIMEOUT"])  # silent for two leases
    lost = leases.expire_leases(dispatcher().still_working)
    assert [(x.task_id, x.worker_id) for x in lost] == [(task_id, ctx["a"])]
    assert db.session.get(Task, task_id, populate_existing=True).state == "queued"


def test_the_sweep_renews_a_check_lease_only_for_the_verifier_at_work_on_it(v, app):  # type: ignore[no-untyped-def]
    """The same for a check: renewed while its verifier, connected here, has it in hand and is heard; taken back
    once the verifier holds other work (the check's lease is then stale) or is silent."""
    render(leases.claim_task(v["renderer"].id))
    verifier = Connection(v["verifier"].id, "verifier", Socket(), connected_at=1.0)
    db.session.get(Worker, verifier.worker_id).connected_at = 1.0
    dispatcher().register(verifier)
    db.session.commit()
    dispatcher().kick()
    assert verifier.current is not None and verifier.current.kind == "check"
    check_id = verifier.current.id
    run_out(Check, check_id)
    verifier.heard = time.monotonic()
    assert check_leasing.expire(dispatcher().still_working) == []
    check = db.session.get(Check, check_id, populate_existing=True)
    assert check.state == "leased" and check.lease_expires > time.time()

    run_out(Check, check_id)
    verifier.current = None  # the connection no longer records this check
    lost = check_leasing.expire(dispatcher().still_working)
    assert [(x.check_id, x.worker_id) for x in lost] == [(check_id, v["verifier"].id)]
    assert db.session.get(Check, check_id, populate_existing=True).state == "queued"


def test_a_message_that_waited_releases_only_the_work_it_was_read_against(ctx):  # type: ignore[no-untyped-def]
    """A task_done read while the agent held task 1 waits for a work slot; meanwhile the connection's record of task
    1 is dropped and task 2 is sent. Applied then, the message ends task 1 only: the record of task 2 stays, so the
    agent, at work on task 2, is sent nothing more. (It cleared the record of task 2, the next pass sent task 3,
    and task 2's lease ran out under the agent: at 1,000 agents, 2-5 checks a run, issue 16.)"""
    (conn,) = connect(ctx, "a")
    dispatcher().kick()
    first = conn.current
    assert first is not None and first.kind == "task"
    session = CoordinatorSession()
    session.hello(m.encode(m.Hello(protocol=PROTOCOL_VERSION, name="a", agent_version="test", blender_version="5.0.1",
                                   device="CPU", devices=[], threads=1)))
    session.welcome(ctx["a"], 5, 30)
    step = session.receive(m.TaskDone(task_id=first.id, attempt=first.attempt), conn.current)  # read now
    assert step.release
    dispatcher().drop_leases([LostLease(first.id, ctx["a"], "the record dropped meanwhile")])
    dispatcher().kick()
    second = conn.current
    assert second is not None and second.id != first.id
    worker_channel._apply(session, conn, step, first)  # applied once it got its slot
    assert conn.current is second
    leased = db.session.execute(select(Task.id).where(Task.state == "leased", Task.worker_id == ctx["a"])).scalars()
    assert list(leased) == [second.id]  # task 1 ended (a failure: no frames), no third task sent
    assert [sent["task_id"] for sent in conn.ws.sent if sent["type"] == "assign"] == [first.id, second.id]  # type: ignore[attr-defined]
