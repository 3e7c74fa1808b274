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
from typing import Any

import pytest
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases
from framehive.coordinator.db import db
from framehive.coordinator.models import Check, LedgerEntry, Task
from framehive.coordinator.verification import decide, leasing
from sqlalchemy import select

from tests.coordinator.kit import noise_png, render

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

    both_judged = threading.Barrier(2, timeout=WAIT)
    errors: list[BaseException] = []

    def upload(check_id: int) -> None:
        try:
            with app.app_context():
                check = db.session.get(Check, check_id)
                assert check is not None
                decide.judge(check, results[check_id])
                db.session.flush()  # the judged check is written: its transaction holds its locks
                both_judged.wait()
                decide.apply(check)
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            errors.append(exc)
            both_judged.abort()

    threads = [threading.Thread(target=upload, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert errors == [], errors

    db.session.expire_all()
    assert [db.session.get(Check, i).verdict for i in ids] == ["pass", "pass"]
    paid = set(db.session.execute(select(LedgerEntry.check_id).where(LedgerEntry.reason == "check")).scalars())
    assert paid == set(ids), "each verifier paid once"
    states: list[Any] = db.session.execute(select(Task.state).where(Task.job_id == v["job_id"])).scalars().all()
    assert states == ["done", "done"]
