"""The reaper against whatever changes a lease at the same time (issue 16): under load it raised "only a leased task
can fail" on tasks whose lease had changed since it listed the expired ones. A lost race is now a no-op."""

from __future__ import annotations

import threading
import time

import pytest
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases, outcomes
from framehive.coordinator.db import db
from framehive.coordinator.errors import ApiError
from framehive.coordinator.models import AccountBlock, Check, Frame, LedgerEntry, Task, TaskFailure, now
from framehive.coordinator.verification import decide, leasing
from framehive.coordinator.verification.handles import held_check
from sqlalchemy import func, select, text

from tests.coordinator.kit import noise_png, render, store

WAIT = 60  # seconds: a bound on a wait, never reached when the code is right


def _expire(*tasks: Task) -> None:
    for task in tasks:
        task.lease_expires = now() - 1
    db.session.commit()


def test_a_lease_taken_back_earlier_in_the_same_sweep_is_left_alone(app, v) -> None:  # type: ignore[no-untyped-def]
    """Two agents of one account let their leases on one job expire. The first failure blocklists the account
    (threshold 1), which takes its other lease back; the sweep then reaches that task, no longer leased."""
    app.config["FRAMEHIVE_BLOCKLIST_THRESHOLD"] = 1
    first, second = leases.claim_task(v["renderer"].id), leases.claim_task(v["sibling"].id)
    _expire(first, second)

    lost = leases.expire_leases()

    assert sorted(lease.task_id for lease in lost) == sorted([first.id, second.id]), "both agents are told"
    assert {(t.state, t.worker_id) for t in (first, second)} == {("queued", None)}
    failures = db.session.execute(select(TaskFailure.task_id)).scalars().all()
    assert failures == [first.id], "one failure counted: the second lease was taken back, not failed"
    assert db.session.execute(select(AccountBlock.account_id)).scalars().all() == [v["renderer"].account_id]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_result_that_comes_in_while_the_reaper_sweeps_wins(app, v) -> None:  # type: ignore[no-untyped-def]
    """The renderer's task_done is being handled (its request holds the task) when the reaper finds the lease
    expired. The reaper waits for that transaction and then leaves the finished task alone: no failure counted,
    no lease lost, the frames go to their checks."""
    task = leases.claim_task(v["renderer"].id)
    for frame in db.session.execute(select(Frame).filter_by(task_id=task.id)).scalars():
        outcomes.frame_rendered(task, frame.number, store(noise_png(frame.number), v["renderer"].account_id), 30)
    _expire(task)
    worker_id, task_id = v["renderer"].id, task.id
    held = threading.Event()
    reaped: list[object] = []
    errors: list[BaseException] = []

    def reaper() -> None:
        try:
            held.wait(WAIT)
            with app.app_context():
                reaped.extend(leases.expire_leases())
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            errors.append(exc)

    def renderer_reports_done() -> None:
        try:
            with app.app_context():
                mine = leases.held_task(worker_id, task_id)
                assert mine is not None
                held.set()
                _until_waiting_or_done(reaper_thread)
                outcomes.task_done(mine)
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            errors.append(exc)
            held.set()

    reaper_thread = threading.Thread(target=reaper)
    threads = [reaper_thread, threading.Thread(target=renderer_reports_done)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert errors == [], errors

    db.session.expire_all()
    assert reaped == [], "no agent is told it lost a lease it finished"
    assert db.session.execute(select(func.count()).select_from(TaskFailure)).scalar_one() == 0
    assert db.session.get(Task, task_id).state == "verifying"


def _until_waiting_or_done(thread: threading.Thread) -> None:
    """Until another backend of this database waits for a row lock (the reaper, blocked on the task) or the
    reaper's thread has finished (it did not wait: nothing held the task)."""
    deadline = time.monotonic() + WAIT
    with db.engine.connect() as connection:
        while thread.is_alive():
            waiting = connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")).scalar_one()
            connection.rollback()  # pg_stat_activity is a snapshot kept until the transaction ends
            if waiting:
                return
            assert time.monotonic() < deadline, "the reaper neither waited nor finished"
            time.sleep(0.01)  # polling interval of a deadline loop


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_check_judged_while_the_reaper_expires_its_lease_stays_judged(app, v) -> None:  # type: ignore[no-untyped-def]
    """The verifier's result is being judged (its transaction has written the check) when the reaper, which listed
    the check's lease as expired before, releases it. The reaper waits for the judge and then leaves the check
    alone: it stays done, nobody is told to drop it, and no second verifier can take it and be paid for it again.
    Before, the reaper's write turned the judged check back to queued."""
    render(leases.claim_task(v["renderer"].id))
    check = leasing.claim_check(v["verifier"])
    assert check is not None and check.kind == "verify"
    truth = fa.decode(noise_png(check.frame.number), 10**8)
    result = fa.encode_png(fa.crop(truth, fa.Region.from_list(check.render_rect)))
    check.lease_expires = now() - 1
    db.session.commit()
    check_id, handle, verifier_id = check.id, check.handle or "", v["verifier"].id
    written = threading.Event()
    reaped: list[object] = []
    errors: list[BaseException] = []

    def reaper() -> None:
        try:
            written.wait(WAIT)
            with app.app_context():
                reaped.extend(leasing.expire())
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            errors.append(exc)

    def verifier_uploads() -> None:
        try:
            with app.app_context():
                mine = held_check(verifier_id, handle)
                assert mine is not None
                decide.judge(mine, result)
                db.session.flush()  # the check's row is written (and held) before the reaper looks
                written.set()
                _until_waiting_or_done(reaper_thread)
                decide.apply(mine)
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            errors.append(exc)
            written.set()

    reaper_thread = threading.Thread(target=reaper)
    threads = [reaper_thread, threading.Thread(target=verifier_uploads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert errors == [], errors

    db.session.expire_all()
    judged = db.session.get(Check, check_id)
    assert (judged.state, judged.verdict, judged.verifier_id) == ("done", "pass", verifier_id)
    assert reaped == [], "the verifier is not told it lost a check it answered"
    assert leasing.claim_check(v["arbiter"]) is None, "nothing left to verify"
    paid = db.session.execute(select(LedgerEntry.check_id).where(LedgerEntry.reason == "check")).scalars().all()
    assert paid == [check_id]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_result_for_a_check_the_reaper_is_releasing_is_refused(app, v) -> None:  # type: ignore[no-untyped-def]
    """The other order: the reaper has released the expired check (not committed yet) when the verifier's result
    comes in. Judging waits for the reaper's transaction on the check's row, then finds the check no longer held:
    409 lease_lost, the check queued for another verifier, nobody paid. Before, judging read the old row without
    waiting and wrote its verdict over the release."""
    render(leases.claim_task(v["renderer"].id))
    check = leasing.claim_check(v["verifier"])
    assert check is not None
    truth = fa.decode(noise_png(check.frame.number), 10**8)
    result = fa.encode_png(fa.crop(truth, fa.Region.from_list(check.render_rect)))
    check.lease_expires = now() - 1
    db.session.commit()
    check_id, handle, verifier_id = check.id, check.handle or "", v["verifier"].id
    released = threading.Event()
    refused: list[str] = []
    errors: list[BaseException] = []

    def reaper() -> None:
        try:
            with app.app_context():
                expired = db.session.get(Check, check_id)
                assert expired is not None and leasing.release(expired, expired_before=now())
                released.set()
                _until_waiting_or_done(judge_thread)
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            errors.append(exc)
            released.set()

    def verifier_uploads() -> None:
        try:
            released.wait(WAIT)
            with app.app_context():
                mine = held_check(verifier_id, handle)  # the release is not committed: still its lease here
                assert mine is not None
                try:
                    decide.judge(mine, result)
                    decide.apply(mine)
                    db.session.commit()
                except ApiError as exc:
                    refused.append(exc.code)
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            errors.append(exc)

    judge_thread = threading.Thread(target=verifier_uploads)
    threads = [threading.Thread(target=reaper), judge_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert errors == [], errors

    assert refused == ["lease_lost"]
    db.session.expire_all()
    assert (db.session.get(Check, check_id).state, db.session.get(Check, check_id).verdict) == ("queued", None)
    assert db.session.execute(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.reason == "check")).scalar_one() == 0
