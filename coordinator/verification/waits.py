"""Why a live job's frames wait for checks, in words its artist can read (``Job.waiting``, set by the reaper).

A queued check that some online agent may take now needs no word: it is leased as soon as that agent is free.
For the others the reason is one of: nobody online may ever take it (no verifier of another owner, no third
owner for a dispute), or somebody may once its wait is over (another device class, a third owner who is no
veteran, a veteran for a claim), and then when (the earliest eligibility.opens_at among the agents online). A
claim's re-renders are said too, also once the job is over: the artist waits for their outcome.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from framehive.protocol import frameranges
from sqlalchemy import Select, select

from ..db import db
from ..models import Check, Job, Task, Worker
from ..states import CheckState, JobState, TaskState
from .eligibility import can_verify, may_take, opens_at

# Checks that hold the artist's frames back (of a task still verifying: an audit's arbitration after the task was
# accepted, or a ringer's, decides who lied, not which frames the artist gets).
HOLDING = ("verify", "spot", "arbitration")
# Enough to say which frames wait; a job with more queued checks than this is described by its oldest ones.
MAX_CHECKS_READ = 500


def online_verifiers(online: list[Worker]) -> list[Worker]:
    """Of the agents online and not suspended (failure_accounting.online_agents), those that verify now (paused by
    their owner: not now)."""
    return [w for w in online if can_verify(w) and w.pause_reason is None]


def jobs_with_queued_checks() -> set[int]:
    """Live jobs with checks that hold frames back, and jobs (live or over) with claimed frames to re-render."""
    live = _holding().join(Job, Job.id == Check.job_id).where(Job.state.in_(JobState.ACTIVE))
    return set(db.session.execute(live.with_only_columns(Check.job_id)).scalars()) \
        | set(db.session.execute(_claimed().with_only_columns(Check.job_id)).scalars())


def why_checks_wait(job: Job, verifiers: list[Worker]) -> str | None:
    """What the job's queued checks wait for, or None if every one of them may go to an online agent now."""
    holding = _holding() if job.state in JobState.ACTIVE else None
    checks = [check for query in (holding, _claimed()) if query is not None for check in db.session.execute(
        query.where(Check.job_id == job.id).order_by(Check.id).limit(MAX_CHECKS_READ)).scalars()]
    frames: dict[str, set[int]] = defaultdict(set)
    due: dict[str, float] = {}
    for check in checks:
        if any(may_take(w, check) for w in verifiers):
            continue  # stops at the first agent that may take it now: a healthy network's every check (issue 16)
        opening = {w.id: at for w in verifiers if (at := opens_at(w, check)) is not None}
        what = _what(check, verifiers, opening)
        frames[what].add(check.frame.number)
        if opening:
            due[what] = max(due.get(what, 0.0), min(opening.values()))
    said = [_sentence(what, sorted(numbers), due.get(what)) for what, numbers in sorted(frames.items())]
    return "; ".join(said) or None


def _what(check: Check, verifiers: list[Worker], opening: dict[int, float]) -> str:
    """Which sentence says why ``check`` waits (``opening``: when each online agent that ever may take it may)."""
    if check.kind == "claim":
        what = "claim" if check.parent_id is None else "second claim render"
        if opening:
            first = min(opening, key=lambda worker_id: opening[worker_id])
            trusted = next(w for w in verifiers if w.id == first).account.trusted
            what += " later" + ("" if trusted or check.parent_id is not None else " by veterans")
        return what
    return {"arbitration": "dispute"}.get(check.kind, "check") + (" later" if opening else "")


def _holding() -> Select[Check]:
    """Queued checks that hold frames of a task back from the artist."""
    return (select(Check).join(Task, Task.id == Check.task_id)
            .where(Check.state == CheckState.QUEUED, Check.kind.in_(HOLDING), Task.state == TaskState.VERIFYING))


def _claimed() -> Select[Check]:
    """Queued re-renders of claimed frames."""
    return select(Check).where(Check.state == CheckState.QUEUED, Check.kind == "claim")


def _sentence(what: str, numbers: list[int], due: float | None) -> str:
    spec = frameranges.format_frames(numbers)
    frames = f"frame {spec}" if len(numbers) == 1 else f"frames {spec}"
    at = datetime.fromtimestamp(due, UTC).strftime("%H:%M UTC") if due is not None else ""
    return {
        "check": f"{frames} wait for a verifier of another owner: none online",
        "check later": f"{frames} wait for a verifier of the renderer's device class: none online; one of another "
                       f"class checks them from {at}",
        "dispute": f"{frames} disputed: wait for a third owner to re-render the region: none online",
        "dispute later": f"{frames} disputed: wait for an arbiter (a trusted node, or a veteran of a third owner): "
                         f"none online; from {at} a third owner's render decides by majority",
        "claim": f"claimed {frames} wait for a trusted node, or veterans of two other owners, to re-render them: "
                 "none online",
        "claim later": f"claimed {frames} wait for a trusted node of the renderer's device class: none online; one "
                       f"of another class re-renders them from {at}",
        "claim later by veterans": f"claimed {frames} wait for a trusted node to re-render them: none online; from "
                                   f"{at} veterans of other owners re-render them, and a frame is replaced only if "
                                   "two of different owners both find it differs",
        "second claim render": f"claimed {frames} differ in a veteran's re-render: wait for a second re-render by "
                               "a trusted node or a veteran of another owner: none online",
        "second claim render later": f"claimed {frames} differ in a veteran's re-render: wait for a second "
                                     f"re-render by a trusted node or a veteran of another owner, possible from "
                                     f"{at}",
    }[what]
