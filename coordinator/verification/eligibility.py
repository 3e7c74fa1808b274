"""Who may take a check, and from when: the rules of leasing, with every wait bounded.

- Never: an agent without the verify role, a suspended one, the renderer itself, or an agent of an account the
  check excludes (the renderer's, the job's, anyone's who already looked at the region).
- Same class first: a verifier of the renderer's device class (same Blender build, same device kind) renders
  bit-identical pixels, so its comparison is strict. One of another class compares with a tolerance, which
  punishes honest noise or lets cheats through more easily, so it may take a check only once the check has
  waited ``FRAMEHIVE_FALLBACK_WAIT`` seconds.
- Arbiters are trusted nodes or veterans (``may_arbitrate``). Once an arbitration has waited as long, any third
  owner may take it: its render is the third independent one, and the majority of the three decides (the
  arbiter sides with the renderer or with the verifier that disputed it), settled as any arbitration. Never an
  owner that took another check of the same region (``lookers``, read when it would be leased: a dispute's
  exclusions were fixed when it was made, and the real check a ringer stood in for could be leased after the ringer
  failed, by an owner that then also took the ringer's dispute, seen in issue 16's runs).
- Claims overturn frames already delivered as verified, so they go to trusted nodes first: of the renderer's
  class at once, of another class once the claim has waited ``FRAMEHIVE_FALLBACK_WAIT``. From then on veterans
  may take them too, of the renderer's class first (another class after a second such wait), except veterans of
  the claim's outsiders (``claim_outsiders``: the renderer's, the claimant's and the job's accounts, and every
  account that already rendered a check of that frame). A veteran is less sure than a trusted node, so claims.py
  overturns a frame on veterans' renders only when two of two different owners both contradict it and agree with
  each other; the second re-render goes to the first veteran's class first (there "same class" means that one).

The wait runs from the check's creation (a claim's re-renders: from the claim's filing, so a second veteran's
re-render does not wait again): whatever happens meanwhile (verifiers busy, offline, of the wrong class), each
step ends at a fixed time, ``opens_at``.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from .. import capabilities
from ..db import db
from ..models import Check, Claim, Worker, now


def can_verify(worker: Worker) -> bool:
    return "verify" in (worker.roles or []) and not worker.suspended


def may_arbitrate(worker: Worker) -> bool:
    """Arbiters are trusted nodes, or veterans: never caught, and trusted by their record (ARBITER_MIN_TRUST)."""
    if worker.account.trusted:
        return True
    return worker.times_caught == 0 and worker.trust >= int(current_app.config["FRAMEHIVE_ARBITER_MIN_TRUST"])


def wait() -> float:
    return float(current_app.config["FRAMEHIVE_FALLBACK_WAIT"])


def wait_start(check: Check) -> float:
    """When the check's waits began (UNIX seconds): its creation, or for a claim's re-render the claim's filing."""
    if check.kind == "claim" and check.claim_id is not None:
        claim = db.session.get(Claim, check.claim_id)
        if claim is not None:
            return min(claim.created_at, check.created_at)
    return check.created_at


def fallback_at(check: Check) -> float:
    """When the check's first wait (for a same-class verifier, or a trusted arbiter) ends (UNIX seconds)."""
    return wait_start(check) + wait()


def same_class(worker: Worker, check: Check) -> bool:
    """Of the renderer's device class; for a claim's second re-render, of the first veteran's (claims.py compares
    the two renders with each other, which only one class does bit for bit)."""
    reference = check.renderer
    if check.kind == "claim" and check.parent_id is not None:
        first = db.session.get(Check, check.parent_id)
        if first is not None and first.verifier is not None:
            reference = first.verifier
    return reference is None or reference.device_class == worker.device_class


def claim_outsiders(check: Check) -> set[int]:
    """Accounts whose veterans may not re-render a claimed frame: the renderer's, the claimant's, the job's, and
    everyone's who rendered any other check of the frame (its verifiers, and a claim's first veteran)."""
    outsiders = set(check.excluded_accounts) | {check.frame.job.account_id}
    if check.renderer is not None:
        outsiders.add(check.renderer.account_id)
    claim = db.session.get(Claim, check.claim_id) if check.claim_id is not None else None
    if claim is not None:
        outsiders.add(claim.account_id)
    outsiders.update(lookers(check))
    return outsiders


def lookers(check: Check, *, same_region: bool = False) -> set[int]:
    """Accounts whose agents took another check of ``check``'s frame (any state), or only of its very region: they
    have looked at it."""
    rows = db.session.execute(select(Worker.account_id, Check.region).join(Check, Check.verifier_id == Worker.id)
                              .where(Check.frame_id == check.frame_id, Check.id != check.id)).all()
    return {account_id for account_id, region in rows
            if not same_region or list(region or []) == list(check.region or [])}


def opens_at(worker: Worker, check: Check) -> float | None:
    """From when ``worker`` may lease ``check`` (UNIX seconds; at or before now: at once), or None: never."""
    if not can_verify(worker) or worker.account_id in check.excluded_accounts or check.renderer_id == worker.id:
        return None
    if capabilities.unmet(check.frame.job, worker):
        return None  # it renders the job's scene too: a Blender too old for it, or not the device the artist chose
    start, step = wait_start(check), wait()
    same = same_class(worker, check)
    if check.kind == "claim":
        if worker.account.trusted:
            return start if same else start + step
        if may_arbitrate(worker) and worker.account_id not in claim_outsiders(check):
            return start + step if same else start + 2 * step
        return None
    if check.kind == "arbitration":
        if worker.account_id in lookers(check, same_region=True):
            return None
        if not may_arbitrate(worker):
            return start + step  # any third owner, once the wait for an arbiter is over: the majority decides
    return start if same else start + step


def may_take(worker: Worker, check: Check) -> bool:
    """Whether ``worker`` may lease ``check`` now."""
    at = opens_at(worker, check)
    return at is not None and now() >= at
