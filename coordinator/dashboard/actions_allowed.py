"""Which actions the dashboard offers on a job or a worker, and who may take them: job actions for admins and
the job's owner (as the REST API allows), worker actions for admins only; and only what the state allows (the
backend's job and worker controls refuse the rest anyway)."""

from __future__ import annotations

from ..auth import Caller
from ..models import Job, Worker
from ..states import JobState


def may_act_on_job(viewer: Caller, job: Job) -> bool:
    return viewer.is_admin or job.account_id == viewer.account_id


def acts_on_jobs(viewer: Caller) -> bool:
    """Whether the viewer's pages show job actions at all: admins, and users (who own jobs)."""
    return viewer.is_admin or viewer.kind == "user"


def job_actions(viewer: Caller, job: Job, retrying: bool) -> list[str]:
    """``retrying``: some of the job's tasks failed at least once (a requeue gives them a fresh start)."""
    if not may_act_on_job(viewer, job):
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
