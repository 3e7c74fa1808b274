"""Job, task and frame states and the transitions allowed between them, in one place.

Invariants:
- a task is ``leased`` exactly while one worker holds it (``worker_id`` set, ``lease_expires`` in the future
  or about to be reaped); every other state has no lease holder;
- a frame is ``rendered`` once its blob is stored and never goes back to ``queued`` (later leases skip it);
- final job states (completed, failed, cancelled) are never left.
"""

from __future__ import annotations


class JobState:
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    FINAL = frozenset({COMPLETED, FAILED, CANCELLED})
    ACTIVE = frozenset({QUEUED, RUNNING})


class TaskState:
    QUEUED = "queued"
    LEASED = "leased"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    FINAL = frozenset({DONE, FAILED, CANCELLED})


class FrameState:
    QUEUED = "queued"
    RENDERING = "rendering"
    RENDERED = "rendered"
    VERIFIED = "verified"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HAVE_PIXELS = frozenset({RENDERED, VERIFIED})
    ALL = (QUEUED, RENDERING, RENDERED, VERIFIED, FAILED, CANCELLED)


JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED}),
}

TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    # queued → leased: a worker claimed it; queued → cancelled: its job was cancelled or failed.
    TaskState.QUEUED: frozenset({TaskState.LEASED, TaskState.CANCELLED}),
    # leased → queued: lease lost, failure with retries left, or handed back; leased → done: all frames in.
    TaskState.LEASED: frozenset({TaskState.QUEUED, TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED}),
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
