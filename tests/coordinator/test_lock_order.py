"""Concurrent transactions on a real PostgreSQL must not deadlock on a job's row (issue 16).

Two verifiers' results for the same job are judged at the same time by two request threads, as the check upload
endpoint does (judge, then apply, one transaction). Judging updates the check row twice in its transaction, and
the second update's foreign key checks take a KEY SHARE lock on the job row; paying the verifier then locks the
job row to spend from its escrow. With ``FOR UPDATE`` (which conflicts with KEY SHARE) each transaction waited
for the other: "deadlock detected" at 10 agents in benchmarks/fleet.py. PostgreSQL only: SQLite's transactions
are serial (BEGIN IMMEDIATE), there is nothing to interleave.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases
from framehive.coordinator.db import db
from framehive.coordinator.errors import ApiError
from framehive.coordinator.models import Check, LedgerEntry, Task, Worker
from framehive.coordinator.verification import decide, leasing
from sqlalchemy import select, text

from tests.coordinator.kit import answer, noise_png, render

WAIT = 60  # seconds: a bound on a barrier or a join, never reached when the code is right


@pytest.fixture
def database_url(postgres) -> str:  # type: ignore[no-untyped-def]
    return postgres.create_database()


def _true_result(check: Check) -> bytes:
    truth = fa.decode(noise_png(check.frame.number), 10**8)
    return fa.encode_png(fa.crop(truth, fa.Region.from_list(check.render_rect)))


def test_two_check_results_of_one_job_at_once_do_not_deadlock(app, v) -> None:  # type: ignore[no-untyped-def]
    for worker in (v["renderer"], v["sibling"]):  # one task each: two region checks of one job
        render(leases.claim_task(worker.id))
    checks = [leasing.claim_check(v["verifier"]), leasing.claim_check(v["arbiter"])]
    assert all(c is not None and c.kind == "verify" for c in checks)
    ids = [c.id for c in checks]
    results = {c.id: _true_result(c) for c in checks}
    db.session.commit()

    errors = _uploads_queued_on_the_job(app, v["job_id"], results)

    assert errors == {}, errors
    db.session.expire_all()
    assert [db.session.get(Check, i).verdict for i in ids] == ["pass", "pass"]
    paid = set(db.session.execute(select(LedgerEntry.check_id).where(LedgerEntry.reason == "check")).scalars())
    assert paid == set(ids), "each verifier paid once"
    states: list[Any] = db.session.execute(select(Task.state).where(Task.job_id == v["job_id"])).scalars().all()
    assert states == ["done", "done"]


def test_a_check_judged_while_its_renderer_is_caught_loses_its_lease(app, v) -> None:  # type: ignore[no-untyped-def]
    """An arbitration catches the renderer (which voids its other pending checks of the job) while a verifier's
    result for one of those checks is being judged, the arbitration first. Before, the verifier's transaction wrote
    its check and then waited for the job, while the arbitration held the job and waited to void that check: a
    deadlock. Now the job is locked before the check is written, and a check voided meanwhile answers 409
    lease_lost."""
    render(leases.claim_task(v["renderer"].id), image=lambda n: noise_png(1000 + n))  # faked pixels
    render(leases.claim_task(v["renderer"].id))  # honest pixels: its check passes
    faked = leasing.claim_check(v["verifier"])
    answer(faked)  # the verifier renders the truth: fail, to arbitration
    honest = leasing.claim_check(v["verifier"])
    arbitration = leasing.claim_check(v["arbiter"])
    assert (faked.verdict, honest.kind, arbitration.kind) == ("fail", "verify", "arbitration")
    honest_id, arbitration_id = honest.id, arbitration.id
    results = {arbitration_id: _true_result(arbitration), honest_id: _true_result(honest)}

    errors = _uploads_queued_on_the_job(app, v["job_id"], results)

    assert arbitration_id not in errors, errors
    lost = errors.get(honest_id)
    assert isinstance(lost, ApiError) and lost.code == "lease_lost", errors
    db.session.expire_all()
    assert db.session.get(Check, arbitration_id).verdict == "fail"
    assert db.session.get(Check, honest_id).state == "void", "voided by the arbitration, not overwritten"
    assert db.session.get(Worker, v["renderer"].id).times_caught == 1


def _uploads_queued_on_the_job(app, job_id: int, results: dict[int, bytes]) -> dict[int, BaseException]:  # type: ignore[no-untyped-def]
    """Judge and apply each check's result in its own thread and transaction, as the upload endpoint does, all
    of them queued on the job's row: it is held here until each in turn (in the order given) waits for it, then
    let go. Returns what each upload raised."""
    errors: dict[int, BaseException] = {}

    def upload(check_id: int) -> None:
        try:
            with app.app_context():
                check = db.session.get(Check, check_id)
                assert check is not None
                decide.judge(check, results[check_id])
                decide.apply(check)
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors[check_id] = exc

    threads = []
    with db.engine.connect() as holder:
        holder.execute(text("SELECT id FROM job WHERE id = :id FOR NO KEY UPDATE"), {"id": job_id})
        for waiting, check_id in enumerate(results, start=1):
            threads.append(threading.Thread(target=upload, args=(check_id,)))
            threads[-1].start()
            _until_waiting(waiting)
        holder.rollback()
    for thread in threads:
        thread.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    return errors


def _until_waiting(count: int) -> None:
    """Until ``count`` backends of this database wait for a lock (a fresh pg_stat_activity snapshot each time)."""
    deadline = time.monotonic() + WAIT
    with db.engine.connect() as connection:
        while True:
            waiting = connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")).scalar_one()
            connection.rollback()
            if waiting >= count:
                return
            assert time.monotonic() < deadline, f"{count} transaction(s) never waited for the job's row"
            time.sleep(0.01)  # polling interval of a deadline loop
