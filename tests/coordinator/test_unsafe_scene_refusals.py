"""A worker refusing a scene as unsafe (task_failed / check_failed limit="unsafe_scene", issue 11), on a real
database through the scheduler functions, as worker_channel calls them.

The coordinator ran the same reference check at submit. So a refusal of a scene it accepted is a version difference
or a lie, meant to fail an honest artist's job or to dodge work. The attack: agents of two griefing accounts refuse
every task of an honest job as unsafe; as ordinary failures, three such refusals failed the job.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from framehive.coordinator import failure_accounting, leases, outcomes
from framehive.coordinator.db import db
from framehive.coordinator.models import Account, Blob, Check, Frame, Job, Task, Worker, now
from framehive.coordinator.verification import leasing as check_leasing
from framehive.protocol import messages as m
from sqlalchemy import select

from tests.coordinator import kit
from tests.coordinator import test_failure_accounting as accounting
from tests.coordinator.test_failure_accounting import blocks, job, offline
from tests.scenes import build_outside_references

net, only_single = accounting.net, accounting.only_single  # its fixtures: the same cast


def refuse(worker_id: int, job_id: int | None = None) -> Task | None:
    """``worker_id`` claims a task (of ``job_id``, when given) and refuses it as the worker agent's reference check
    does (None: it got none)."""
    task = leases.claim_task(worker_id)
    if task is None:
        return None
    assert job_id is None or task.job_id == job_id
    said = m.TaskFailed(task_id=task.id, attempt=task.attempt, error="refusing the scene: it names /etc/passwd",
                        limit="unsafe_scene")
    lost = outcomes.record_failure(task, "render_failed", said.error, limit=failure_accounting.limit_of(said))
    db.session.commit()
    assert all(lease.task_id != task.id for lease in lost)
    return task


def trusts(*worker_ids: int) -> list[int]:
    return [db.session.get(Worker, w, populate_existing=True).trust for w in worker_ids]


def test_two_accounts_refusing_an_accepted_scene_do_not_fail_it(only_single):  # type: ignore[no-untyped-def]
    net = only_single
    offline(net["h"])
    for worker in ("g1", "g2", "x"):
        db.session.get(Worker, net[worker]).trust = 8
    db.session.commit()
    refused = [refuse(net[w], net["single"]) for w in ("g1", "x", "g2", "g1", "x")]
    assert job(net["single"]).state == "running", "the coordinator's own check accepts the scene: lies fail nothing"
    assert [t is not None for t in refused] == [True, True, False, False, False], "one refusal per account"
    assert blocks(net["single"]) == {net["grief"]: "refused", net["xavier"]: "refused"}
    task = refused[0]
    assert db.session.get(Task, task.id, populate_existing=True).failures == 0, "not counted toward failing it"
    assert trusts(net["g1"], net["g2"], net["x"]) == [4, 4, 4], "a refusal the check contradicts counts against"
    leases.settle_jobs_nobody_may_run()
    waiting = job(net["single"]).waiting
    assert waiting is not None and "refused it as unsafe" in waiting and job(net["single"]).state == "running", waiting
    db.session.get(Worker, net["h"]).online = True
    db.session.commit()
    honest = leases.claim_task(net["h"])
    assert honest is not None and honest.job_id == net["single"], "an honest agent of another owner renders it"
    kit.render(honest)
    assert honest.state == "verifying"


def test_a_refusal_after_an_ordinary_failure_does_not_make_it_conclusive(only_single):  # type: ignore[no-untyped-def]
    net = only_single
    offline(net["h"])
    task = leases.claim_task(net["x"])
    outcomes.record_failure(task, "render_failed", "driver crash")
    db.session.commit()
    refuse(net["g1"], net["single"])
    assert job(net["single"]).state == "running"
    assert leases.claim_task(net["x"]).id == task.id, "it goes back to xavier: grief is blocked, nobody else"


@pytest.fixture(scope="module")
def hostile_tree(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real .blend with an image at an absolute path outside its tree (tests/scenes/outside_references.py)."""
    return build_outside_references(tmp_path_factory.mktemp("outside"))["image_absolute"]


def swap_scene(api, job_id: int, case: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    """Put the case's tree in place of the job's scene behind the check's back: what an older coordinator's check
    (one that missed this kind of path) would have let in."""
    tree = Path(case["tree"])
    shas = {path: api.upload((tree / path).read_bytes()) for path in case["files"]}
    row = db.session.get(Job, job_id)
    row.scene_sha256, row.scene_path = shas[case["scene_path"]], case["scene_path"]
    row.assets = [{"path": p, "sha256": s, "size": db.session.get(Blob, s).size}
                  for p, s in shas.items() if p != case["scene_path"]]
    db.session.commit()
    assert hashlib.sha256((tree / case["scene_path"]).read_bytes()).hexdigest() == row.scene_sha256


def test_a_refusal_the_coordinators_check_confirms_fails_the_job_and_blames_nobody(  # type: ignore[no-untyped-def]
        api, only_single, hostile_tree):
    net = only_single
    db.session.get(Worker, net["g1"]).trust = 8
    db.session.commit()
    swap_scene(api, net["single"], hostile_tree)
    refuse(net["g1"], net["single"])
    failed = job(net["single"])
    assert failed.state == "failed", "one refusal is enough once the coordinator's own check agrees"
    assert "unsafe" in failed.error and hostile_tree["expect"][0]["path"] in failed.error, failed.error
    assert blocks(net["single"]) == {} and trusts(net["g1"]) == [8], "nobody is blamed"


def test_a_verifier_refusing_a_check_is_left_out_of_it_and_fails_nothing(v):  # type: ignore[no-untyped-def]
    """Verifiers of two owners refuse a check as unsafe: each account is left out of that check (its agents' own
    check would refuse again), and the job runs on: nobody's word against the coordinator's check fails it."""
    kit.render(leases.claim_task(v["renderer"].id))
    first = None
    for verifier in (v["verifier"], v["arbiter"]):
        check = check_leasing.claim_check(verifier)
        assert check is not None and check.id == (first or check).id
        first = check
        said = m.CheckFailed(handle=check.handle or "", error="refusing the scene", limit="unsafe_scene")
        check_leasing.release(check)  # as worker_channel does with a check_failed
        limit = failure_accounting.limit_of(said)
        if limit is not None:
            outcomes.check_limit_hit(check, verifier, limit)
        db.session.commit()
    row = db.session.get(Check, first.id, populate_existing=True)
    assert {v["verifier"].account_id, v["arbiter"].account_id} <= set(row.excluded_accounts)
    assert row.state == "queued", "it waits for a verifier of another owner"
    assert db.session.get(Job, v["job_id"], populate_existing=True).state == "running"


def test_refusing_other_artists_scenes_again_and_again_suspends_the_account(app, net):  # type: ignore[no-untyped-def]
    """A work dodger refusing every scene as unsafe: each refusal blocklists its account for that job at once, and
    two of alice's jobs within the window (ACCOUNT_SUSPEND_JOBS=2 here) with nothing verified suspend it."""
    app.config.update(FRAMEHIVE_ACCOUNT_SUSPEND_JOBS=2)
    offline(net["h"], net["x"])
    first = refuse(net["g1"])
    assert first is not None and not db.session.get(Account, net["grief"], populate_existing=True).suspended
    second = refuse(net["g1"])
    assert second is not None and second.job_id != first.job_id
    assert db.session.get(Account, net["grief"], populate_existing=True).suspended
    assert job(first.job_id).state == job(second.job_id).state == "running"


def test_an_owner_whose_newer_agent_refuses_is_not_suspended_while_its_work_is_verified(  # type: ignore[no-untyped-def]
        app, net):
    """The honest version difference: olga's newer agent refuses what this coordinator accepts. Her account is
    blocklisted for those jobs, but frames of hers verified in the window keep it from being suspended."""
    app.config.update(FRAMEHIVE_ACCOUNT_SUSPEND_JOBS=2)
    offline(net["g1"], net["g2"], net["x"])
    frame = db.session.execute(select(Frame).filter_by(job_id=net["job"], number=6)).scalar_one()
    frame.worker_id, frame.verified_at = net["h"], now()
    db.session.commit()
    for _ in range(2):
        assert refuse(net["h"]) is not None
    assert not db.session.get(Account, net["olga"], populate_existing=True).suspended
    assert set(blocks(net["job"]).values()) == set(blocks(net["single"]).values()) == {"refused"}
