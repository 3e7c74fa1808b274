"""The names the coordinator's API speaks and its clients read: states of jobs, tasks, frames, checks and claims,
verification policies and device choices.

Defined once here. The coordinator builds its state machine on these classes (coordinator/states.py), the
add-on and the ``framehive`` command import them (addon/vocabulary.py; the extension zip carries this module,
see scripts/build_addon.py), and the dashboard's job page is given them by the coordinator. Standard library only,
no imports at all: Blender loads it inside the extension.
"""

from __future__ import annotations

from typing import Final


class JobState:
    QUEUED: Final = "queued"
    RUNNING: Final = "running"
    COMPLETED: Final = "completed"
    FAILED: Final = "failed"
    CANCELLED: Final = "cancelled"
    PAUSED: Final = "paused"  # an admin or the owner stopped new leases; the escrow stays, leases in flight finish
    FINAL: Final = frozenset({COMPLETED, FAILED, CANCELLED})  # never left (but a failed job may be requeued)


class TaskState:
    QUEUED: Final = "queued"
    LEASED: Final = "leased"
    VERIFYING: Final = "verifying"  # every frame committed (hashes recorded); secret checks under way
    DONE: Final = "done"  # every frame verified
    FAILED: Final = "failed"  # stopped unfinished because its job failed; requeue_job restarts it
    CANCELLED: Final = "cancelled"  # stopped unfinished because its job was cancelled; never restarted
    FINAL: Final = frozenset({DONE, FAILED, CANCELLED})


class FrameState:
    QUEUED: Final = "queued"
    RENDERING: Final = "rendering"
    RENDERED: Final = "rendered"  # uploaded and committed, not yet verified: the renderer's word, not delivered
    VERIFIED: Final = "verified"  # accepted: checked by a verifier, or not sampled from a trusted-enough renderer
    FAILED: Final = "failed"
    CANCELLED: Final = "cancelled"
    # Every frame state, in the order a frame goes through them: the keys of a job's ``counts`` in the API, and
    # the order clients show them in.
    ALL: Final = (QUEUED, RENDERING, RENDERED, VERIFIED, FAILED, CANCELLED)
    # Only verified frames are delivered to the artist.
    DELIVERED: Final = frozenset({VERIFIED})


class CheckState:
    QUEUED: Final = "queued"
    LEASED: Final = "leased"
    DONE: Final = "done"  # a verdict was reached
    VOID: Final = "void"  # no longer needed (the frame was rendered again, its job ended)
    OPEN: Final = frozenset({QUEUED, LEASED})


class Verdict:
    PASS: Final = "pass"
    FAIL: Final = "fail"


class ClaimState:
    OPEN: Final = "open"
    CONFIRMED: Final = "confirmed"  # the disputed frames were wrong; they are rendered again
    REJECTED: Final = "rejected"  # the frames stand
    DECIDED: Final = frozenset({CONFIRMED, REJECTED})


class Policy:
    """How a job's frames are verified (``policy`` of a job; docs/verification.md, Policies)."""

    ADAPTIVE: Final = "adaptive"  # by the renderer's trust: new renderers always checked, trusted ones sampled
    CIRCLE: Final = "circle"  # fRender's circle: each renderer's first committed work in a job is checked
    FULL: Final = "full"  # every frame rendered twice, by different owners
    ALL: Final = (ADAPTIVE, CIRCLE, FULL)
    DEFAULT: Final = ADAPTIVE


class Device:
    """Which agents may render a job (``device`` of a job)."""

    ANY: Final = "any"
    GPU: Final = "gpu"
    CPU: Final = "cpu"
    ALL: Final = (ANY, GPU, CPU)
    DEFAULT: Final = ANY

