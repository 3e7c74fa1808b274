"""Ringers cannot be told apart from real checks by what a verifier knows: the jobs it has seen, the frames it has
looked at, the accounts it belongs to (real database; frames are noise images, ``kit``). The ``v`` fixture is in
conftest.py. What a real agent receives, handles and timing included, is measured in test_ringer_blindness.py."""

from __future__ import annotations

from framehive.coordinator import leases
from framehive.coordinator.db import db
from framehive.coordinator.dispatch import verify_message
from framehive.coordinator.models import Check, Job, VerificationKey, Worker
from framehive.coordinator.verification import leasing, ringers
from framehive.coordinator.verification.handles import held_check as handles_held
from sqlalchemy import select

from tests.coordinator.kit import answer, noise_png, render

RINGERS = 12
SECOND_JOB_SEEDS = 100


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
        key.frame = 2 if key.frame <= 2 else 3  # adjacent frames: a ringer is drawn near the check it replaces
    db.session.commit()
    render(leases.claim_task(v["renderer"].id), image=image)
    check = leasing.claim_check(v["arbiter"])
    answer(check, seed_of_truth=seeds + check.frame.number)
    render(leases.claim_task(v["renderer"].id), image=image)
    return db.session.execute(select(Check).filter_by(state="queued")).scalar_one()


def ringers_for(worker: Worker, count: int = RINGERS) -> list[Check]:
    """What ``count`` ringers in a row would be: each leased, read, then deleted as if never sent (a frame a
    verifier was sent is one it has looked at). The real check stays queued."""
    drawn = []
    for _ in range(count):
        ringer = leasing.claim_check(worker)
        assert ringer is not None and ringer.kind == "ringer"
        drawn.append((ringer.job_id, ringer.frame.job_id, sorted(ringer.excluded_accounts)))
        db.session.delete(ringer)
        db.session.commit()
    return drawn


def test_ringers_come_from_running_jobs_never_from_finished_ones(v, app, api, scene_sha):  # type: ignore[no-untyped-def]
    finish_first_job(v)  # two of its frames passed checks: plenty for ringers, were finished jobs allowed
    running = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-4", "chunk": 2}).get_json()["id"]
    queued = half_verified(v, SECOND_JOB_SEEDS)
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    drawn = ringers_for(v["verifier"])
    assert {job for job, _, _ in drawn} == {running}, "a finished job's check would stand out"
    assert {job for _, job, _ in drawn} == {queued.job_id}, "the job of the check it stands in for"
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
    half_verified(v)  # its one checked frame was checked by the arbiter
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    sibling = Worker(account_id=v["arbiter"].account_id, name="arbiter-2", online=True, roles=["verify"],
                     blender_version="5.0.1")
    db.session.add(sibling)
    db.session.commit()
    assert ringers.make_ringer(v["arbiter"]) is None
    assert ringers.make_ringer(sibling) is None, "nor to another agent of the same owner"
    ringer = leasing.claim_check(v["verifier"])
    assert ringer.kind == "ringer"
    answer(ringer)
    assert ringers.make_ringer(v["verifier"]) is None, "it has now seen that frame"


def test_a_passed_ringer_earns_the_verifier_trust(v, app):  # type: ignore[no-untyped-def]
    half_verified(v)
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    ringer = leasing.claim_check(v["verifier"])
    assert ringer.kind == "ringer"
    answer(ringer)
    assert (ringer.verdict, v["verifier"].trust) == ("pass", 1)


def test_a_check_is_known_by_a_random_handle_new_on_every_lease(v, app):  # type: ignore[no-untyped-def]
    """Ids and attempts are sequential: a ringer, made when leased, had the newest id. A verifier sees handles only,
    drawn anew on every lease: they neither grow with time nor repeat, and an old one names nothing."""
    queued = half_verified(v)
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    handles = []
    for _ in range(RINGERS):  # each lease a new check (a ringer), newer than the last
        ringer = leasing.claim_check(v["verifier"])
        message = verify_message(ringer)
        assert message.handle == ringer.handle and not hasattr(message, "check_id")
        assert message.upload_url == f"/api/v1/worker/checks/{ringer.handle}/result"
        handles.append(ringer.handle)
        db.session.delete(ringer)
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


def test_a_ringer_has_the_very_size_of_the_check_it_stands_in_for(v):  # type: ignore[no-untyped-def]
    """Same share of the frame was not enough: a spot of 64x36 is 8x8 (its 8 px minimum), while a ringer of that
    share drawn with the frame's aspect was 11x8, and the width alone told ringers apart with balanced accuracy
    0.67 (benchmarks/ringer_blindness.py)."""
    queued = half_verified(v)
    for size in ([8, 8], [16, 9], [64, 36]):
        queued.region = [0, 0, *size]
        ringer = ringers.make_ringer(v["verifier"], like=queued)
        assert ringer is not None and ringer.region[2:] == size, (size, ringer.region)
        db.session.rollback()
