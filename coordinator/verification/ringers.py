"""Ringers: checks whose answer the coordinator will know, made now and then in place of a verifier's real check.

A verifier that answers real checks carelessly (or lies) but ringers honestly must not be able to tell them apart,
so a ringer is a second opinion on the very check the verifier was about to get: the same frame, the same region,
the same accounts excluded, its own opaque handle (leasing.new_handle), made at the moment that check would have
been leased. Everything a verifier sees of it (job, frame, size and place, when it comes) is what the real check
would have shown. The real check stays queued for another owner: it now excludes the ringer's account too, since
a real check never shows an account a frame twice.

Earlier ringers were fresh regions of already-verified frames near the check. Such a frame existed mostly when
the verifiers kept up with the job, so ringers came after longer idle gaps, and the time since the previous order
told them apart (balanced accuracy 0.63–0.70, BENCHMARKS.md "Ringers vs real checks"). A second opinion needs
nothing already verified, so its coming says nothing about the verifier's pace.

Its answer is known once the frame's own checks decide: a pass earns the verifier trust when the frame is verified
with the very pixels the ringer was compared with (at once if it already is, else when its task is accepted:
credit_waiting), never on pixels found faked or since replaced. A failed ringer goes to arbitration
(decide._on_ringer), which also catches a renderer whose real check was passed by a colluder.

There is no ringer for a tier-1 check (a whole frame at low resolution) nor a claim (trusted re-renders of
delivered frames), nor when the verifier's owner already looked at the frame, nor unless two other owners online may
take the real check at once (with none, the ringer would hold the job back; with one, a dispute of either verdict
would have no third owner left to judge it).
"""

from __future__ import annotations

import secrets

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import aliased

from .. import capabilities
from ..db import db, lock
from ..models import Check, Frame, Job, Worker
from ..states import CheckState, FrameState, JobState
from . import keys
from .checks import new_check
from .eligibility import lookers, may_take

# Kinds of check a ringer never stands in for.
NO_STAND_IN = ("tier1", "claim")
# Online workers looked at, at most, for another owner that may take the real check.
OTHERS_LOOKED_AT = 50
# A passed ringer whose frame is not decided yet says so in its reason until it is credited.
WAITING = "ringer: waiting for the frame's own checks"
CREDITED = "ringer: the frame passed its own checks, trust earned"
_rng = secrets.SystemRandom()


def make_ringer(worker: Worker, like: Check | None = None) -> Check | None:
    """A second opinion on ``like`` for ``worker``, which ``like`` then excludes; or None. No commit.

    Without ``like`` (no check to stand in for): a region of a verified frame of a running job, whose answer is
    known at once.
    """
    if like is None:
        return _of_a_verified_frame(worker)
    if like.kind in NO_STAND_IN:
        return None
    lock(like)  # another verifier's ringer may be excluding its own account from it now (PostgreSQL)
    if like.state != CheckState.QUEUED or worker.account_id in like.excluded_accounts \
            or _has_looked_at(worker, like.frame_id) or not _others_could_take(worker, like):
        return None
    ringer = new_check("ringer", like.frame, list(like.region), list(like.excluded_accounts), renderer=like.renderer,
                       renderer_sha256=like.renderer_sha256)
    like.excluded_accounts = sorted({*like.excluded_accounts, worker.account_id})
    return ringer


def answer_known(ringer: Check) -> bool:
    """Whether the pixels ``ringer`` was compared with are now those of a frame its own checks verified."""
    frame: Frame = ringer.frame
    return (frame.state == FrameState.VERIFIED and frame.verified_by == "check"
            and frame.blob_sha256 == ringer.renderer_sha256)


def wait_for_answer(ringer: Check) -> None:
    """A passed ringer whose frame is still under check: credited by credit_waiting once it is verified."""
    ringer.reason = f"{ringer.reason}; {WAITING}"


def credit_waiting(checks: list[Check]) -> list[Check]:
    """Of a task's checks (checks.task_checks), the passed ringers that waited for the task and whose answer is now
    known; each is marked credited (returned once). No commit."""
    waiting = [c for c in checks if c.kind == "ringer" and c.verdict == "pass" and (c.reason or "").endswith(WAITING)]
    known = [ringer for ringer in waiting if answer_known(ringer)]
    for ringer in known:
        ringer.reason = (ringer.reason or "").removesuffix(WAITING) + CREDITED
    return known


def exclude_lookers(ringer: Check) -> None:
    """A failed ringer's arbitration excludes, besides whom the ringer did, every owner that rendered a check of the
    frame: the real check's verifier above all, which might be the renderer's partner (decide._second_opinion
    follows parents only, and a ringer has none). No commit."""
    ringer.excluded_accounts = sorted({*ringer.excluded_accounts, *lookers(ringer)})


def _has_looked_at(worker: Worker, frame_id: int) -> bool:
    looker = aliased(Worker)
    return db.session.execute(select(exists().where(
        Check.frame_id == frame_id, Check.verifier_id == looker.id,
        looker.account_id == worker.account_id))).scalar_one()


def _others_could_take(worker: Worker, check: Check) -> bool:
    """Whether online workers of two other owners than ``worker``'s may take ``check`` now, as ``worker`` could: one
    for the real check, and one left to arbitrate whichever of the two fails. A ringer's verdict and the real
    check's are two owners' looks at the region, and neither may judge the other's dispute (decide._second_opinion,
    exclude_lookers): with a single other owner, a failed one waited for a third owner that might never come, and
    the frame with it (issue 16's cross-class test: "frames 3,6 disputed: wait for a third owner", both verifiers
    online and idle).

    Not "after its waits": when the only other owner online is of another device class, the real check would
    wait FRAMEHIVE_FALLBACK_WAIT for it, and the job with it (a young network's second verifier held a job ten
    minutes that way)."""
    others = db.session.execute(select(Worker).where(
        Worker.online.is_(True), Worker.account_id != worker.account_id,
        Worker.account_id.notin_(check.excluded_accounts)).limit(OTHERS_LOOKED_AT)).scalars()
    owners: set[int] = set()
    for other in others:
        if other.account_id not in owners and may_take(other, check):
            owners.add(other.account_id)
            if len(owners) == 2:
                return True
    return False


def _of_a_verified_frame(worker: Worker) -> Check | None:
    count = db.session.execute(_ringer_frames(worker).with_only_columns(func.count())).scalar_one()
    if count == 0:
        return None
    frame = db.session.execute(_ringer_frames(worker).order_by(Frame.id).offset(_rng.randrange(count))
                               .limit(1)).scalar_one()
    job: Job = frame.job
    region = keys.draw_region(_rng, job.resolution_x, job.resolution_y, keys.REGION_FRACTION)
    excluded = [frame.worker.account_id, job.account_id] if frame.worker is not None else [job.account_id]
    return new_check("ringer", frame, region.as_list(), excluded, renderer=frame.worker)


def _ringer_frames(worker: Worker) -> Select[Frame]:
    """Frames of running jobs that passed a check, that ``worker`` could be sent as a real check."""
    renderer = aliased(Worker)
    looker = aliased(Worker)
    seen = exists().where(Check.frame_id == Frame.id, Check.verifier_id == looker.id,
                          looker.account_id == worker.account_id)
    return (select(Frame).join(Job, Job.id == Frame.job_id).join(renderer, renderer.id == Frame.worker_id)
            .where(Frame.state == FrameState.VERIFIED, Frame.verified_by == "check",
                   Job.state.in_(JobState.ACTIVE),  # a finished job's checks would stand out
                   Job.files_collected_at.is_(None),  # a released job's scene and pixels are gone
                   renderer.account_id != worker.account_id, Job.account_id != worker.account_id,
                   capabilities.scene_condition(worker),  # a scene it can open, of the device kind asked for
                   ~seen))
