"""Verification plumbing on a real database (SQLite and PostgreSQL): keys, commit, blind checks, verdicts,
arbitration, penalties, trust and ringers. Frames here are noise images: the decisions on real renders
are covered end to end (tests/e2e/test_adversaries.py) and by frame_analysis' own tests. The ``v``
fixture (a job, a renderer, a verifier, an arbiter, a sibling) is in conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases
from framehive.coordinator.db import db
from framehive.coordinator.dispatch import assign_message, verify_message
from framehive.coordinator.models import Account, Check, Claim, Frame, Job, JobBlock, Task, VerificationKey, Worker
from framehive.coordinator.verification import decide, leasing, trust
from framehive.coordinator.verification.checks import MARGIN
from sqlalchemy import select

from tests.coordinator.conftest import online_agent
from tests.coordinator.kit import answer, noise_png, render


def test_keys_are_drawn_at_split_and_never_sent_to_the_renderer(v):  # type: ignore[no-untyped-def]
    keys = db.session.execute(select(VerificationKey).filter_by(job_id=v["job_id"], kind="region")).scalars().all()
    tasks = db.session.execute(select(Task).filter_by(job_id=v["job_id"])).scalars().all()
    assert sorted(k.task_id for k in keys) == sorted(t.id for t in tasks), "one sealed region key per task"
    for key in keys:
        task = db.session.get(Task, key.task_id)
        assert key.state == "sealed" and key.frame in task.frame_numbers and 0 <= key.draw < 1
        assert fa.Region.from_list(key.region).fits(64, 36)
    leased = leases.claim_task(v["renderer"].id)
    message = assign_message(leased)
    text = repr(message)
    assert "region" not in text and "draw" not in text and str(keys[0].region) not in text


def test_a_new_renderer_is_checked_blind_by_another_owner(v):  # type: ignore[no-untyped-def]
    task = leases.claim_task(v["renderer"].id)
    render(task)
    assert task.state == "verifying"
    (check,) = db.session.execute(select(Check)).scalars().all()
    job_owner = db.session.get(Job, v["job_id"]).account_id
    assert check.kind == "verify"
    assert set(check.excluded_accounts) == {v["renderer"].account_id, job_owner}, "nor the job's own owner"
    assert leasing.claim_check(v["renderer"]) is None
    assert leasing.claim_check(v["sibling"]) is None, "an agent of the same owner never verifies"
    leased = leasing.claim_check(v["verifier"])
    assert leased is not None and leased.id == check.id
    message = verify_message(leased)
    comparison = {"yardstick_seed", "cross", "overrides"}  # how to render it (test_comparison.py, test_tier1.py)
    assert set(vars(message)) - comparison == {"handle", "job_id", "frame", "rect", "scene", "settings",
                                               "upload_url"}, "the verifier learns nothing about the renderer"
    rect, region = fa.Region.from_list(message.rect), fa.Region.from_list(check.region)
    assert region.relative_to(rect) is not None and rect.area >= region.area


def test_a_passed_check_verifies_the_task(v):  # type: ignore[no-untyped-def]
    task = leases.claim_task(v["renderer"].id)
    render(task)
    answer(leasing.claim_check(v["verifier"]))
    check = db.session.execute(select(Check)).scalar_one()
    assert (check.verdict, check.mode, check.metrics["maxabs"]) == ("pass", "strict", 0)
    assert task.state == "done"
    frames = db.session.execute(select(Frame).filter_by(task_id=task.id)).scalars().all()
    assert {f.state for f in frames} == {"verified"}
    assert sorted(f.verified_by for f in frames) == ["check", "trust"]
    assert v["renderer"].trust == 1


def test_a_failed_check_goes_to_arbitration_and_the_cheat_is_caught(v):  # type: ignore[no-untyped-def]
    task = leases.claim_task(v["renderer"].id)
    render(task, image=lambda n: noise_png(1000 + n))  # the renderer uploads the wrong pixels
    answer(leasing.claim_check(v["verifier"]))
    verify = db.session.execute(select(Check).filter_by(kind="verify")).scalar_one()
    assert verify.verdict == "fail" and task.state == "verifying"
    arbitration = db.session.execute(select(Check).filter_by(kind="arbitration")).scalar_one()
    job_owner = db.session.get(Job, v["job_id"]).account_id
    assert set(arbitration.excluded_accounts) == {v["renderer"].account_id, v["verifier"].account_id, job_owner}
    assert leasing.claim_check(v["verifier"]) is None
    answer(leasing.claim_check(v["arbiter"]))
    assert arbitration.verdict == "fail"
    renderer = v["renderer"]
    assert (renderer.trust, renderer.times_caught, renderer.suspended) == (0, 1, False)
    assert db.session.execute(select(JobBlock).filter_by(worker_id=renderer.id)).first() is not None
    assert task.state == "queued", "its frames go back to the queue for someone else"
    frames = db.session.execute(select(Frame).filter_by(task_id=task.id)).scalars().all()
    assert {(f.state, f.blob_sha256, f.worker_id) for f in frames} == {("queued", None, None)}
    sealed = db.session.execute(select(VerificationKey).filter_by(task_id=task.id, state="sealed")).scalars().all()
    assert sorted(k.kind for k in sealed) == ["region", "spot", "spot"], "fresh secret keys for the re-render"
    assert leases.claim_task(renderer.id) is None, "the cheater is blocklisted for this job"
    assert leases.claim_task(v["verifier"].id).id == task.id, "another worker renders it again"


def test_arbitration_that_sides_with_the_renderer_catches_the_verifier(v):  # type: ignore[no-untyped-def]
    task = leases.claim_task(v["renderer"].id)
    render(task)
    answer(leasing.claim_check(v["verifier"]), seed_of_truth=999)  # the verifier lies
    answer(leasing.claim_check(v["arbiter"]))
    assert v["verifier"].times_caught == 1 and v["verifier"].trust == 0
    assert v["renderer"].times_caught == 0
    assert task.state == "done"


def test_repeat_offenders_are_suspended_and_get_no_work(v, app):  # type: ignore[no-untyped-def]
    worker = v["verifier"]
    trust.caught(worker)
    assert not worker.suspended
    trust.caught(worker)
    db.session.commit()
    assert worker.suspended
    task = leases.claim_task(v["renderer"].id)
    render(task)
    assert leasing.claim_check(worker) is None


def test_check_rate_falls_with_trust_to_a_floor_and_resets():
    rates = [trust.check_rate(t) for t in range(0, 2000)]
    assert rates[:trust.BURN_IN] == [1.0] * trust.BURN_IN
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False)), "monotone"
    assert rates[-1] == trust.FLOOR > 0
    assert trust.check_rate(0) == 1.0


def test_trusted_renderer_is_sampled_by_its_keys_but_tier0_flags_force_a_check(v):  # type: ignore[no-untyped-def]
    v["renderer"].trust = 10**6  # check rate at the floor
    for key in db.session.execute(select(VerificationKey)).scalars():
        key.draw = 0.99  # these keys fall above the floor: not used
    db.session.commit()
    task = leases.claim_task(v["renderer"].id)
    render(task, image=lambda n: fa.encode_png(np.zeros((36, 64, 3), dtype=np.uint8)))  # black frames
    frames = db.session.execute(select(Frame).filter_by(task_id=task.id)).scalars().all()
    assert all("uniform" in f.flags for f in frames)
    assert any("copy" in f.flags for f in frames), "two identical frames: the second is a copy"
    checks = db.session.execute(select(Check)).scalars().all()
    assert sorted(c.frame.number for c in checks) == [f.number for f in frames], "every flagged frame checked"
    other = leases.claim_task(v["renderer"].id)
    render(other)
    assert other.state == "done", "unflagged frames above the rate are accepted on trust"


def fourth_owner() -> Worker:
    """A fourth owner's verifier: it takes the real check a ringer stood in for, so the arbiter stays a third owner
    that has not looked at the frame (a failed ringer's arbitration excludes the real check's verifier)."""
    account = Account(name="fourth-owner")
    db.session.add(account)
    db.session.flush()
    fourth = Worker(account_id=account.id, name="fourth", online=True, roles=["verify"], blender_version="5.0.1",
                    device="CPU")
    db.session.add(fourth)
    db.session.commit()
    return fourth


def test_ringers_catch_a_verifier_that_does_not_render(v, app):  # type: ignore[no-untyped-def]
    fourth = fourth_owner()
    task = leases.claim_task(v["renderer"].id)
    render(task)  # a real check is queued
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    ringer = leasing.claim_check(v["verifier"])  # a second opinion on it, in its place
    assert ringer.kind == "ringer" and ringer.frame.task_id == task.id
    assert set(vars(verify_message(ringer))) == set(vars(verify_message(db.session.get(Check, 1))))
    app.config["FRAMEHIVE_RINGER_RATE"] = 0.0
    real = leasing.claim_check(fourth)  # the real check
    answer(ringer, seed_of_truth=12345)  # uploads something it did not render
    assert v["verifier"].times_caught == 0, "a failed ringer is arbitrated before anyone is blamed"
    answer(real)
    arbitration = leasing.claim_check(v["arbiter"])
    assert (arbitration.kind, arbitration.parent_id, arbitration.region) == ("arbitration", ringer.id, ringer.region)
    assert {v["renderer"].account_id, v["verifier"].account_id, fourth.account_id} <= set(
        arbitration.excluded_accounts)
    assert task.state == "verifying", "a frame someone says is wrong waits for the arbiter"
    answer(arbitration)  # the frame is what its renderer said: the ringer's verifier lied
    assert (v["verifier"].times_caught, v["renderer"].times_caught, task.state) == (1, 0, "done")


def test_a_ringer_on_a_frame_tampered_outside_its_checked_region_blames_the_renderer(v, app):  # type: ignore[no-untyped-def]
    """The check covered one region; the renderer tampered elsewhere. The honest verifier that fails a ringer
    on that frame is not blamed: arbitration confirms it, and the renderer is caught."""
    fourth = fourth_owner()
    task = leases.claim_task(v["renderer"].id)
    key = db.session.execute(select(VerificationKey).filter_by(task_id=task.id)).scalars().first()
    checked = fa.Region.from_list(key.region)

    def tampered(number: int) -> bytes:
        pixels = fa.decode(noise_png(number), 10**8).copy()
        keep = np.zeros(pixels.shape[:2], dtype=bool)
        keep[checked.y:checked.y + checked.height, checked.x:checked.x + checked.width] = True
        pixels[~keep] = 255 - pixels[~keep]  # every pixel outside the checked region is wrong
        return fa.encode_png(pixels)

    render(task, image=tampered)
    app.config["FRAMEHIVE_RINGER_RATE"] = 1.0
    ringer = leasing.claim_check(v["verifier"])
    assert ringer.kind == "ringer"
    # A ringer renders its check's region (honest here): say it was put beside it, where pixels are tampered.
    x, y, w, h = key.region
    ringer.region = [0 if x >= w else x + w, y, w, h]
    job = ringer.frame.job
    ringer.render_rect = fa.Region.from_list(ringer.region).expanded(
        MARGIN, job.resolution_x, job.resolution_y).as_list()
    app.config["FRAMEHIVE_RINGER_RATE"] = 0.0
    real = leasing.claim_check(fourth)
    answer(ringer)  # honest
    assert ringer.verdict == "fail" and v["verifier"].times_caught == 0
    answer(real)
    assert real.verdict == "pass", "the check saw only honest pixels"
    arbitration = leasing.claim_check(v["arbiter"])
    assert arbitration.kind == "arbitration" and arbitration.parent_id == ringer.id
    answer(arbitration)
    assert arbitration.verdict == "fail"
    assert (v["renderer"].times_caught, v["verifier"].times_caught) == (1, 0)
    assert v["verifier"].trust >= 1, "its verdict was confirmed"


def test_only_trusted_nodes_and_veterans_arbitrate(v, app):  # type: ignore[no-untyped-def]
    """A fresh account is a third owner too, but it may be the cheater's partner: it never arbitrates."""
    app.config["FRAMEHIVE_ARBITER_MIN_TRUST"] = 20
    task = leases.claim_task(v["renderer"].id)
    render(task, image=lambda n: noise_png(1000 + n))
    answer(leasing.claim_check(v["verifier"]))
    assert db.session.execute(select(Check).filter_by(kind="arbitration")).scalar_one().state == "queued"
    assert leasing.claim_check(v["arbiter"]) is None, "fresh: may not arbitrate"
    v["arbiter"].trust = 20
    v["arbiter"].times_caught = 1
    db.session.commit()
    assert leasing.claim_check(v["arbiter"]) is None, "caught once: may not arbitrate"
    v["arbiter"].times_caught = 0
    db.session.commit()
    arbitration = leasing.claim_check(v["arbiter"])
    assert arbitration is not None and arbitration.kind == "arbitration", "a veteran arbitrates"
    leasing.release(arbitration)
    v["arbiter"].trust = 0
    v["arbiter"].account.trusted = True
    db.session.commit()
    assert leasing.claim_check(v["arbiter"]) is not None, "a trusted node arbitrates"


def test_a_verifier_that_passed_a_cheaters_frames_is_caught_after_the_honest_re_render(v):  # type: ignore[no-untyped-def]
    from framehive.coordinator.verification import penalties

    task = leases.claim_task(v["renderer"].id)
    render(task, image=lambda n: noise_png(1000 + n))  # fake frames
    check = leasing.claim_check(v["verifier"])
    answer(check, seed_of_truth=1000 + check.frame.number)  # the colluder copies the fake: a forged pass
    assert check.verdict == "pass" and task.state == "done"
    penalties.renderer_caught(v["renderer"], db.session.get(Job, v["job_id"]), "caught elsewhere")
    db.session.commit()
    assert task.state == "queued"
    again = leases.claim_task(v["arbiter"].id)
    assert again.id == task.id
    render(again)  # honest pixels this time
    answer(leasing.claim_check(v["sibling"]))  # an honest check of the re-render (the sibling's owner differs)
    assert again.state == "done"
    assert v["verifier"].times_caught == 1, "its forged pass contradicts the honest re-render"
    assert db.session.get(Check, check.id).reexamined


@pytest.fixture
def node(v):  # type: ignore[no-untyped-def]
    """A trusted node of the network (an account the admin marked trusted), able to settle claims."""
    return online_agent("node", "network", trusted=True)


def accepted_on_trust(v, image) -> Task:  # type: ignore[no-untyped-def]
    v["renderer"].trust = 10**6
    for key in db.session.execute(select(VerificationKey)).scalars():
        key.draw = 0.99
    db.session.commit()
    task = leases.claim_task(v["renderer"].id)
    render(task, image=image)
    assert task.state == "done"
    return task


def test_a_confirmed_claim_replaces_the_frame_and_penalises_the_renderer(v, node, api):  # type: ignore[no-untyped-def]
    task = accepted_on_trust(v, image=lambda n: noise_png(1000 + n))  # fakes that nobody checked
    number = task.frame_numbers[0]
    response = api.post(f"/api/v1/jobs/{v['job_id']}/claims", json={"frames": str(number), "reason": "noise"})
    assert response.status_code == 201, response.get_json()
    claim = response.get_json()
    assert claim["state"] == "open" and claim["checks"][0]["kind"] == "claim"
    assert leasing.claim_check(v["verifier"]) is None, "claims go to trusted nodes only"
    check = leasing.claim_check(node)
    assert check.region == [0, 0, 64, 36], "the whole frame is rendered again"
    answer(check)
    claims = api.get(f"/api/v1/jobs/{v['job_id']}/claims").get_json()["claims"]
    assert claims[0]["state"] == "confirmed"
    frame = db.session.execute(select(Frame).filter_by(task_id=task.id, number=number)).scalar_one()
    assert (frame.verified_by, frame.worker_id, frame.blob_sha256) == ("claim", node.id, check.result_sha256)
    assert v["renderer"].times_caught == 1


def test_a_confirmed_claim_tells_the_caught_renderer_to_drop_its_other_lease(v, node, api):  # type: ignore[no-untyped-def]
    """The claim is confirmed while the job runs and its renderer holds the job's other task: that task goes back to
    the queue, and the lease lost is returned up to the result endpoint, which sends the agent its Cancel."""
    task = accepted_on_trust(v, image=lambda n: noise_png(1000 + n))  # fakes that nobody checked
    other = leases.claim_task(v["renderer"].id)
    assert other is not None and other.id != task.id
    api.post(f"/api/v1/jobs/{v['job_id']}/claims", json={"frames": str(task.frame_numbers[0]), "reason": "noise"})
    check = leasing.claim_check(node)
    truth = fa.decode(noise_png(check.frame.number), 10**8)
    decide.judge(check, fa.encode_png(fa.crop(truth, fa.Region.from_list(check.render_rect))))
    lost = decide.apply(check)
    db.session.commit()
    assert db.session.get(Claim, check.claim_id).state == "confirmed"
    assert (other.state, other.worker_id) == ("queued", None)
    assert [(x.task_id, x.worker_id) for x in lost if x.check_id is None] == [(other.id, v["renderer"].id)]


def test_a_rejected_claim_counts_against_the_claimant(v, node, api):  # type: ignore[no-untyped-def]
    task = accepted_on_trust(v, image=noise_png)
    number = task.frame_numbers[1]
    api.post(f"/api/v1/jobs/{v['job_id']}/claims", json={"frames": str(number), "reason": "looks wrong"})
    answer(leasing.claim_check(node))
    claim = api.get(f"/api/v1/jobs/{v['job_id']}/claims").get_json()["claims"][0]
    assert claim["state"] == "rejected"
    assert db.session.get(Job, v["job_id"]).account.claims_rejected == 1
    assert v["renderer"].times_caught == 0


def test_claims_need_delivered_frames_and_a_reason(v, api):  # type: ignore[no-untyped-def]
    url = f"/api/v1/jobs/{v['job_id']}/claims"
    assert api.post(url, json={"frames": "1", "reason": "x"}).get_json()["error"]["code"] == "not_delivered"
    assert api.post(url, json={"frames": "1", "reason": " "}).get_json()["error"]["code"] == "bad_request"
    assert api.post(url, json={"frames": "zz", "reason": "x"}).get_json()["error"]["code"] == "bad_frames"
    assert api.post(url, json=["1"]).status_code == 400
    assert api.get(url).get_json()["claims"] == []


def _job_with_policy(api, scene_sha, policy: str, frames: str, chunk: int) -> Job:  # type: ignore[no-untyped-def]
    body = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": frames, "chunk": chunk,
                                          "policy": policy}).get_json()
    assert body["policy"] == policy
    job = db.session.get(Job, body["id"])
    job.priority = 100  # ahead of the fixture's job in the queue
    db.session.commit()
    return job


def test_policy_full_checks_every_frame_whole(v, api, scene_sha):  # type: ignore[no-untyped-def]
    job = _job_with_policy(api, scene_sha, "full", "1-2", 2)
    v["renderer"].trust = 10**6  # even a trusted renderer: every frame is rendered twice
    db.session.commit()
    task = leases.claim_task(v["renderer"].id)
    assert task.job_id == job.id
    render(task)
    checks = db.session.execute(select(Check).filter_by(job_id=job.id)).scalars().all()
    assert sorted(c.frame.number for c in checks) == [1, 2]
    assert all(c.region == [0, 0, 64, 36] for c in checks)


def test_policy_circle_checks_each_renderers_first_work_only(v, api, scene_sha):  # type: ignore[no-untyped-def]
    job = _job_with_policy(api, scene_sha, "circle", "1-3", 1)
    for key in db.session.execute(select(VerificationKey).filter_by(job_id=job.id)).scalars():
        key.draw = 0.5
    db.session.commit()
    first = leases.claim_task(v["renderer"].id)
    render(first)
    assert first.state == "verifying", "the renderer's first work in the job is checked"
    answer(leasing.claim_check(v["verifier"]))
    second = leases.claim_task(v["renderer"].id)
    render(second)
    assert second.state == "done", "later work is not"
    frame = db.session.execute(select(Frame).filter_by(task_id=second.id)).scalar_one()
    assert frame.verified_by == "trust"


def test_unknown_policy_is_refused(api, scene_sha):  # type: ignore[no-untyped-def]
    response = api.post("/api/v1/jobs", json={"scene": scene_sha, "policy": "none"})
    assert response.status_code == 400 and "policy" in response.get_json()["error"]["message"]
