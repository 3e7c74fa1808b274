"""Who may take a check, now or once its wait is over: the rules of leasing, with every wait bounded.

- Never: an agent without the verify role, a suspended one, the renderer itself, or an agent of an account the
  check excludes (the renderer's, the job's, anyone's who already looked at the region).
- Same class first: a verifier of the renderer's device class (same Blender build, same device kind) renders
  bit-identical pixels, so its comparison is strict. One of another class compares with a tolerance, which
  punishes honest noise or lets cheats through more easily, so it may take a check only once the check has
  waited ``FRAMEHIVE_FALLBACK_WAIT`` seconds.
- Arbiters are trusted nodes or veterans (``may_arbitrate``). Once an arbitration has waited as long, any third
  owner may take it: its render is the third independent one, and the majority of the three decides (the
  arbiter sides with the renderer or with the verifier that disputed it), settled as any arbitration.
- Claims overturn frames already delivered as verified: trusted nodes only, of the renderer's class first.

The wait runs from the check's creation: whatever happens meanwhile (verifiers busy, offline, of the wrong
class), it ends at ``created_at + FRAMEHIVE_FALLBACK_WAIT``.
"""

from __future__ import annotations

from flask import current_app

from .. import capabilities
from ..models import Check, Worker, now


def can_verify(worker: Worker) -> bool:
    return "verify" in (worker.roles or []) and not worker.suspended


def may_arbitrate(worker: Worker) -> bool:
    """Arbiters are trusted nodes, or veterans: never caught, and trusted by their record (ARBITER_MIN_TRUST)."""
    if worker.account.trusted:
        return True
    return worker.times_caught == 0 and worker.trust >= int(current_app.config["FRAMEHIVE_ARBITER_MIN_TRUST"])


def fallback_at(check: Check) -> float:
    """When the check's wait for a same-class verifier (or a trusted arbiter) ends (UNIX seconds)."""
    return check.created_at + float(current_app.config["FRAMEHIVE_FALLBACK_WAIT"])


def waited(check: Check) -> bool:
    return now() >= fallback_at(check)


def same_class(worker: Worker, check: Check) -> bool:
    return check.renderer is None or check.renderer.device_class == worker.device_class


def may_take(worker: Worker, check: Check, late: bool | None = None) -> bool:
    """Whether ``worker`` may lease ``check``: now (``late`` None: whether its wait is over decides), or as if its
    wait were over (True) or not (False)."""
    if not can_verify(worker) or worker.account_id in check.excluded_accounts or check.renderer_id == worker.id:
        return False
    if capabilities.unmet(check.frame.job, worker):
        return False  # it renders the job's scene too: a Blender too old for it, or not the device the artist chose
    late = waited(check) if late is None else late
    if check.kind == "claim" and not worker.account.trusted:
        return False  # claims are settled by the network's own trusted nodes
    if check.kind == "arbitration" and not (late or may_arbitrate(worker)):
        return False
    return late or same_class(worker, check)
