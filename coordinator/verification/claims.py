"""Bad-result claims: an artist disputes delivered frames.

Each disputed frame is re-rendered whole on a trusted node (an account the admin marked trusted) and
compared with the delivered frame. If any frame differs, the claim is confirmed: the trusted render
replaces the frame, its renderer is caught and so is every verifier that passed it. If all match, the
claim is rejected and counted against the claimant. No commits: callers commit.

A whole-frame render on a trusted node is the network's most expensive work, so claims are not free: filing
one holds its price (payments.claim_price, per frame) from the claimant, given back if the claim is confirmed
and kept if it is rejected, and a job takes at most FRAMEHIVE_MAX_CLAIMS_PER_JOB claims.
"""

from __future__ import annotations

from flask import current_app
from framehive.protocol import frameranges
from sqlalchemy import func, select

from .. import events, payments
from ..db import db, lock
from ..errors import ApiError
from ..models import Check, Claim, Frame, Job, now
from ..states import FrameState
from ..transitions import LostLease
from . import penalties
from .checks import new_check
from .reexamine import reexamine

MAX_CLAIM_FRAMES = 100
OPEN = ("queued", "leased")


def file_claim(job: Job, account_id: int, frames_spec: str, reason: str) -> Claim:
    """Validate and open a claim over delivered (verified) frames of a finished or running job."""
    if job.files_collected_at is not None:
        raise ApiError(409, "files_collected", f"job {job.id}'s files were deleted after the retention period: "
                                               "there is nothing left to compare a claim with")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise ApiError(400, "bad_request", "'reason' must say what is wrong (1 to 2000 characters)")
    try:
        numbers = frameranges.parse(frames_spec)
    except frameranges.FrameRangeError as exc:
        raise ApiError(400, "bad_frames", str(exc)) from None
    if len(numbers) > MAX_CLAIM_FRAMES:
        raise ApiError(400, "bad_frames", f"claim at most {MAX_CLAIM_FRAMES} frames at a time")
    _check_room(job)
    frames = {f.number: f for f in job.frames}
    undelivered = [n for n in numbers if n not in frames or frames[n].state != FrameState.VERIFIED]
    if undelivered:
        raise ApiError(400, "not_delivered", f"frames {frameranges.format_frames(undelivered)} were not delivered "
                                             "as verified; only delivered frames can be claimed")
    payments.check_claim_funds(account_id, len(numbers))
    claim = Claim(job_id=job.id, account_id=account_id, frames_spec=frameranges.format_frames(numbers),
                  reason=reason.strip())
    db.session.add(claim)
    db.session.flush()
    payments.hold_claim(claim, len(numbers))
    for number in numbers:
        frame = frames[number]
        whole = [0, 0, job.resolution_x, job.resolution_y]
        check = new_check("claim", frame, whole, [frame.worker.account_id] if frame.worker else [],
                          renderer=frame.worker)
        check.claim_id = claim.id
    current_app.logger.info("claim %s on job %s frames %s: %r", claim.id, job.id, claim.frames_spec, reason[:200])
    events.record(events.CLAIM_FILED, f"claim {claim.id} filed on job {job.id} frames {claim.frames_spec}: "
                                      f"{claim.reason}", job=job)
    return claim


def _check_room(job: Job) -> None:
    """At most FRAMEHIVE_MAX_CLAIMS_PER_JOB claims per job (409 ``too_many_claims``; 0: no limit); the job's row
    is locked while they are counted, so two claims filed at once cannot both be the last."""
    limit = int(current_app.config["FRAMEHIVE_MAX_CLAIMS_PER_JOB"])
    lock(job)
    filed = db.session.execute(select(func.count()).select_from(Claim).filter_by(job_id=job.id)).scalar_one()
    if limit and filed >= limit:
        raise ApiError(409, "too_many_claims", f"job {job.id} already had {filed} claims, the most a job may have",
                       claims=filed, limit=limit)


def claim_checked(check: Check) -> list[LostLease]:
    """A trusted re-render of one claimed frame came in; decide the claim when all have."""
    claim = db.session.get(Claim, check.claim_id)
    assert claim is not None
    checks = db.session.execute(select(Check).filter_by(claim_id=claim.id)).scalars().all()
    if any(c.state in OPEN for c in checks):
        return []
    failed = [c for c in checks if c.verdict == "fail"]
    claim.decided_at = now()
    if not failed:
        claim.state, claim.outcome = "rejected", "the trusted re-render matches every disputed frame"
        claimant = claim_account(claim)
        claimant.claims_rejected += 1
        payments.settle_claim(claim)
        _settled(claim, check)
        return []
    claim.state = "confirmed"
    claim.outcome = f"frames {frameranges.format_frames([c.frame.number for c in failed])} differ from a trusted " \
                    "re-render; replaced"
    for bad in failed:
        _replace(bad)
    payments.settle_claim(claim)
    _settled(claim, check)
    return []


def _settled(claim: Claim, check: Check) -> None:
    events.record(events.CLAIM_SETTLED, f"claim {claim.id} on job {claim.job_id} {claim.state}: {claim.outcome}",
                  job=check.frame.job)


def claim_account(claim: Claim):  # type: ignore[no-untyped-def]
    from ..models import Account

    return db.session.get(Account, claim.account_id)


def _replace(check: Check) -> None:
    """The trusted render becomes the frame; its renderer is caught, and so is every verifier that passed it whose
    own render the trusted one contradicts (reexamine: a verifier of another device class, or one that checked
    another part of the frame, may have passed it honestly)."""
    frame: Frame = check.frame
    renderer = frame.worker
    if renderer is not None:  # while the job runs, this also sends the renderer's other frames back
        penalties.renderer_caught(renderer, frame.job, f"claim {check.claim_id} confirmed on frame {frame.number}")
    frame.state = FrameState.VERIFIED  # the trusted node's whole-frame render is the frame now
    frame.blob_sha256 = check.result_sha256
    frame.worker_id = check.verifier_id
    frame.verified_by = "claim"
    reexamine(frame)
