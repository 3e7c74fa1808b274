"""Checks across device classes (coordinator/verification/comparison.py): the order asks the verifier for a
yardstick render, a stacked upload is judged by the yardstick rule, and a claim's stacked render is kept whole while
only its job-seed half becomes the frame (claims across classes: test_claim_fallback.py)."""

from __future__ import annotations

import numpy as np
import pytest
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases
from framehive.coordinator.db import db
from framehive.coordinator.dispatch import verify_message
from framehive.coordinator.models import Frame, VerificationKey
from framehive.coordinator.storage_access import storage
from framehive.coordinator.verification import decide, leasing
from sqlalchemy import select

from tests.coordinator.kit import judge, noise_png, render
from tests.coordinator.test_verification import node  # noqa: F401  (a trusted node: the claim fixture)


@pytest.fixture(autouse=True)
def no_fallback_wait(app):  # type: ignore[no-untyped-def]
    """Checks go to another device class at once (the same-class-first wait is tested in test_bounded_waits)."""
    app.config["FRAMEHIVE_FALLBACK_WAIT"] = 0.0


def _stacked(truth: np.ndarray, rect: fa.Region, seed: int) -> bytes:
    """What a verifier uploads with a yardstick: its render of ``rect``, and a second one with other noise."""
    top = fa.crop(truth, rect)
    noise = np.random.default_rng(seed).integers(-3, 4, top.shape)
    bottom = np.clip(top.astype(int) + noise, 0, 255).astype(np.uint8)
    return fa.encode_png(np.concatenate([top, bottom]))


def _judge(check, data: bytes) -> None:  # type: ignore[no-untyped-def]
    judge(check, data)
    db.session.commit()
    decide.apply(check)
    db.session.commit()


def test_an_order_asks_for_a_yardstick_and_says_whether_the_check_crosses_classes(v):  # type: ignore[no-untyped-def]
    render(leases.claim_task(v["renderer"].id))
    v["verifier"].device = "CUDA"  # another device class than the renderer's CPU
    db.session.commit()
    check = leasing.claim_check(v["verifier"])
    order = verify_message(check)
    assert order.cross and order.yardstick_seed is not None and order.yardstick_seed > 0
    assert verify_message(check).yardstick_seed != order.yardstick_seed, "a fresh seed per order"
    rect = fa.Region.from_list(check.render_rect)
    truth = fa.decode(noise_png(check.frame.number), 10**8)
    single = fa.encode_png(fa.crop(truth, rect))
    _judge(check, single)
    assert check.verdict == "fail" and "no yardstick" in check.reason, "across classes a yardstick is required"


def test_an_honest_cross_class_render_with_its_yardstick_passes(v):  # type: ignore[no-untyped-def]
    render(leases.claim_task(v["renderer"].id), image=lambda n: noise_png(n))
    v["verifier"].device = "CUDA"
    db.session.commit()
    check = leasing.claim_check(v["verifier"])
    truth = fa.decode(noise_png(check.frame.number), 10**8)
    _judge(check, _stacked(truth, fa.Region.from_list(check.render_rect), 1))
    assert (check.mode, check.verdict) == ("cross", "pass"), check.reason
    assert "ratio" in check.metrics


def test_a_claims_stacked_render_becomes_the_frame_without_its_yardstick(v, node, api):  # type: ignore[no-untyped-def]  # noqa: F811
    v["renderer"].trust = 10**6
    for key in db.session.execute(select(VerificationKey)).scalars():
        key.draw = 0.99  # accepted on trust: nobody checked these fakes
    node.device = "OPTIX"  # the trusted node is of another device class: it renders a yardstick too
    db.session.commit()
    task = leases.claim_task(v["renderer"].id)
    render(task, image=lambda n: noise_png(1000 + n))
    number = task.frame_numbers[0]
    claim = {"frames": str(number), "reason": "noise"}
    assert api.post(f"/api/v1/jobs/{v['job_id']}/claims", json=claim).status_code == 201
    check = leasing.claim_check(node)
    assert verify_message(check).cross
    truth = fa.decode(noise_png(number), 10**8)
    stack = _stacked(truth, fa.Region.from_list(check.render_rect), 2)
    _judge(check, stack)
    with storage().open(check.result_sha256) as handle:
        assert handle.read() == stack, "the check keeps its yardstick: two veterans' claim renders are measured by it"
    frame = db.session.execute(select(Frame).filter_by(task_id=task.id, number=number)).scalar_one()
    assert frame.verified_by == "claim"
    with storage().open(frame.blob_sha256) as handle:
        delivered = fa.decode(handle.read(), 10**8)
    assert np.array_equal(delivered, truth), "the trusted render alone, 64x36, not the stack"
