"""A claim on a network without a trusted node is decided within a bound (issue 13), on a real database (SQLite and
PostgreSQL): once it has waited FRAMEHIVE_FALLBACK_WAIT, veterans of third owners re-render the claimed frame, and
the frame is overturned only when two of them, of different owners, both find it differs and agree. A claimant
colluding with one veteran overturns nothing. Frames are noise images (kit.py); the ``v`` fixture (conftest.py)
gives a renderer and two more owners' agents, here the veterans.

Before: a claim could be taken by a trusted node only, so without one it waited forever.
Time passing is the claim's filing moved back past the wait, never a sleep.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import current_app
from framehive.coordinator import leases
from framehive.coordinator.db import db
from framehive.coordinator.models import Check, Claim, Frame, Job, Task, Worker
from framehive.coordinator.verification import leasing
from framehive.coordinator.verification.claims import file_claim
from sqlalchemy import select

from tests.coordinator.kit import answer, noise_png
from tests.coordinator.test_verification import accepted_on_trust

FAKE = 1000  # the renderer's frames are noise of another seed: what no honest render gives


@pytest.fixture
def veterans(v, app):  # type: ignore[no-untyped-def]
    """The verifier's and the arbiter's owners are veterans (never caught, trust at the bar); nobody is trusted."""
    app.config["FRAMEHIVE_ARBITER_MIN_TRUST"] = 20
    v["verifier"].trust = v["arbiter"].trust = 20
    db.session.commit()
    return v


def claimed(v: dict[str, Any], image=noise_png) -> tuple[Task, Claim, Check]:  # type: ignore[no-untyped-def]
    """A task delivered on trust (nobody checked it), its first frame claimed by the job's owner."""
    task = accepted_on_trust(v, image=image)
    job = db.session.get(Job, v["job_id"])
    claim = file_claim(job, job.account_id, str(task.frame_numbers[0]), "flicker")
    db.session.commit()
    return task, claim, db.session.execute(select(Check).filter_by(claim_id=claim.id)).scalar_one()


def wait_over(claim: Claim, waits: int = 1) -> None:
    """The claim (and its re-renders) were filed ``waits`` fallback waits (and a second) ago."""
    back = waits * float(current_app.config["FRAMEHIVE_FALLBACK_WAIT"]) + 1
    claim.created_at -= back
    for check in db.session.execute(select(Check).filter_by(claim_id=claim.id)).scalars():
        check.created_at -= back
    db.session.commit()


def why(v: dict[str, Any]) -> str | None:
    leases.settle_jobs_nobody_may_run()
    return db.session.get(Job, v["job_id"]).waiting


def frame_of(check: Check) -> Frame:
    return db.session.get(Frame, check.frame_id, populate_existing=True)


def test_without_a_trusted_node_two_veterans_of_two_owners_overturn_a_fake(veterans):  # type: ignore[no-untyped-def]
    v = veterans
    _, claim, first = claimed(v, image=lambda n: noise_png(FAKE + n))
    faked = frame_of(first).blob_sha256
    assert leasing.claim_check(v["verifier"]) is None, "a veteran waits while a trusted node might come"
    said = why(v)
    assert said is not None and re.fullmatch(
        rf"claimed frame {first.frame.number} wait for a trusted node to re-render them: none online; from "
        r"\d\d:\d\d UTC veterans of other owners re-render them, and a frame is replaced only if two of different "
        r"owners both find it differs", said), said
    wait_over(claim)
    assert why(v) is None
    leased = leasing.claim_check(v["verifier"])
    assert leased is not None and leased.id == first.id
    answer(leased)  # the truth: it differs from the fake
    assert claim.state == "open" and frame_of(first).blob_sha256 == faked, "one veteran overturns nothing"
    second = db.session.execute(select(Check).filter_by(claim_id=claim.id, state="queued")).scalar_one()
    assert second.parent_id == first.id
    assert leasing.claim_check(v["verifier"]) is None, "the second render is another owner's"
    assert leasing.claim_check(v["sibling"]) is None, "never the renderer's owner"
    answer(leasing.claim_check(v["arbiter"]))
    assert claim.state == "confirmed", claim.outcome
    frame = frame_of(first)
    assert (frame.blob_sha256, frame.worker_id, frame.verified_by) == (second.result_sha256, v["arbiter"].id, "claim")
    assert (v["renderer"].times_caught, v["verifier"].times_caught, v["arbiter"].times_caught) == (1, 0, 0)


def test_a_claimant_and_one_colluding_veteran_cannot_overturn_an_honest_frame(veterans):  # type: ignore[no-untyped-def]
    v = veterans
    _, claim, first = claimed(v)
    honest = frame_of(first).blob_sha256
    wait_over(claim)
    answer(leasing.claim_check(v["verifier"]), seed_of_truth=999)  # the claimant's friend says it differs
    answer(leasing.claim_check(v["arbiter"]))  # an independent render matches the delivered frame
    assert claim.state == "rejected", claim.outcome
    assert frame_of(first).blob_sha256 == honest
    assert db.session.get(Job, v["job_id"]).account.claims_rejected == 1
    assert v["renderer"].times_caught == 0, "the honest renderer is never blamed"


def test_a_veterans_matching_render_leaves_the_frame_standing_at_once(veterans):  # type: ignore[no-untyped-def]
    v = veterans
    _, claim, first = claimed(v)
    wait_over(claim)
    answer(leasing.claim_check(v["arbiter"]))
    assert claim.state == "rejected"
    assert db.session.execute(select(Check).filter_by(claim_id=claim.id)).scalars().all() == [first], \
        "no second render: it could not overturn the frame"


def test_two_differing_renders_that_disagree_with_each_other_overturn_nothing(veterans):  # type: ignore[no-untyped-def]
    """Two lies of two owners, each its own garbage: neither may become the artist's frame."""
    v = veterans
    _, claim, first = claimed(v)
    honest = frame_of(first).blob_sha256
    wait_over(claim)
    answer(leasing.claim_check(v["verifier"]), seed_of_truth=998)
    answer(leasing.claim_check(v["arbiter"]), seed_of_truth=999)
    assert claim.state == "rejected" and frame_of(first).blob_sha256 == honest
    assert v["renderer"].times_caught == 0


def test_who_may_re_render_a_claim_and_from_when(veterans, app):  # type: ignore[no-untyped-def]
    """Never the claimant's own agents, a fresh or caught agent, nor one that already checked the frame; a veteran
    of another device class only after a second wait; a trusted node decides alone and at once."""
    v = veterans
    job = db.session.get(Job, v["job_id"])
    own = Worker(account_id=job.account_id, name="artists-box", online=True, roles=["verify"],
                 blender_version="5.0.1", device="CPU", trust=100)
    db.session.add(own)
    v["arbiter"].device = "CUDA"
    db.session.commit()
    _, claim, first = claimed(v, image=lambda n: noise_png(FAKE + n))
    wait_over(claim)
    assert leasing.claim_check(own) is None, "the claimant's own veteran"
    assert leasing.claim_check(v["arbiter"]) is None, "another class: a second wait"
    v["verifier"].times_caught = 1
    db.session.commit()
    assert leasing.claim_check(v["verifier"]) is None, "caught once: no veteran"
    v["verifier"].times_caught, v["verifier"].trust = 0, 19
    db.session.commit()
    assert leasing.claim_check(v["verifier"]) is None, "below the arbiter bar"
    v["verifier"].trust = 20
    # as if the verifier had checked this frame before the claim
    db.session.add(Check(job_id=job.id, task_id=first.task_id, frame_id=first.frame_id, kind="spot",
                         region=[0, 0, 8, 8], render_rect=[0, 0, 24, 24], state="done", verdict="pass",
                         verifier_id=v["verifier"].id, renderer_id=v["renderer"].id, excluded_accounts=[]))
    db.session.commit()
    assert leasing.claim_check(v["verifier"]) is None, "it already looked at this frame"
    wait_over(claim)  # two waits now
    leased = leasing.claim_check(v["arbiter"])
    assert leased is not None and leased.id == first.id, "another class once the second wait is over"
    leasing.release(leased)
    db.session.commit()
    v["arbiter"].account.trusted = True  # a trusted node decides alone
    db.session.commit()
    answer(leasing.claim_check(v["arbiter"]))
    assert claim.state == "confirmed" and v["renderer"].times_caught == 1
    assert db.session.execute(select(Check).filter_by(claim_id=claim.id)).scalars().all() == [first]


def test_the_second_render_is_of_the_first_veterans_class_or_overturns_nothing(veterans, app):  # type: ignore[no-untyped-def]
    """Two whole-frame renders of one class can be compared bit for bit; of two classes they cannot (no yardstick of
    a claim's render is kept), and an unproven agreement must not let a second render, garbage or not, become the
    artist's frame. So the second render waits for the first veteran's class, and across classes the frame stands."""
    v = veterans
    v["arbiter"].device = "CUDA"
    db.session.commit()
    _, claim, first = claimed(v, image=lambda n: noise_png(FAKE + n))
    faked = frame_of(first).blob_sha256
    wait_over(claim)
    answer(leasing.claim_check(v["verifier"]))  # honest: it differs
    assert leasing.claim_check(v["arbiter"]) is None, "another class than the first veteran's: it waits again"
    assert "possible from" in (why(v) or ""), why(v)
    wait_over(claim)
    answer(leasing.claim_check(v["arbiter"]), seed_of_truth=999)  # differs too, but how alike are the two?
    assert claim.state == "rejected" and frame_of(first).blob_sha256 == faked
    assert (v["renderer"].times_caught, v["verifier"].times_caught, v["arbiter"].times_caught) == (0, 0, 0)
