"""Bad-result claims: an artist disputes delivered frames.

Each disputed frame is re-rendered whole and compared with the delivered frame. A trusted node (an account the
admin marked trusted) decides a frame alone. A network without one would leave the claim waiting forever, so
once the claim has waited FRAMEHIVE_FALLBACK_WAIT, veterans of third owners may re-render it too (who, and from
when: eligibility.py); a veteran is less sure than a trusted node, so:

- a veteran's re-render that matches the delivered frame leaves it standing;
- one that differs asks for a second re-render of the frame, by a trusted node (which then decides alone) or by
  a veteran of yet another owner (never the renderer's, the claimant's, the job's, nor anyone's who rendered a
  check of that frame, the first veteran included);
- the frame is overturned only if both veterans' renders differ from it and agree with each other
  (comparison.proven_alike): of one device class, bit for bit within the strict rule; across classes, by the
  yardstick rule of cross-class checks. The render that is to become the frame must lie within the other
  veteran's yardstick (a veteran of another class than the renderer renders one below its whole-frame render;
  the check keeps the stack, and only its job-seed half ever becomes the frame: _job_seed_render). The second
  veteran's render replaces the frame if the first's yardstick (or the strict rule) shows it alike, else the
  first's if the second's does; across classes with no yardstick on the measuring side agreement is unproven and
  the frame stands. The second re-render goes to the first veteran's class first. One differing and one
  matching leave the frame standing too, and nobody is caught for the split: either could be the liar.

A yardstick measures only the other veteran's render, never the one above it: a lying veteran's garbage over a
yardstick as wide as it likes never becomes the frame (that yardstick can at most let the honest render through),
a yardstick of two identical renders measures nothing (then only the strict rule can pass), and what a lying
veteran can get into the frame is bounded by an honest veteran's yardstick, as a cross-class check bounds a
renderer.

So a claimant who colludes with one veteran overturns nothing (the other, independent render matches an honest
frame), nor can one veteran's render, garbage or not, become the artist's frame on its own. What it takes to
overturn an honest frame is two veterans of two owners, each of whom earned its trust by honest checks, lying
together. A renderer colluding with the veteran who re-renders first keeps its frame standing (as a colluding
verifier kept it delivered); a trusted node, while one is online, is the stronger answer to that.

If any frame is overturned the claim is confirmed: the new render replaces the frame, its renderer is caught
and so is every verifier that passed it whose own render contradicts the new one. If none is, the claim is
rejected and counted against the claimant. No commits: callers commit.

A whole-frame render is the network's most expensive work, so claims are not free: filing one holds its price
(payments.claim_price, per frame) from the claimant, given back if the claim is confirmed and kept if it is
rejected (a veteran's second re-render costs the claimant nothing more), and a job takes at most
FRAMEHIVE_MAX_CLAIMS_PER_JOB claims.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import current_app
from framehive.protocol import frameranges
from sqlalchemy import func, select

from .. import events, payments
from .. import frame_analysis as fa
from ..db import db, lock
from ..errors import ApiError
from ..models import Account, Check, Claim, Frame, Job, Worker
from ..states import CheckState, ClaimState, FrameState
from ..storage_access import storage
from ..transitions import LostLease, move_claim, replace_pixels
from . import comparison, penalties
from .checks import new_check
from .decide import keep
from .reexamine import reexamine

MAX_CLAIM_FRAMES = 100


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
    """A re-render of one claimed frame came in; ask for a second one if a veteran's differs, and decide the
    claim when every frame has its answer."""
    claim = db.session.get(Claim, check.claim_id)
    assert claim is not None
    if check.verdict == "fail" and check.parent_id is None and not _trusted(check):
        _second_render(check)
        return []
    checks = db.session.execute(select(Check).filter_by(claim_id=claim.id)).scalars().all()
    if any(c.state in CheckState.OPEN for c in checks):
        return []
    overturned = [render for render in (_overturning(checks, first) for first in checks if first.parent_id is None)
                  if render is not None]
    if not overturned:
        move_claim(claim, ClaimState.REJECTED, "no disputed frame differs from a trusted node's re-render or from two "
                                               "agreeing veterans' re-renders")
        claimant = claim_account(claim)
        claimant.claims_rejected += 1
        payments.settle_claim(claim)
        _settled(claim, check)
        return []
    numbers = frameranges.format_frames(sorted(c.frame.number for c in overturned))
    move_claim(claim, ClaimState.CONFIRMED, f"frames {numbers} differ from {_by_whom(overturned)}; replaced")
    lost = _replace(overturned)
    payments.settle_claim(claim)
    _settled(claim, check)
    return lost


def _trusted(check: Check) -> bool:
    return check.verifier is not None and check.verifier.account.trusted


def _second_render(first: Check) -> Check:
    """A veteran's re-render differs from the delivered frame: another owner's render must say so too."""
    excluded = set(first.excluded_accounts) | ({first.verifier.account_id} if first.verifier is not None else set())
    second = new_check("claim", first.frame, first.region, sorted(excluded), renderer=first.renderer, parent=first,
                       renderer_sha256=first.renderer_sha256)
    second.claim_id = first.claim_id
    return second


def _overturning(checks: Sequence[Check], first: Check) -> Check | None:
    """The render that overturns ``first``'s frame, or None if the frame stands: a trusted node's that differs,
    or of two veterans' that both differ, the one the other's render (its yardstick across classes) shows alike."""
    if first.state != CheckState.DONE or first.verdict != "fail":
        return None
    if _trusted(first):
        return first
    second = next((c for c in checks if c.parent_id == first.id and c.state == CheckState.DONE), None)
    if second is None or second.verdict != "fail":
        return None  # one differing, one matching (or none): the frame stands
    if _trusted(second):
        return second
    # Two veterans: the render that becomes the frame must be shown to be the other's but for noise, by the other's
    # yardstick across classes (comparison.proven_alike); the second's if it is, else the first's.
    return next((render for render, other in ((second, first), (first, second))
                 if comparison.proven_alike(render, other)), None)


def _job_seed_render(check: Check) -> str:
    """The blob of ``check``'s render with the job's seed, what becomes the frame: its kept upload, or when a yardstick
    render is stacked below it, the upload's top half (stored now)."""
    with storage().open(check.result_sha256 or "") as handle:
        rendered = fa.decode(handle.read(), current_app.config["FRAMEHIVE_MAX_FRAME_PIXELS"])
    top, yardstick = fa.split_yardstick(rendered, fa.Region.from_list(check.render_rect).height)
    if yardstick is None:
        assert check.result_sha256 is not None
        return check.result_sha256
    return keep(check, fa.encode_png(top))


def _by_whom(renders: list[Check]) -> str:
    if all(_trusted(r) for r in renders):
        return "a trusted re-render"
    if not any(_trusted(r) for r in renders):
        return "two agreeing re-renders by veterans of different owners"
    return "a trusted re-render or two agreeing veterans' re-renders"


def _settled(claim: Claim, check: Check) -> None:
    events.record(events.CLAIM_SETTLED, f"claim {claim.id} on job {claim.job_id} {claim.state}: {claim.outcome}",
                  job=check.frame.job)


def claim_account(claim: Claim) -> Account:
    return db.session.get_one(Account, claim.account_id)


def _replace(renders: list[Check]) -> list[LostLease]:
    """Each overturning render (a trusted node's, or a second veteran's) becomes its frame; then each frame's renderer
    is caught, and so is every verifier that passed it whose own render the new one contradicts (reexamine: a
    verifier of another device class, or one that checked another part of the frame, may have passed it honestly).
    The frames are replaced first, so that a renderer caught while its job runs, whose other frames go back to the
    queue, does not send these back too. A frame whose disputed pixels are already gone (its renderer was caught
    meanwhile and the frame is being rendered again) is left to that. Returns the leases taken away from the
    renderers (and from verifiers of their frames), for their agents to be told."""
    caught: list[tuple[Worker, Frame, Check]] = []
    for check in renders:
        frame: Frame = check.frame
        if frame.worker is not None:
            caught.append((frame.worker, frame, check))
        if frame.state == FrameState.VERIFIED and frame.blob_sha256 == check.renderer_sha256:
            replace_pixels(frame, _job_seed_render(check), check.verifier_id, "claim")
            reexamine(frame)
    return [lease for renderer, frame, check in caught for lease in penalties.renderer_caught(
        renderer, frame.job, f"claim {check.claim_id} confirmed on frame {frame.number}")]
