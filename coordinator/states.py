"""Job, task and frame states and the transitions allowed between them, in one place.

Invariants:
- a task is ``leased`` exactly while one worker holds it (``worker_id`` set, ``lease_expires`` in the future
  or about to be reaped); every other state has no lease holder;
- a frame is ``rendered`` once its blob is stored and never goes back to ``queued`` (later leases skip it);
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


class IllegalTransition(RuntimeError):
    """A state change the state machine does not allow (a bug, or a late message to be ignored)."""


def can_move(table: dict[str, frozenset[str]], old: str, new: str) -> bool:
    """Whether ``old → new`` is allowed by ``table``."""
    return new in table.get(old, frozenset())


def check_move(table: dict[str, frozenset[str]], old: str, new: str) -> None:
    """Raise :class:`IllegalTransition` unless ``old → new`` is allowed."""
    if not can_move(table, old, new):
        raise IllegalTransition(f"{old} → {new} is not allowed")
