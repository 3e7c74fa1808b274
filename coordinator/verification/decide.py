"""Judge a verifier's region render against the renderer's frame, then act on the verdict.

The verifier's opinion is never asked: it uploads pixels, the coordinator compares them. Same device class
(same Blender build and device kind) and the job's pinned settings give bit-identical pixels, so the
comparison is strict; across classes a calibrated tolerance applies (frame_analysis.decide).

Kinds of check and what their verdict means:
- verify: a blind verifier re-rendered a secret region. Pass → the key is settled (sometimes audited).
  Fail → arbitration by a third owner decides who was wrong.
- spot: the same for a small region of a frame no region check covers. A pass does not add to the renderer's
  trust (trust counts full region checks, which also catch what changes only part of a frame).
- arbitration: a third owner re-rendered the disputed region. It sides with the renderer (pass: the
  verifier lied) or against it (fail: the renderer cheated).
- audit: a random second opinion on a passed check, against collusion of renderer and verifier. It does
  not hold the task back (it may wait for a third owner to come online); a failed audit goes to arbitration.
- ringer: a second opinion on the check a verifier was about to get (ringers.py), whose answer is known once
  the frame's own checks decide. A pass earns the verifier trust then (at once if the frame is already
  verified with those pixels; never if they are found faked). A fail goes to arbitration, because the frame's
  renderer may have cheated (and its real check been passed by a colluder), by a third owner that has not
  looked at the frame: it decides whether the ringer's verifier lied or the frame's renderer cheated.

Arbiters are a third owner (never the renderer's, the job's or anyone's who already looked at the region)
and must be trusted or veterans (eligibility.may_arbitrate), until the arbitration has waited
FRAMEHIVE_FALLBACK_WAIT: then any third owner's render decides, the majority of the three independent renders.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Callable

import numpy as np
from flask import current_app

from .. import frame_analysis as fa
from .. import payments
from ..db import db, lock_row
from ..errors import ApiError
from ..models import Blob, Check, Job, Task, Worker
from ..states import CheckState, TaskState
from ..storage_access import storage
from ..transitions import LostLease, move_check
from . import comparison, penalties, ringers, tier1, trust
from .checks import new_check, task_checks
from .commit import accept_task

_rng = secrets.SystemRandom()
#: The checks a task's keys make (the others are second opinions, ringers and claims).
FIRST_CHECKS = ("verify", "spot")


def judge(check: Check, result: bytes, promote: Callable[[], object] | None = None) -> None:
    """Compare the verifier's PNG with the frame under test, keep the PNG, record metrics and verdict.

    The PNG is the render rect, or two of them stacked when the verifier also rendered a yardstick (another seed:
    frame_analysis.judge_region). Raises BadImage (nothing recorded) for a result that does not decode or has the
    wrong size. ``promote`` stores the result as it came when it is kept so (a staged upload's promotion inside
    the object store, worker_checks.py; by default it is written to storage); like any writing, it runs only once
    every refusal is past, so a refused result leaves no object behind.
    """
    limit = current_app.config["FRAMEHIVE_MAX_FRAME_PIXELS"]
    rendered = fa.decode(result, limit)
    if check.kind == "tier1":
        _judge_tier1(check, rendered, result, promote)
        return
    rect = fa.Region.from_list(check.render_rect)
    if rendered.shape[1] != rect.width:
        raise fa.BadImage(f"the region render is {rendered.shape[1]}x{rendered.shape[0]}, "
                          f"expected {rect.width}x{rect.height}")
    top, bottom = fa.split_yardstick(rendered, rect.height)
    inner = fa.Region.from_list(check.region).relative_to(rect)
    with storage().open(check.renderer_sha256 or "") as handle:
        frame = fa.decode(handle.read(), limit)
    ours = fa.crop(frame, fa.Region.from_list(check.region))
    cross = comparison.is_cross(check)
    verdict = fa.judge_region(ours, fa.crop(top, inner), None if bottom is None else fa.crop(bottom, inner), cross)
    _hold(check)
    check.mode = "cross" if cross else "strict"
    # Kept whole, yardstick included: a claim's is measured by it too (claims.py), and its top half alone becomes
    # the frame if the claim is confirmed (claims._replace).
    check.result_sha256 = keep(check, result, promote)
    check.metrics = verdict.metrics
    check.verdict = "pass" if verdict.passed else "fail"
    check.reason = verdict.reason
    move_check(check, CheckState.DONE)


def _judge_tier1(check: Check, rendered: np.ndarray, result: bytes, promote: Callable[[], object] | None) -> None:
    """The whole frame at low resolution against the frame downscaled (tier1.py). A flag ("fail") blames nobody:
    apply() orders a strict region check of the worst tile."""
    rect = fa.Region.from_list(check.render_rect)
    if (rendered.shape[1], rendered.shape[0]) != (rect.width, rect.height):
        raise fa.BadImage(f"the tier-1 render is {rendered.shape[1]}x{rendered.shape[0]}, "
                          f"expected {rect.width}x{rect.height}")
    with storage().open(check.renderer_sha256 or "") as handle:
        frame = fa.decode(handle.read(), current_app.config["FRAMEHIVE_MAX_FRAME_PIXELS"])
    if frame.shape[2] != rendered.shape[2]:
        raise fa.BadImage("the tier-1 render and the frame differ in alpha")
    compared = tier1.compare(frame, rendered, frame.shape[1] // rect.width)  # the factor divides the width
    _hold(check)
    check.mode = "tier1"
    check.result_sha256 = keep(check, result, promote)
    check.metrics = {"min_tile_psnr": compared.min_tile_psnr, "worst": compared.worst.as_list()}
    check.verdict = "fail" if compared.flagged else "pass"
    check.reason = (f"tier1: tile at {compared.worst.as_list()} {compared.min_tile_psnr:.1f} dB < "
                    f"{tier1.MIN_TILE_PSNR}" if compared.flagged else "tier1: within tolerance")
    move_check(check, CheckState.DONE)


def _hold(check: Check) -> None:
    """Lock the job's row before the check is written, then make sure the check is still what the verifier was
    answering (409 lease_lost if not). The job first is the order every transaction acting on a check follows (job,
    then checks, workers, accounts, escrow): a renderer caught on the job voids its other pending checks while
    holding the job's row, and a verifier's upload that had written one of those checks before waiting for the job
    deadlocked with it (PostgreSQL). The check's row is held from then on too, so a release (the reaper's, a
    disconnect's: leasing.release) waits for the verdict and then finds the check done, and one that committed
    before is seen here. Nothing to do on SQLite: its transactions are serial and the check was read in this one."""
    if db.engine.dialect.name == "sqlite":
        return
    held = check.state, check.verifier_id, check.attempt
    lock_row(Job, check.job_id)
    # Not lock(check): the check may have come with its parties joined (handles.held_check), and PostgreSQL locks no
    # row of an outer join's nullable side. Its row held, then the lease's columns read again.
    lock_row(Check, check.id)
    db.session.refresh(check, ["state", "verifier_id", "attempt"])
    if (check.state, check.verifier_id, check.attempt) != held:
        raise ApiError(409, "lease_lost", "you no longer hold this check")


def keep(check: Check, data: bytes, promote: Callable[[], object] | None = None) -> str:
    """Store a verifier's render as a blob (once per content: by ``promote`` if given, the bytes being the upload's
    own); returns its sha256."""
    sha256 = hashlib.sha256(data).hexdigest()
    if db.session.get(Blob, sha256) is None:
        if promote is not None:
            promote()
        else:
            storage().put(sha256, io.BytesIO(data), len(data))
        db.session.add(Blob(sha256=sha256, size=len(data), uploader_id=check.verifier.account_id
                            if check.verifier else None))
    return sha256


def apply(check: Check) -> list[LostLease]:
    """Act on a judged check. No commit.

    The job's row is locked first (judge did already, when called in this transaction), before the rows of workers
    (trust, penalties), accounts and the escrow that the verdict changes: every transaction acting on a check of
    the job takes them in that order, so two of them cannot each hold a row the other waits for (a renderer's
    worker row and the job's, on PostgreSQL)."""
    lock_row(Job, check.job_id)
    handler = {"verify": _on_verify, "spot": _on_verify, "audit": _on_audit, "arbitration": _on_arbitration,
               "ringer": _on_ringer, "claim": _on_claim, "tier1": _on_tier1}[check.kind]
    return handler(check)


def _renderer(check: Check) -> Worker:
    """The worker whose frame ``check`` judges. Every check but a ringer names one (new_check's ``renderer``), and a
    ringer's is its frame's renderer, which a verified frame has."""
    assert check.renderer is not None, f"check {check.id} ({check.kind}) names no renderer"
    return check.renderer


def _verifier(check: Check) -> Worker:
    """The worker that rendered the region of ``check``: a check with a verdict has one."""
    assert check.verifier is not None, f"check {check.id} ({check.kind}) has a verdict but no verifier"
    return check.verifier


def _on_verify(check: Check) -> list[LostLease]:
    if check.verdict == "pass":
        if check.kind == "verify":
            trust.passed(_renderer(check))
        payments.pay_check(check)
        if _rng.random() < current_app.config["FRAMEHIVE_AUDIT_RATE"]:
            _second_opinion("audit", check, check)
        return settle(check.task)
    if check.verifier is not None and check.verifier.account.trusted:
        return penalties.renderer_caught(_renderer(check), check.frame.job, f"trusted check {check.id} failed")
    _second_opinion("arbitration", check, check)
    return []


def _on_tier1(check: Check) -> list[LostLease]:
    """Passed: paid, and the task may settle. Flagged: a strict region check of the worst tile decides (a tier-1
    tolerance never blames anyone), for any verifier this check allowed (bit-exact: the tier-1 verifier too)."""
    if check.verdict == "pass":
        payments.pay_check(check)
        return settle(check.task)
    job: Job = check.frame.job
    metrics = check.metrics
    assert metrics is not None, f"tier-1 check {check.id} was flagged without metrics"
    flagged = tier1.Tier1(metrics["min_tile_psnr"], fa.Region.from_list(metrics["worst"]), True)
    region = tier1.follow_up_region(flagged, job.resolution_x, job.resolution_y)
    new_check("verify", check.frame, region.as_list(), list(check.excluded_accounts), renderer=check.renderer,
              parent=check, renderer_sha256=check.renderer_sha256)
    return []


def _on_audit(check: Check) -> list[LostLease]:
    if check.verdict == "pass":
        payments.pay_check(check)
        return []
    _second_opinion("arbitration", check, check)  # the auditor may be the liar: a fourth owner decides
    return []


def _on_arbitration(check: Check) -> list[LostLease]:
    disputed = db.session.get(Check, check.parent_id)
    assert disputed is not None
    job: Job = check.frame.job
    if check.verdict == "pass":  # the renderer was right: whoever said otherwise lied
        payments.pay_arbiter(check, loser=disputed.verifier)
        if disputed.verifier is not None and not comparison.renders_agree(disputed, check):
            penalties.verifier_caught(disputed.verifier, f"check {disputed.id} contradicted by arbitration {check.id}")
        if disputed.kind == "verify":
            trust.passed(_renderer(check))
        return settle(check.task)
    payments.pay_arbiter(check, loser=check.renderer)
    payments.pay_check(disputed)  # the verifier that said "fail" was right
    if disputed.verifier is not None:
        trust.passed(disputed.verifier)
    lost = penalties.renderer_caught(_renderer(check), job, f"arbitration {check.id} confirmed check {disputed.id}")
    if disputed.kind == "audit":  # the first verifier had agreed with a cheating renderer: collusion
        first = db.session.get(Check, disputed.parent_id)
        if first is not None and first.verifier is not None and not comparison.renders_agree(first, check):
            penalties.verifier_caught(first.verifier, f"passed check {first.id} of a frame found faked")
    return lost


def _on_ringer(check: Check) -> list[LostLease]:
    if check.verdict == "pass":
        if ringers.answer_known(check):
            trust.passed(_verifier(check))
        else:
            ringers.wait_for_answer(check)  # credited by settle() once the frame's own checks verify it
        return []
    if check.verifier is not None and check.verifier.account.trusted and check.renderer is not None:
        return penalties.renderer_caught(check.renderer, check.frame.job, f"trusted ringer {check.id} failed")
    ringers.exclude_lookers(check)  # the arbiter must not be whoever checked the frame for real
    _second_opinion("arbitration", check, check)  # the verifier lied, or the frame was never what it seemed
    return []


def _on_claim(check: Check) -> list[LostLease]:
    from .claims import claim_checked

    payments.pay_check(check)
    return claim_checked(check)


def _second_opinion(kind: str, source: Check, parent: Check) -> Check:
    excluded = set(source.excluded_accounts) | {source.frame.job.account_id}
    if source.renderer is not None:
        excluded.add(source.renderer.account_id)
    chain: Check | None = parent
    while chain is not None:  # nobody who already looked at this region may judge it again
        if chain.verifier is not None:
            excluded.add(chain.verifier.account_id)
        chain = db.session.get(Check, chain.parent_id) if chain.parent_id else None
    return new_check(kind, source.frame, source.region, sorted(excluded), renderer=source.renderer,
                     parent=parent, renderer_sha256=source.renderer_sha256)


def settle(task: Task | None) -> list[LostLease]:
    """A task whose checks are all decided in the renderer's favour is accepted. Its checks are read once
    (checks.task_checks: an arbitration is of its disputed check's frame, so of the same task)."""
    if task is None or task.state != TaskState.VERIFYING:
        return []
    checks = task_checks(task)
    if any(c.state in CheckState.OPEN and c.kind not in ("audit", "ringer") for c in checks):
        return []
    for check in checks:
        if check.verdict != "fail" or check.kind not in FIRST_CHECKS:
            continue
        if check.renderer_sha256 != check.frame.blob_sha256:
            continue  # about pixels since replaced (their renderer was caught and the frame rendered again)
        # Otherwise a failed check is settled only by an arbitration that sided with the renderer.
        if not any(c.parent_id == check.id and c.verdict == "pass" for c in checks):
            return []
    accept_task(task, checks)
    for ringer in ringers.credit_waiting(checks):  # passed before the frame was verified: known now
        trust.passed(_verifier(ringer))
    return []
