"""What a frame's path reads from the database (issue 16: statements a frame, benchmarks/fleet.py).

A task's lease reads whether the agent's account failed its candidates with them. task_done reads the task's
frames once, with their renderers. A passed check's settling asked the database five questions about the task's
checks: which are open, which failed, which passed (the frames checked), which ringers wait for the answer, and,
per frame, which passed checks a re-render contradicts. One read of the task's checks now answers them all; what
each decides is tested in test_verification.py, test_ringers.py and the re-examination tests.
"""
from __future__ import annotations

from contextlib import AbstractContextManager

from flask import Flask
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases, outcomes
from framehive.coordinator.db import db
from framehive.coordinator.models import Frame, Task
from framehive.coordinator.verification import decide, leasing
from sqlalchemy import select

from tests.coordinator.kit import judge, noise_png, render, store
from tests.coordinator.statements import statements_of_this_thread

CHECK_READS = 'FROM "check"'


def reads_of(app: Flask, tables: tuple[str, ...]) -> AbstractContextManager[list[str]]:
    """SELECTs from the calling thread whose text has one of ``tables`` (``'FROM frame'``...)."""
    return statements_of_this_thread(
        app, lambda text: text.upper().startswith("SELECT") and any(t in text for t in tables))


def test_a_passed_checks_task_is_settled_on_one_read_of_its_checks(app, v) -> None:  # type: ignore[no-untyped-def]
    task = leases.claim_task(v["renderer"].id)
    render(task)
    db.session.commit()
    check = leasing.claim_check(v["verifier"])
    truth = fa.decode(noise_png(check.frame.number), 10**8)
    judge(check, fa.encode_png(fa.crop(truth, fa.Region.from_list(check.render_rect))))
    with reads_of(app, (CHECK_READS,)) as reads:  # in the result's transaction, as worker_checks._take does
        decide.apply(check)
        db.session.commit()
    assert len(reads) == 1, "\n".join(r[-200:] for r in reads)  # five before
    assert db.session.get_one(Task, check.task_id).state == "done"
    frames = db.session.execute(select(Frame).filter_by(task_id=check.task_id)).scalars().all()
    assert {f.state for f in frames} == {"verified"}
    assert {f.number: f.verified_by for f in frames} == {f.number: "check" if f.id == check.frame_id else "trust"
                                                         for f in frames}  # the region check covers one frame


def test_a_task_done_reads_its_frames_once_with_their_renderers(app, v) -> None:  # type: ignore[no-untyped-def]
    """task_done read the task's frames twice (the missing ones, then to commit them), then each renderer and its
    account lazily (the check rate is the renderer's trust, none for a trusted account's)."""
    task = leases.claim_task(v["renderer"].id)
    for frame in db.session.execute(select(Frame).filter_by(task_id=task.id)).scalars():
        data = noise_png(frame.number)
        outcomes.frame_rendered(task, frame.number, store(data, v["renderer"].account_id), 30)
    task_id = task.id
    db.session.remove()  # the done message comes in its own transaction, nothing loaded
    task = db.session.get_one(Task, task_id)
    with reads_of(app, ("FROM frame", "FROM worker", "FROM account")) as reads:
        outcomes.task_done(task)
    assert len([r for r in reads if "FROM frame" in r]) == 1, reads
    assert [r for r in reads if "FROM frame" not in r] == [], reads
    assert db.session.get_one(Task, task_id).state == "verifying"


def test_a_lease_reads_the_accounts_failures_with_its_candidates(app, v) -> None:  # type: ignore[no-untyped-def]
    """claim_order read the failures of the agent's account among the candidates in a statement of its own."""
    with reads_of(app, ("FROM task",)) as reads:
        task = leases.claim_task(v["renderer"].id)
    assert task is not None
    failures = [r for r in reads if "task_failure" in r]
    assert len(failures) == 1 and "EXISTS" in failures[0] and "LIMIT" in failures[0], reads
