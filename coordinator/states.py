"""The coordinator's six state machines in one place: the states of jobs, tasks, frames, checks, verification keys
and claims, and the transitions allowed between them (one table each, every move explained beside it).

Every change of state goes through coordinator/transitions.py, which checks these tables and applies the knock-on
effects of a move (a lease cleared, a refund, a time stamped); no other module writes a ``state``
(tests/coordinator/test_state_machines.py holds every module to that, and reads each table like its spec).

Invariants:
- a task is ``leased`` exactly while one worker holds it (``worker_id`` set, ``lease_expires`` in the future
  or about to be reaped); every other state has no lease holder;
- a frame has pixels (``rendered``, ``verified``) from the moment its blob is stored (later leases skip it); it
  goes back to ``queued`` only when its renderer is caught, and then loses them;
- final job states (completed, failed, cancelled) are never left, with one exception: an explicit requeue
  (``job_control.requeue_job``) brings a failed job back to life, after charging its escrow anew;
- a ``paused`` job keeps its escrow and its leases (they may finish), but none of its queued tasks is leased
  until it is resumed; checks of frames already rendered go on (they gate delivery and are paid for).
"""

from __future__ import annotations

from framehive.protocol import vocabulary

# The names themselves are the API's (protocol/vocabulary.py, which the add-on imports too); the coordinator adds
# the sets its own rules need.


class JobState(vocabulary.JobState):
    # Live jobs: the escrow is held and pays out, checks run, frames may still be verified.
    ACTIVE = frozenset({vocabulary.JobState.QUEUED, vocabulary.JobState.RUNNING, vocabulary.JobState.PAUSED})
    # Jobs whose queued tasks may be leased to workers.
    DISPATCHABLE = frozenset({vocabulary.JobState.QUEUED, vocabulary.JobState.RUNNING})


class TaskState(vocabulary.TaskState):
    pass


class FrameState(vocabulary.FrameState):
    HAVE_PIXELS = frozenset({vocabulary.FrameState.RENDERED, vocabulary.FrameState.VERIFIED})


class CheckState(vocabulary.CheckState):
    pass


class KeyState:
    """A secret verification key (verification/keys.py): drawn sealed at split, revealed at the commit point."""

    SEALED = "sealed"  # drawn, not yet looked at (its task's frames are not all in)
    USED = "used"  # its dice fell under the renderer's check rate: it made a check
    UNUSED = "unused"  # its dice did not: the frames it covers are accepted without it
    VOID = "void"  # its task is rendered or checked anew with fresh keys: never used or revealed again
    LIVE = frozenset({SEALED, USED})


class ClaimState(vocabulary.ClaimState):
    pass


JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED, JobState.PAUSED}),
    JobState.RUNNING: frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.PAUSED}),
    # paused → queued/running: resumed (running if it ever started); paused → completed: the leases in flight
    # finished its last work; paused → failed: one of them failed for the last time; paused → cancelled.
    JobState.PAUSED: frozenset({JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED, JobState.FAILED,
                                JobState.CANCELLED}),
    # failed → queued/running: requeued (job_control.requeue_job), its escrow charged again for what is left.
    JobState.FAILED: frozenset({JobState.QUEUED, JobState.RUNNING}),
}

TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    # queued → leased: a worker claimed it; queued → cancelled/failed: its job was cancelled/failed.
    TaskState.QUEUED: frozenset({TaskState.LEASED, TaskState.CANCELLED, TaskState.FAILED}),
    # leased → queued: lease lost, failure with retries left, or handed back; leased → verifying: all frames in
    # and some are to be checked; leased → done: all frames in and none sampled.
    TaskState.LEASED: frozenset({TaskState.QUEUED, TaskState.VERIFYING, TaskState.DONE, TaskState.FAILED,
                                 TaskState.CANCELLED}),
    # verifying → done: every check passed; verifying → queued: the renderer was caught, frames re-rendered.
    TaskState.VERIFYING: frozenset({TaskState.DONE, TaskState.QUEUED, TaskState.FAILED, TaskState.CANCELLED}),
    # done → queued: a renderer caught later had trust-accepted frames here; they are rendered again.
    TaskState.DONE: frozenset({TaskState.QUEUED}),
    # failed → queued: its failed job was requeued and the task has frames to render; → verifying or done: every
    # frame had come in, so it goes straight to its checks (job_control.requeue_job). Cancelled is forever.
    TaskState.FAILED: frozenset({TaskState.QUEUED, TaskState.VERIFYING, TaskState.DONE}),
}


FRAME_TRANSITIONS: dict[str, frozenset[str]] = {
    # queued → rendering: its worker's heartbeat names it; queued → rendered: uploaded before any heartbeat did;
    # queued → failed/cancelled: its job failed or was cancelled.
    FrameState.QUEUED: frozenset({FrameState.RENDERING, FrameState.RENDERED, FrameState.FAILED,
                                  FrameState.CANCELLED}),
    # rendering → queued: the lease was lost or handed back, or its renderer was caught with it in hand.
    FrameState.RENDERING: frozenset({FrameState.QUEUED, FrameState.RENDERED, FrameState.FAILED,
                                     FrameState.CANCELLED}),
    # rendered → verified: accepted (its checks passed, or not sampled); rendered → queued: its renderer was caught.
    FrameState.RENDERED: frozenset({FrameState.VERIFIED, FrameState.QUEUED}),
    # verified → queued: its renderer was caught later, while the job is live: its pixels are not trusted. (A
    # confirmed claim replaces a verified frame's pixels and leaves it verified: transitions.replace_pixels.)
    FrameState.VERIFIED: frozenset({FrameState.QUEUED}),
    # failed → queued: its failed job was requeued (job_control.requeue_job). Cancelled is forever.
    FrameState.FAILED: frozenset({FrameState.QUEUED}),
}

CHECK_TRANSITIONS: dict[str, frozenset[str]] = {
    # queued → leased: a verifier claimed it (a compare-and-set, verification/leasing.py); queued → void: its
    # frames are rendered again, or its job ended and it only held frames back.
    CheckState.QUEUED: frozenset({CheckState.LEASED, CheckState.VOID}),
    # leased → queued: released (its verifier went silent, disconnected or hit a limit); leased → done: its result
    # was judged (verification/decide.py); leased → void: as from queued, its verifier told to drop it.
    CheckState.LEASED: frozenset({CheckState.QUEUED, CheckState.DONE, CheckState.VOID}),
}

KEY_TRANSITIONS: dict[str, frozenset[str]] = {
    # sealed → used/unused: revealed at the commit point (verification/commit.py); sealed → void: redrawn first.
    KeyState.SEALED: frozenset({KeyState.USED, KeyState.UNUSED, KeyState.VOID}),
    # used → void: the task is rendered or checked anew (its renderer caught, its failed job requeued).
    KeyState.USED: frozenset({KeyState.VOID}),
}

CLAIM_TRANSITIONS: dict[str, frozenset[str]] = {
    # open → confirmed: a disputed frame was overturned (replaced); open → rejected: every frame stands.
    ClaimState.OPEN: frozenset({ClaimState.CONFIRMED, ClaimState.REJECTED}),
}


class IllegalTransition(RuntimeError):
    """A state change the state machine does not allow (a bug, or a late message to be ignored)."""


def can_move(table: dict[str, frozenset[str]], old: str, new: str) -> bool:
    """Whether ``old → new`` is allowed by ``table``."""
    return new in table.get(old, frozenset())


def check_move(table: dict[str, frozenset[str]], old: str, new: str) -> None:
    """Raise :class:`IllegalTransition` unless ``old → new`` is allowed."""
    if not can_move(table, old, new):
        raise IllegalTransition(f"{old} → {new} is not allowed")
