"""Spot checks on a real database (SQLite and PostgreSQL): one secret spot key per frame, used for the frames no
region check covers, at the spot rate whatever the renderer's trust. Frames are noise images (``kit``); what
spots catch on real renders is measured by benchmarks/verification.py. The ``v`` fixture is in conftest.py."""

from __future__ import annotations

import random

import pytest
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases, ledger
from framehive.coordinator.db import db
from framehive.coordinator.dispatch import verify_message
from framehive.coordinator.models import Account, Check, Frame, Task, VerificationKey
from framehive.coordinator.verification import keys, leasing, ringers
from sqlalchemy import select

from tests.coordinator.kit import answer, noise_png, render


def spot_keys(job_id: int) -> list[VerificationKey]:
    return list(db.session.execute(select(VerificationKey).filter_by(job_id=job_id, kind="spot")).scalars())


def at_the_floor(v, app) -> None:  # type: ignore[no-untyped-def]
    """The renderer is trusted by its record, and no region key falls under its rate: only spots remain."""
    app.config.update(FRAMEHIVE_SPOT_RATE=1.0)
    v["renderer"].trust = 10**6
    for key in db.session.execute(select(VerificationKey).filter_by(kind="region")).scalars():
        key.draw = 0.99
    db.session.commit()


def balance_of(name: str) -> int:
    account = db.session.execute(select(Account).filter_by(name=name)).scalar_one()
    return ledger.balance(ledger.account_book(account.id))


def test_every_frame_of_an_adaptive_job_has_a_secret_spot_key(v):  # type: ignore[no-untyped-def]
    spots = spot_keys(v["job_id"])
    frames = db.session.execute(select(Frame).filter_by(job_id=v["job_id"])).scalars().all()
    assert sorted((k.task_id, k.frame) for k in spots) == sorted((f.task_id, f.number) for f in frames)
    for key in spots:
        region = fa.Region.from_list(key.region)
        assert key.state == "sealed" and 0 <= key.draw < 1 and region.fits(64, 36)
        assert (region.width, region.height) == (8, 8), "1/256 of 64x36 is under the 8x8 minimum"
    assert len({tuple(k.region) for k in spots}) > 1, "each spot is drawn on its own"


@pytest.mark.parametrize("policy", ["full", "circle"])
def test_full_and_circle_jobs_have_no_spot_keys(v, api, scene_sha, policy):  # type: ignore[no-untyped-def]
    job = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-4", "policy": policy}).get_json()
    assert spot_keys(job["id"]) == []


def test_spot_regions_are_small_and_scale_with_the_frame():
    rng = random.Random(7)
    region = fa.draw_region(rng, 1920, 1080, keys.SPOT_FRACTION)
    assert (region.width, region.height) == (120, 68)
    assert region.area / (1920 * 1080) == pytest.approx(1 / 256, rel=0.02)


def test_a_new_renderer_gets_a_region_check_and_spots_on_the_frames_it_does_not_cover(v, app):  # type: ignore[no-untyped-def]
    app.config.update(FRAMEHIVE_SPOT_RATE=1.0)
    task = leases.claim_task(v["renderer"].id)
    render(task)
    checks = db.session.execute(select(Check).filter_by(task_id=task.id)).scalars().all()
    region_key = db.session.execute(select(VerificationKey).filter_by(task_id=task.id, kind="region")).scalar_one()
    assert sorted((c.kind, c.frame.number) for c in checks) == sorted(
        [("verify", region_key.frame)] + [("spot", n) for n in task.frame_numbers if n != region_key.frame]
    ), "one check per frame: the region key's frame gets no spot as well"
    spot = next(c for c in checks if c.kind == "spot")
    assert set(vars(verify_message(leasing.claim_check(v["verifier"])))) == set(vars(verify_message(spot)))
    rect, region = fa.Region.from_list(spot.render_rect), fa.Region.from_list(spot.region)
    assert region.relative_to(rect) is not None and rect.area > region.area, "rendered with the margin"
    keys_of_task = db.session.execute(select(VerificationKey).filter_by(task_id=task.id)).scalars().all()
    assert {(k.kind, k.frame, k.state) for k in keys_of_task if k.state == "used"} == {
        ("region", region_key.frame, "used")} | {("spot", n, "used") for n in task.frame_numbers
                                                 if n != region_key.frame}


def test_a_renderer_at_the_floor_still_has_its_frames_spot_checked(v, app):  # type: ignore[no-untyped-def]
    at_the_floor(v, app)
    task = leases.claim_task(v["renderer"].id)
    render(task)
    assert task.state == "verifying", "no region check fell under the rate, but the spots did"
    spots = db.session.execute(select(Check).filter_by(task_id=task.id)).scalars().all()
    assert sorted((c.kind, c.frame.number) for c in spots) == [("spot", n) for n in task.frame_numbers]
    before = balance_of("verifier-owner")
    for _ in spots:
        answer(leasing.claim_check(v["verifier"]))
    assert {c.verdict for c in spots} == {"pass"}
    assert task.state == "done"
    frames = db.session.execute(select(Frame).filter_by(task_id=task.id)).scalars().all()
    assert {(f.state, f.verified_by) for f in frames} == {("verified", "check")}
    assert v["renderer"].trust == 10**6, "a spot pass does not add trust: trust counts region checks"
    price = app.config["FRAMEHIVE_SPOT_CHECK_PRICE"]
    assert price < app.config["FRAMEHIVE_CHECK_PRICE"]
    assert balance_of("verifier-owner") == before + len(spots) * price


def test_a_faking_renderer_at_the_floor_is_caught_by_a_spot(v, app):  # type: ignore[no-untyped-def]
    at_the_floor(v, app)
    task = leases.claim_task(v["renderer"].id)
    faked = task.frame_numbers[0]
    render(task, image=lambda n: noise_png(1000 + n) if n == faked else noise_png(n))
    for _ in db.session.execute(select(Check).filter_by(task_id=task.id)).scalars().all():
        answer(leasing.claim_check(v["verifier"]))
    spot = db.session.execute(select(Check).filter_by(kind="spot", verdict="fail")).scalar_one()
    assert spot.frame.number == faked and task.state == "verifying"
    arbitration = db.session.execute(select(Check).filter_by(kind="arbitration")).scalar_one()
    assert (arbitration.parent_id, arbitration.region) == (spot.id, spot.region)
    answer(leasing.claim_check(v["arbiter"]))
    renderer = v["renderer"]
    assert (arbitration.verdict, renderer.trust, renderer.times_caught) == ("fail", 0, 1)
    assert task.state == "queued", "caught: the task is rendered again"
    frames = db.session.execute(select(Frame).filter_by(task_id=task.id)).scalars().all()
    assert {f.state for f in frames} == {"queued"}
    fresh = db.session.execute(select(VerificationKey).filter_by(task_id=task.id, state="sealed")).scalars().all()
    assert sorted(k.kind for k in fresh) == ["region"] + ["spot"] * len(task.frame_numbers)


def test_a_trusted_node_gets_no_spot_checks(v, app):  # type: ignore[no-untyped-def]
    app.config.update(FRAMEHIVE_SPOT_RATE=1.0)
    v["renderer"].account.trusted = True
    db.session.commit()
    task = leases.claim_task(v["renderer"].id)
    render(task)
    assert task.state == "done" and db.session.execute(select(Check)).first() is None


def test_the_spot_rate_samples_by_the_keys_dice(v, app):  # type: ignore[no-untyped-def]
    at_the_floor(v, app)
    app.config.update(FRAMEHIVE_SPOT_RATE=0.5)
    task = db.session.execute(select(Task).filter_by(job_id=v["job_id"]).order_by(Task.id)).scalars().first()
    first, second = sorted(task.frame_numbers)
    for key in spot_keys(v["job_id"]):
        key.draw = 0.2 if key.frame == first else 0.7
    db.session.commit()
    leased = leases.claim_task(v["renderer"].id)
    assert leased.id == task.id
    render(leased)
    checks = db.session.execute(select(Check).filter_by(task_id=task.id)).scalars().all()
    assert [(c.kind, c.frame.number) for c in checks] == [("spot", first)], "0.7 is above the rate"


def test_a_ringer_standing_in_for_a_spot_is_spot_sized(v, app, referee):  # type: ignore[no-untyped-def]
    at_the_floor(v, app)
    task = leases.claim_task(v["renderer"].id)
    render(task)
    for _ in task.frame_numbers:
        answer(leasing.claim_check(v["verifier"]))  # verified frames to make ringers of
    other = leases.claim_task(v["renderer"].id)
    render(other)
    spot = db.session.execute(select(Check).filter_by(task_id=other.id, kind="spot")).scalars().first()
    ringer = ringers.make_ringer(v["arbiter"], like=spot)
    assert ringer is not None and ringer.kind == "ringer"
    assert fa.Region.from_list(ringer.region).area <= 2 * fa.Region.from_list(spot.region).area
    big = ringers.make_ringer(v["arbiter"])
    assert big is not None and fa.Region.from_list(big.region).area > 2 * fa.Region.from_list(spot.region).area
