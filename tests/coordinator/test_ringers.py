"""Ringers cannot be told apart from real checks by what a verifier knows: the jobs it has seen, the frames it has
looked at, the accounts it belongs to, how far behind the job it is (real database; frames are noise images,
``kit``). A ringer is a second opinion on the check the verifier was about to get; its pass counts once the
frame's own checks verify it. The ``v`` fixture is in
conftest.py. What a real agent receives, handles and timing included, is measured in test_ringer_blindness.py."""

from __future__ import annotations

import pytest
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases
from framehive.coordinator.db import db
from framehive.coordinator.dispatch import verify_message
from framehive.coordinator.models import Check, Frame, Job, VerificationKey, Worker
from framehive.coordinator.verification import leasing, ringers
from framehive.coordinator.verification.checks import MARGIN
from framehive.coordinator.verification.handles import held_check as handles_held
from sqlalchemy import select

from tests.coordinator.kit import answer, noise_png, render

RINGERS = 12
SECOND_JOB_SEEDS = 100
pytestmark = pytest.mark.usefixtures("referee")  # a fourth owner: ringers need two other owners (ringers.py)


def finish_first_job(v) -> None:  # type: ignore[no-untyped-def]
    """The fixture's job, rendered by the renderer and checked by the arbiter: completed, its frames verified."""
    for _ in range(2):
        render(leases.claim_task(v["renderer"].id))
        answer(leasing.claim_check(v["arbiter"]))
    assert db.session.get(Job, v["job_id"]).state == "completed"


def half_verified(v, seeds: int = 0) -> Check:  # type: ignore[no-untyped-def]
    """The oldest running job: its first task verified by the arbiter, its second rendered; returns that second
    task's queued check. Frames are noise of ``seeds`` + their number (another job's are not copies of them)."""

    def image(number: int) -> bytes:
        return noise_png(seeds + number)

    job_id = db.session.execute(select(Job.id).where(Job.state == "queued").order_by(Job.id)).scalars().first()
    for key in db.session.execute(select(VerificationKey).filter_by(job_id=job_id, kind="region")).scalars():
        key.frame = 2 if key.frame <= 2 else 3  # adjacent frames, as ringers once needed
    db.session.commit()
    render(leases.claim_task(v["renderer"].id), image=image)
    check = leasing.claim_check(v["arbiter"])
    answer(check, seed_of_truth=seeds + check.frame.number)
    render(leases.claim_task(v["renderer"].id), image=image)
    return db.session.execute(select(Check).filter_by(state="queued")).scalar_one()


def ringers_for(worker: Worker, count: int = RINGERS) -> list[Check]:
    """What ``count`` ringers in a row would be: each leased, read, then deleted as if never sent (its real check
    no longer excluding ``worker``'s owner, as before it). The real check stays queued."""
    drawn = []
    for _ in range(count):
        queued = db.session.execute(select(Check).filter_by(state="queued").order_by(Check.id)).scalars().first()
        before = list(queued.excluded_accounts)
        ringer = leasing.claim_check(worker)
        assert ringer is not None and ringer.kind == "ringer"
        drawn.append((ringer.job_id, ringer.frame.job_id, sorted(ringer.excluded_accounts)))
        db.session.delete(ringer)
        queued.excluded_accounts = before
        db.session.commit()
    return drawn


def test_a_ringer_stands_in_for_a_check_of_a_running_job_never_a_finished_one(v, app, api, scene_sha):  # type: ignore[no-untyped-def]
    finish_first_job(v)  # two of its frames passed checks: plenty for ringers, were finished jobs allowed
    running = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-4", "chunk": 2}).get_json()["id"]
    queued = half_verified(v, SECOND_JOB_SEEDS)
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    drawn = ringers_for(v["verifier"], 3)
    assert {(job, frame_job) for job, frame_job, _ in drawn} == {(running, running)} and queued.job_id == running
    standalone = ringers.make_ringer(v["verifier"])
    assert standalone is not None and standalone.job_id == running


def test_a_ringer_excludes_whom_a_real_check_excludes(v, app):  # type: ignore[no-untyped-def]
    queued = half_verified(v)
    running = queued.job_id
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    ((_, _, excluded),) = ringers_for(v["verifier"], 1)
    assert excluded == sorted(queued.excluded_accounts)
    owner = db.session.get(Job, running).account
    own = Worker(account_id=owner.id, name="artist-box", online=True, roles=["verify"], blender_version="5.0.1")
    db.session.add(own)
    db.session.commit()
    assert ringers.make_ringer(own) is None, "the job's own owner never checks it: a check of it would be a ringer"


def test_a_ringer_never_shows_an_account_a_frame_it_already_looked_at(v, app):  # type: ignore[no-untyped-def]
    queued = first_check(v)
    looked = Check(job_id=queued.job_id, task_id=queued.task_id, frame_id=queued.frame_id, kind="tier1",
                   region=[0, 0, 64, 36], render_rect=[0, 0, 32, 18], excluded_accounts=[], state="done",
                   verifier_id=v["arbiter"].id)  # say a tier-1 check of the frame, which the arbiter rendered
    sibling = Worker(account_id=v["arbiter"].account_id, name="arbiter-2", online=True, roles=["verify"],
                     blender_version="5.0.1")
    db.session.add_all([looked, sibling])
    db.session.commit()
    assert ringers.make_ringer(v["arbiter"], like=queued) is None
    assert ringers.make_ringer(sibling, like=queued) is None, "nor to another agent of the same owner"
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    assert leasing.claim_check(v["verifier"]).kind == "ringer"
    db.session.refresh(queued)
    assert queued.state == "queued" and leasing.claim_check(v["verifier"]) is None, "it has now seen that frame"
    assert ringers.make_ringer(v["verifier"], like=queued) is None


def test_a_check_is_known_by_a_random_handle_new_on_every_lease(v, app):  # type: ignore[no-untyped-def]
    """Ids and attempts are sequential: a ringer, made when leased, had the newest id. A verifier sees handles only,
    drawn anew on every lease: they neither grow with time nor repeat, and an old one names nothing."""
    queued = half_verified(v)
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    handles = []
    for _ in range(RINGERS):  # each lease a new check (a ringer), newer than the last
        before = list(queued.excluded_accounts)
        ringer = leasing.claim_check(v["verifier"])
        message = verify_message(ringer)
        assert message.handle == ringer.handle and not hasattr(message, "check_id")
        assert message.upload_url == f"/api/v1/worker/checks/{ringer.handle}/result"
        handles.append(ringer.handle)
        db.session.delete(ringer)
        queued.excluded_accounts = before
        db.session.commit()
    assert len(set(handles)) == len(handles)
    assert handles != sorted(handles) and handles != sorted(handles, reverse=True), "not ordered by time"
    app.config["FRAMEHIVE_RINGER_RATE"] = 0.0
    first = leasing.claim_check(v["verifier"])
    assert first.id == queued.id
    old = first.handle
    leasing.release(first)
    db.session.commit()
    again = leasing.claim_check(v["verifier"])
    assert (again.id, again.attempt) == (first.id, 2) and again.handle not in (old, *handles)
    verifier = v["verifier"].id
    assert handles_held(verifier, old) is None and handles_held(verifier, again.handle) is again


def test_a_ringer_without_a_check_to_stand_in_for_fits_the_verifiers_blender_and_device(v):  # type: ignore[no-untyped-def]
    """A ringer drawn for no check in particular is a frame of any running job: never one whose scene the verifier
    could not open (a newer Blender's) or of a device kind the job's artist excluded, which a real check never is."""
    queued = half_verified(v)
    job = db.session.get(Job, queued.job_id)
    assert ringers.make_ringer(v["verifier"]) is not None, "it fits: a ringer can be made"
    db.session.rollback()
    job.device_kind = "gpu"  # the artist asked for GPUs only; the verifier renders on its CPU
    db.session.commit()
    assert ringers.make_ringer(v["verifier"]) is None
    job.device_kind, job.scene_blender = None, 510  # saved by Blender 5.1; the verifier runs 5.0.1
    db.session.commit()
    assert ringers.make_ringer(v["verifier"]) is None


def test_a_ringer_is_the_very_region_of_the_check_it_stands_in_for(v):  # type: ignore[no-untyped-def]
    """Same share of the frame was not enough: a spot of 64x36 is 8x8 (its 8 px minimum), while a ringer of that
    share drawn with the frame's aspect was 11x8, and the width alone told ringers apart with balanced accuracy
    0.67 (benchmarks/ringer_blindness.py). A ringer now renders the very region of its check; none stands in for a
    tier-1 check (a whole frame at low resolution)."""
    queued = first_check(v)
    for region in ([3, 5, 8, 8], [40, 20, 16, 9], [0, 0, 64, 36]):
        queued.region = region
        db.session.commit()
        ringer = ringers.make_ringer(v["verifier"], like=queued)
        assert ringer is not None and (ringer.region, ringer.render_rect) == (region, _rect(region))
        db.session.rollback()
    queued.kind = "tier1"
    db.session.commit()
    assert ringers.make_ringer(v["verifier"], like=queued) is None


def _rect(region: list[int]) -> list[int]:
    return fa.Region.from_list(region).expanded(MARGIN, 64, 36).as_list()

def first_check(v) -> Check:  # type: ignore[no-untyped-def]
    """The fixture job's first task rendered: its region check queued, and no frame of any job verified yet."""
    render(leases.claim_task(v["renderer"].id))
    assert db.session.execute(select(Frame).filter_by(state="verified")).first() is None
    return db.session.execute(select(Check).filter_by(state="queued")).scalar_one()


def test_a_ringer_needs_no_verified_frame(v, app):  # type: ignore[no-untyped-def]
    """A ringer drawn from verified frames near the check existed mostly when verifiers kept up (idle, then a new
    check), so ringers came after longer idle gaps (BENCHMARKS.md "Ringers vs real checks"). A ringer is now a
    second opinion on the very check the verifier was about to get: a verifier that lags behind, whose checks'
    neighbours are all still undecided, gets ringers as often as an idle one."""
    queued = first_check(v)
    excluded = sorted(queued.excluded_accounts)
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    ringer = leasing.claim_check(v["verifier"])
    assert ringer is not None and ringer.kind == "ringer"
    assert (ringer.frame_id, ringer.region, ringer.renderer_sha256) == (queued.frame_id, queued.region,
                                                                      queued.renderer_sha256)
    assert sorted(ringer.excluded_accounts) == excluded
    db.session.refresh(queued)
    assert queued.state == "queued" and v["verifier"].account_id in queued.excluded_accounts, \
        "the real check goes to another owner: an account never sees a frame twice"
    assert leasing.claim_check(v["verifier"]) is None, "nothing else for it: the frame is one it has seen"
    app.config["FRAMEHIVE_RINGER_RATE"] = 0.0
    assert leasing.claim_check(v["arbiter"]).id == queued.id


def test_no_ringer_when_nobody_else_could_take_the_real_check(v, app):  # type: ignore[no-untyped-def]
    """The real check waits for another owner while the ringer stands in for it: with no other owner online that
    may take it, a ringer would hold the job back, so there is none."""
    first_check(v)
    v["arbiter"].online = False
    v["referee"].online = False
    db.session.commit()
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    assert leasing.claim_check(v["verifier"]).kind == "verify"


def test_no_ringer_when_only_one_other_owner_could_take_the_real_check(v, app):  # type: ignore[no-untyped-def]
    """With one other owner, the ringer's verifier and that owner would be the only two to look at the region, and
    neither may judge a dispute of the other's verdict: a failed one waited for a third owner that might never come,
    and its frame with it (two verifiers and a render-only cheater: "frames 3,6 disputed: wait for a third owner to
    re-render the region: none online", both verifiers idle). So there is none; with a third owner online, there is."""
    queued = first_check(v)
    v["referee"].online = False
    db.session.commit()
    assert ringers.make_ringer(v["verifier"], like=queued) is None
    assert v["verifier"].account_id not in queued.excluded_accounts
    v["referee"].online = True
    db.session.commit()
    ringer = ringers.make_ringer(v["verifier"], like=queued)
    assert ringer is not None and ringer.kind == "ringer"


def test_no_ringer_when_the_only_other_owner_may_take_the_real_check_only_after_its_wait(v, app):  # type: ignore[no-untyped-def]
    """The other owners online are of another device class: they may take the real check only once the fallback
    wait is over, and a ringer would hold the job back that long (ten minutes by default), so there is none until
    then (a young network's second verifier held a job that way)."""
    queued = first_check(v)
    v["arbiter"].blender_version = "5.1.0"  # another device class than the renderer's (and the verifier's)
    v["referee"].blender_version = "5.1.0"  # so is the fourth owner's: no other owner may take it at once
    db.session.commit()
    assert ringers.make_ringer(v["verifier"], like=queued) is None
    assert v["verifier"].account_id not in queued.excluded_accounts
    app.config["FRAMEHIVE_FALLBACK_WAIT"] = 0.0  # the wait is over: the other class may take it now
    ringer = ringers.make_ringer(v["verifier"], like=queued)
    assert ringer is not None and (ringer.kind, ringer.frame_id) == ("ringer", queued.frame_id)
    assert v["verifier"].account_id in queued.excluded_accounts


def test_a_ringer_pass_earns_trust_only_once_its_frame_is_verified(v, app):  # type: ignore[no-untyped-def]
    queued = first_check(v)
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    ringer = leasing.claim_check(v["verifier"])
    answer(ringer)
    assert (ringer.verdict, v["verifier"].trust) == ("pass", 0), "the answer is not known yet"
    app.config["FRAMEHIVE_RINGER_RATE"] = 0.0
    real = leasing.claim_check(v["arbiter"])
    assert real.id == queued.id
    answer(real)
    assert real.task.state == "done" and v["verifier"].trust == 1, "the frame passed its own check: now it is"
    render(leases.claim_task(v["renderer"].id))
    answer(leasing.claim_check(v["arbiter"]))  # the second task: its check verifies other frames
    assert v["verifier"].trust == 1, "counted once"


def test_a_ringer_answered_after_its_frame_was_verified_earns_trust_at_once(v, app):  # type: ignore[no-untyped-def]
    first_check(v)
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    ringer = leasing.claim_check(v["verifier"])
    app.config["FRAMEHIVE_RINGER_RATE"] = 0.0
    answer(leasing.claim_check(v["arbiter"]))
    assert ringer.task.state == "done", "the task does not wait for its ringer"
    answer(ringer)
    assert (ringer.verdict, v["verifier"].trust) == ("pass", 1)


def test_a_ringer_pass_on_pixels_found_faked_earns_nothing(v, app):  # type: ignore[no-untyped-def]
    """The verifier agreed with the renderer's pixels; the real check, by a trusted node, found them faked."""
    task = leases.claim_task(v["renderer"].id)
    render(task, image=lambda n: noise_png(500 + n))
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    ringer = leasing.claim_check(v["verifier"])
    answer(ringer, seed_of_truth=500 + ringer.frame.number)  # agrees with the fake
    assert ringer.verdict == "pass"
    v["arbiter"].account.trusted = True
    db.session.commit()
    app.config["FRAMEHIVE_RINGER_RATE"] = 0.0
    answer(leasing.claim_check(v["arbiter"]))  # the truth: a trusted check fails, the renderer is caught
    assert v["renderer"].times_caught == 1
    assert v["verifier"].trust == 0, "a pass on pixels nobody confirmed is no evidence of honesty"


def test_whoever_took_the_real_check_after_a_ringer_failed_may_not_judge_its_dispute(v, app):  # type: ignore[no-untyped-def]
    """A failed ringer's dispute excluded the owners that had looked at the frame when it failed. The real check the
    ringer stood in for could be leased after that, and its verifier then also took the dispute: one owner both
    checking and judging a region (seen in issue 16's cross-class runs). Who looked at the region is now read when
    a dispute would be leased."""
    queued = first_check(v)
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    ringer = leasing.claim_check(v["verifier"])
    assert ringer is not None and ringer.kind == "ringer"
    answer(ringer, seed_of_truth=SECOND_JOB_SEEDS)  # the ringer's verifier answers with something else: it fails
    dispute = db.session.execute(select(Check).filter_by(kind="arbitration", parent_id=ringer.id)).scalar_one()
    assert v["arbiter"].account_id not in dispute.excluded_accounts  # nobody else had looked at the frame yet
    app.config["FRAMEHIVE_RINGER_RATE"] = 0.0
    assert leasing.claim_check(v["arbiter"]).id == queued.id  # the real check, after the ringer failed
    assert leasing.claim_check(v["arbiter"]) is None, "it looked at the region: not its dispute"
    assert leasing.claim_check(v["referee"]).id == dispute.id


def test_whoever_took_a_ringers_dispute_first_never_gets_the_real_check(v, app):  # type: ignore[no-untyped-def]
    """The other order: the ringer's dispute is leased while the real check it stood in for is still queued. That
    check's exclusions were fixed when the ringer was made; the arbiter's owner is added to them at its lease."""
    queued = first_check(v)
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    ringer = leasing.claim_check(v["verifier"])
    assert ringer is not None and ringer.kind == "ringer"
    answer(ringer, seed_of_truth=SECOND_JOB_SEEDS)  # it fails: a dispute
    app.config["FRAMEHIVE_RINGER_RATE"] = 0.0
    dispute = db.session.execute(select(Check).filter_by(kind="arbitration", parent_id=ringer.id)).scalar_one()
    leased = leasing._lease(dispute.id, v["referee"])  # the dispute first (a lease's order is not the test here)
    db.session.commit()
    assert leased is not None and leased.verifier_id == v["referee"].id
    db.session.refresh(queued)
    assert queued.state == "queued" and v["referee"].account_id in queued.excluded_accounts
    assert leasing.claim_check(v["referee"]) is None, "it judged the region: the real check is not for it"
    assert leasing.claim_check(v["arbiter"]).id == queued.id
