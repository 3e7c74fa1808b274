"""Every wait for a verifier is bounded and explained, on a real database (SQLite and PostgreSQL): same class
first, another class only after FRAMEHIVE_FALLBACK_WAIT; arbitrations by a trusted node or a veteran first,
then by any third owner, the majority deciding; the reason the artist reads in Job.waiting; the admin's count of
waiting checks. Frames are noise images (kit.py); real renders and real agents: tests/e2e/test_young_network.py.

Time passing is the check's creation moved back past the wait (the rule reads ``created_at``), never a sleep.
"""

from __future__ import annotations

import re
from typing import Any

from flask import current_app
from framehive.coordinator import leases, stats
from framehive.coordinator.db import db
from framehive.coordinator.models import Check, Event, Job, Task
from framehive.coordinator.verification import leasing
from framehive.coordinator.verification.claims import file_claim
from sqlalchemy import select

from tests.coordinator.kit import answer, noise_png, render


def queued_check(kind: str = "verify") -> Check:
    return db.session.execute(select(Check).filter_by(kind=kind, state="queued")).scalar_one()


def wait_over(check: Check) -> None:
    """The check was created FALLBACK_WAIT (and a second) ago."""
    check.created_at -= float(current_app.config["FRAMEHIVE_FALLBACK_WAIT"]) + 1
    db.session.commit()


def why(v: dict[str, Any]) -> str | None:
    leases.settle_jobs_nobody_may_run()
    return db.session.get(Job, v["job_id"]).waiting


def offline(*workers: Any) -> None:
    for worker in workers:
        worker.online = False
    db.session.commit()


def rendered_task(v: dict[str, Any], image=noise_png) -> Task:  # type: ignore[no-untyped-def]
    task = leases.claim_task(v["renderer"].id)
    render(task, image=image)
    assert task.state == "verifying"
    return task


def test_a_single_owner_network_says_at_once_that_frames_wait_for_another_owner(v):  # type: ignore[no-untyped-def]
    offline(v["verifier"], v["arbiter"])  # the renderer's owner is alone (its sibling verifies, but is its own)
    task = rendered_task(v)
    check = queued_check()
    assert why(v) == f"frame {check.frame.number} wait for a verifier of another owner: none online"
    assert stats.overview(None)["checks_waiting"] == {"total": 1, "by_kind": {"verify": 1}}
    assert stats.overview(None)["jobs_waiting"] == 1
    wait_over(check)
    assert leasing.claim_check(v["sibling"]) is None, "no wait makes the renderer's own owner a verifier"
    v["verifier"].online = True
    db.session.commit()
    assert why(v) is None, "a verifier of another owner came online: nothing to explain"
    answer(leasing.claim_check(v["verifier"]))
    assert task.state == "done"
    assert stats.overview(None)["checks_waiting"] == {"total": 0, "by_kind": {}}


def test_a_check_goes_to_the_renderers_device_class_first(v):  # type: ignore[no-untyped-def]
    v["arbiter"].device = "CUDA"
    db.session.commit()
    rendered_task(v)
    assert leasing.claim_check(v["arbiter"]) is None, "another class waits while the check is fresh"
    assert why(v) is None, "a verifier of the renderer's class is online"
    leased = leasing.claim_check(v["verifier"])
    assert leased is not None and leased.verifier_id == v["verifier"].id


def test_another_class_checks_once_the_wait_is_over_and_the_artist_is_told_when(v):  # type: ignore[no-untyped-def]
    v["verifier"].device, v["arbiter"].device = "CUDA", "OPTIX"
    db.session.commit()
    task = rendered_task(v)
    check = queued_check()
    assert leasing.claim_check(v["verifier"]) is None and leasing.claim_check(v["arbiter"]) is None
    said = why(v)
    assert said is not None and re.fullmatch(
        rf"frame {check.frame.number} wait for a verifier of the renderer's device class: none online; one of "
        r"another class checks them from \d\d:\d\d UTC", said), said
    wait_over(check)
    assert why(v) is None, "a verifier of another class may take it now"
    leased = leasing.claim_check(v["verifier"])
    assert leased is not None and leased.id == check.id and leased.verifier_id == v["verifier"].id
    assert task.state == "verifying"  # how a cross-class crop is judged is frame_analysis' (issue 13, point 3)


def test_a_dispute_waits_for_an_arbiter_then_a_third_owner_decides_by_majority(v, app):  # type: ignore[no-untyped-def]
    """The verifier lies; no trusted node nor veteran is online. After the wait the fresh third owner's render
    sides with the renderer: two renders against one, the verifier is caught, the task is accepted."""
    app.config["FRAMEHIVE_ARBITER_MIN_TRUST"] = 20
    task = rendered_task(v)
    answer(leasing.claim_check(v["verifier"]), seed_of_truth=999)
    arbitration = queued_check("arbitration")
    assert leasing.claim_check(v["arbiter"]) is None, "fresh: may not arbitrate yet"
    said = why(v)
    assert said is not None and re.fullmatch(
        rf"frame {arbitration.frame.number} disputed: wait for an arbiter \(a trusted node, or a veteran of a third "
        r"owner\): none online; from \d\d:\d\d UTC a third owner's render decides by majority", said), said
    offline(v["arbiter"])
    assert why(v) == f"frame {arbitration.frame.number} disputed: wait for a third owner to re-render the region: " \
                     "none online"
    v["arbiter"].online = True
    wait_over(arbitration)
    assert why(v) is None
    answer(leasing.claim_check(v["arbiter"]))
    assert (v["verifier"].times_caught, v["renderer"].times_caught, task.state) == (1, 0, "done")


def test_a_third_owners_render_after_the_wait_confirms_a_cheat(v, app):  # type: ignore[no-untyped-def]
    app.config["FRAMEHIVE_ARBITER_MIN_TRUST"] = 20
    task = rendered_task(v, image=lambda n: noise_png(1000 + n))  # the renderer uploads the wrong pixels
    answer(leasing.claim_check(v["verifier"]))
    arbitration = queued_check("arbitration")
    wait_over(arbitration)
    answer(leasing.claim_check(v["arbiter"]))
    assert arbitration.verdict == "fail"
    assert (v["renderer"].times_caught, v["verifier"].times_caught, v["arbiter"].times_caught) == (1, 0, 0)
    assert task.state == "queued", "the cheater's frames are rendered again"


def test_a_claim_waits_for_a_trusted_node_then_for_veterans_and_the_artist_is_told(v, app):  # type: ignore[no-untyped-def]
    """A claim overturns frames delivered as verified: a trusted node first, veterans of other owners only after
    the wait (two of them must agree: test_claim_fallback.py). Its wait is said even though the job is over."""
    app.config["FRAMEHIVE_ARBITER_MIN_TRUST"] = 20
    for _ in range(2):
        rendered_task(v)
        answer(leasing.claim_check(v["verifier"]))
    job = db.session.get(Job, v["job_id"])
    assert job.state == "completed"
    number = next(f.number for f in job.frames if f.verified_by == "check")
    file_claim(job, job.account_id, str(number), "flicker")
    db.session.commit()
    claim = queued_check("claim")
    assert why(v) == f"claimed frame {number} wait for a trusted node, or veterans of two other owners, to " \
                     "re-render them: none online"
    v["arbiter"].trust = 20  # a veteran now (the verifier checked this frame: never its re-renderer)
    db.session.commit()
    assert re.fullmatch(rf"claimed frame {number} wait for a trusted node to re-render them: none online; from "
                        r"\d\d:\d\d UTC veterans of other owners re-render them, and a frame is replaced only if "
                        r"two of different owners both find it differs", why(v) or "")
    assert leasing.claim_check(v["arbiter"]) is None
    wait_over(claim)
    assert leasing.claim_check(v["verifier"]) is None, "it checked this frame"
    assert why(v) is None
    assert leasing.claim_check(v["arbiter"]).id == claim.id


def test_frames_joining_the_wait_update_the_reason_without_a_new_event_each(v):  # type: ignore[no-untyped-def]
    offline(v["verifier"], v["arbiter"])
    rendered_task(v)
    first = why(v)
    rendered_task(v)
    second = why(v)
    assert second != first and second.endswith("wait for a verifier of another owner: none online"), second
    events = db.session.execute(select(Event).filter_by(kind="job_waiting", job_id=v["job_id"])).scalars().all()
    assert [e.message.split(" waits: ")[1] for e in events] == [first], "one event: what the job waits for"


def test_a_dispute_over_frames_already_accepted_holds_nothing_back_and_says_nothing(v, app):  # type: ignore[no-untyped-def]
    """An audit (a second opinion after the task was accepted) that fails waits for a fourth owner's arbitration:
    it decides who lied, not which frames the artist gets, so the job does not say it waits."""
    app.config["FRAMEHIVE_AUDIT_RATE"] = 1.0
    task = rendered_task(v)
    answer(leasing.claim_check(v["verifier"]))
    assert task.state == "done"
    answer(leasing.claim_check(v["arbiter"]), seed_of_truth=999)  # the auditor disagrees
    arbitration = queued_check("arbitration")
    assert arbitration.task_id == task.id
    assert why(v) is None
    assert stats.overview(None)["checks_waiting"]["by_kind"] == {"arbitration": 1}, "the admin still sees it"
