"""A claim on a network without a trusted node is decided within a bound (issue 13), on a real database (SQLite and
PostgreSQL): once it has waited FRAMEHIVE_FALLBACK_WAIT, veterans of third owners re-render the claimed frame, and
the frame is overturned only when two of them, of different owners, both find it differs and agree: of one device
class bit for bit, across classes within the other veteran's yardstick. A claimant colluding with one veteran
overturns nothing, and a lying veteran's render never becomes the frame. Frames are noise images (kit.py); the
``v`` fixture (conftest.py) gives a renderer and two more owners' agents, here the veterans.

Before: a claim could be taken by a trusted node only, so without one it waited forever; then two veterans of two
classes could never overturn a fake (a claim's yardstick render was not kept: agreement unproven).
Time passing is the claim's filing moved back past the wait, never a sleep.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from flask import current_app
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases
from framehive.coordinator.db import db
from framehive.coordinator.models import Check, Claim, Frame, Job, Task, Worker
from framehive.coordinator.storage_access import storage
from framehive.coordinator.verification import decide, leasing
from framehive.coordinator.verification.claims import file_claim
from sqlalchemy import select

from tests.coordinator.kit import answer, judge, noise_png
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
    """Two whole-frame renders of one class can be compared bit for bit, so the second render waits for the first
    veteran's class; across classes agreement needs a yardstick, and two renders with none prove nothing: an
    unproven agreement must not let a second render, garbage or not, become the artist's frame."""
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


# --- across device classes: the yardstick (comparison.proven_alike) ---------------------------------------------
# The renderer is of CPU class. A veteran of another class renders its own noise (the truth plus a few levels of
# noise of its own seed) and, being of another class than the renderer, a yardstick below it (another seed).


def truth(check: Check, seed: int | None = None) -> np.ndarray:
    return fa.decode(noise_png(check.frame.number if seed is None else seed), 10**8)


def own_noise(image: np.ndarray, seed: int, levels: int = 3) -> np.ndarray:
    """``image`` as a device of another class renders it: the same picture, other noise."""
    noise = np.random.default_rng(seed).integers(-levels, levels + 1, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def upload(check: Check | None, top: np.ndarray, bottom: np.ndarray | None = None) -> Check:
    """The veteran uploads its whole-frame render, with its yardstick stacked below when it has one."""
    assert check is not None, "the veteran was given the claim's re-render"
    judge(check, fa.encode_png(top if bottom is None else np.concatenate([top, bottom])))
    db.session.commit()
    decide.apply(check)
    db.session.commit()
    return check


def other_class(check: Check | None, seed: int | None = None) -> Check:
    """An honest (``seed`` None) or lying veteran of another class: its render and its yardstick."""
    assert check is not None
    image = truth(check, seed)
    return upload(check, own_noise(image, 1), own_noise(image, 2))


def lease_twice(v: dict[str, Any], claim: Claim, worker: Worker) -> Check | None:
    """A claim's re-render by ``worker``, after the waits that let a veteran of its class take it."""
    for _ in range(3):
        leased = leasing.claim_check(worker)
        if leased is not None:
            return leased
        wait_over(claim)
    return None


def delivered(check: Check) -> np.ndarray:
    with storage().open(frame_of(check).blob_sha256) as handle:
        return fa.decode(handle.read(), 10**8)


@pytest.mark.parametrize("classes", [("CPU", "CUDA"), ("CUDA", "CPU"), ("CUDA", "OPTIX")])
def test_two_honest_veterans_of_two_classes_overturn_a_fake(veterans, classes):  # type: ignore[no-untyped-def]
    """First and second veteran of these device classes (a CPU one renders the truth, bit for bit, and no
    yardstick). What becomes the frame is a job-seed render that lies within the other veteran's yardstick: the
    CPU veteran's, or with two yardsticks the second's; never a stack with its yardstick."""
    v = veterans
    v["verifier"].device, v["arbiter"].device = classes
    db.session.commit()
    _, claim, first = claimed(v, image=lambda n: noise_png(FAKE + n))
    one = v["verifier"].device == "CPU"
    if one:
        answer(lease_twice(v, claim, v["verifier"]))
    else:
        other_class(lease_twice(v, claim, v["verifier"]))
    assert claim.state == "open" and first.verdict == "fail"
    second = lease_twice(v, claim, v["arbiter"])
    if v["arbiter"].device == "CPU":
        answer(second)
    else:
        assert second is not None
        image = truth(second)
        upload(second, own_noise(image, 3), own_noise(image, 4))
    assert claim.state == "confirmed", claim.outcome
    frame = frame_of(first)
    replacing = first if one else second
    assert frame.worker_id == replacing.verifier_id and frame.verified_by == "claim"
    pixels = delivered(first)
    assert pixels.shape == (36, 64, 3)
    if "CPU" in classes:
        assert np.array_equal(pixels, truth(first)), "the CPU veteran's render"
    else:
        assert np.array_equal(pixels, own_noise(truth(first), 3)), "the second's job-seed render, not its yardstick"
    assert (v["renderer"].times_caught, v["verifier"].times_caught, v["arbiter"].times_caught) == (1, 0, 0)


@pytest.mark.parametrize("liar", ["first", "second"])
@pytest.mark.parametrize("lie", ["garbage", "garbage with a yardstick of two identical renders"])
def test_a_veterans_lie_and_an_honest_render_across_classes_overturn_nothing(veterans, liar, lie):  # type: ignore[no-untyped-def]
    """A faked frame; an honest veteran of another class (render and yardstick) and a lying CPU veteran, whose
    garbage differs from the fake too. The garbage is nowhere near the honest render's yardstick, and a yardstick
    of two identical renders measures nothing (the strict rule then applies): the frame stands."""
    v = veterans
    liar_worker, honest_worker = (v["verifier"], v["arbiter"]) if liar == "first" else (v["arbiter"], v["verifier"])
    liar_worker.device, honest_worker.device = "CPU", "CUDA"
    db.session.commit()
    _, claim, first = claimed(v, image=lambda n: noise_png(FAKE + n))
    faked = frame_of(first).blob_sha256

    def lie_render(check: Check | None) -> None:
        assert check is not None
        garbage = truth(check, 999)
        upload(check, garbage, garbage if "identical" in lie else None)

    order = [(liar_worker, lie_render), (honest_worker, other_class)]
    for worker, act in order if liar == "first" else order[::-1]:
        act(lease_twice(v, claim, worker))
    assert claim.state == "rejected", claim.outcome
    assert frame_of(first).blob_sha256 == faked, "the liar's garbage never becomes the frame"
    assert (v["renderer"].times_caught, v["verifier"].times_caught, v["arbiter"].times_caught) == (0, 0, 0)


def test_a_claimant_and_one_colluding_veteran_cannot_overturn_an_honest_frame_across_classes(veterans):  # type: ignore[no-untyped-def]
    """The claimant's friend (CUDA) says the honest frame differs (garbage, with a yardstick of it); an independent
    veteran of the renderer's class finds it matches: the frame stands."""
    v = veterans
    v["verifier"].device = "CUDA"
    db.session.commit()
    _, claim, first = claimed(v)
    honest = frame_of(first).blob_sha256
    assert other_class(lease_twice(v, claim, v["verifier"]), seed=999).verdict == "fail"
    answer(lease_twice(v, claim, v["arbiter"]))
    assert claim.state == "rejected" and frame_of(first).blob_sha256 == honest
    assert v["renderer"].times_caught == 0


def test_a_liars_wide_yardstick_lets_only_the_honest_render_become_the_frame(veterans):  # type: ignore[no-untyped-def]
    """A faked frame; the first veteran (CPU) honest, the second (CUDA) a liar whose garbage render sits above a
    yardstick so wide that anything lies within it. A yardstick only ever measures the other veteran's render: the
    honest render may become the frame by it, the liar's garbage never."""
    v = veterans
    v["arbiter"].device = "CUDA"
    db.session.commit()
    _, claim, first = claimed(v, image=lambda n: noise_png(FAKE + n))
    answer(lease_twice(v, claim, v["verifier"]))
    check = lease_twice(v, claim, v["arbiter"])
    assert check is not None
    garbage = own_noise(truth(check), 5, levels=30)  # far enough from the fake to fail it, and far from the truth
    upload(check, garbage, np.clip(2 * truth(check).astype(int) - garbage, 0, 255).astype(np.uint8))
    assert check.verdict == "fail"
    assert claim.state == "confirmed", claim.outcome
    assert np.array_equal(delivered(first), truth(first)), "the honest render, never the garbage"
    assert frame_of(first).worker_id == v["verifier"].id
