"""Which actions the dashboard offers on a job or a worker: admins only, and only what the state allows
(the backend's job and worker controls refuse the rest anyway)."""

from __future__ import annotations

from ..auth import Caller
from ..models import Job, Worker
from ..states import JobState


def job_actions(viewer: Caller, job: Job, retrying: bool) -> list[str]:
    """``retrying``: some of the job's tasks failed at least once (a requeue gives them a fresh start)."""
    if not viewer.is_admin:
        return []
    if job.state == JobState.FAILED:
        return ["requeue"]
    if job.state in JobState.FINAL:
        return []
    toggle = "resume" if job.state == JobState.PAUSED else "pause"
    return [toggle, *(["requeue"] if retrying else []), "priority", "cancel"]


def worker_actions(viewer: Caller, worker: Worker, blocked: bool) -> list[str]:
    if not viewer.is_admin:
        return []
    return ["unsuspend" if worker.suspended else "suspend", *(["unblock"] if blocked else [])]
