"""What a worker needs to be given a job: a Blender new enough for its scene (or the exact one the artist pinned),
the device kind the artist asked for, and a free place under the job's cap on agents rendering it at once.

The scene's Blender is read from its .blend (framehive.protocol.blend_scan, in the parser's child process), never taken
from the request. An agent's Blender and device are what its hello said: an agent lying about them only gets
scenes it cannot render, which its checks and failures then count against it.

The rules exist twice, on purpose: as SQL conditions on :class:`Job` for the claim queries (a Python filter after
the query's LIMIT would starve an agent behind jobs it may not take) and as a Python test for one job and one
agent, which says what is missing (the job's waiting reason). tests/coordinator/test_capabilities.py holds them to
each other.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from framehive.protocol import blender_versions as bv
from framehive.protocol.json_numbers import is_int
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import aliased

from .errors import ApiError
from .models import Job, Task, Worker
from .states import TaskState

DEVICE_KINDS = ("gpu", "cpu")
MAX_WORKERS = 10_000
FIELDS = ("blender_version", "max_workers", "device")


def device_kind(worker: Worker) -> str:
    """An agent's hello names the Cycles backend it renders with: CPU, or a GPU backend (CUDA, OPTIX, ...)."""
    return "cpu" if worker.device.upper() == "CPU" else "gpu"


# ------------------------------------------------------------------------------------------- submission


def from_request(body: dict[str, Any], scene_blender: str | None) -> dict[str, Any]:
    """The job's requirements from a submit request's optional fields and the scene's own Blender version
    (``"5.0"``, from the parser); 400 for a bad field, or a pin older than the Blender that saved the scene."""
    scene = bv.file_version(scene_blender)
    pin = body.get("blender_version")
    if pin is not None:
        try:
            pin = bv.parse_pin(pin)
        except bv.BadVersion as exc:
            raise ApiError(400, "bad_blender_version", str(exc)) from None
        if scene is not None and bv.pin_file_version(pin) < scene:
            raise ApiError(400, "bad_blender_version", f"the scene was saved by Blender "
                                                       f"{bv.format_file_version(scene)}; Blender {pin} is older")
    workers = body.get("max_workers")
    if workers is not None and (not is_int(workers) or not 1 <= workers <= MAX_WORKERS):
        raise ApiError(400, "bad_request", f"'max_workers' must be an integer from 1 to {MAX_WORKERS}")
    device = body.get("device")
    if device == "any":
        device = None
    if device is not None and device not in DEVICE_KINDS:
        raise ApiError(400, "bad_request", "'device' must be one of gpu, cpu, any")
    return {"scene_blender": scene, "blender_pin": pin, "max_workers": workers, "device_kind": device}


def describe(job: Job) -> dict[str, Any]:
    """The job's requirements as the API shows them, with ``summary`` in words for clients to show as it is."""
    return {"blender": bv.format_file_version(job.scene_blender) if job.scene_blender is not None else None,
            "blender_version": job.blender_pin, "max_workers": job.max_workers, "device": job.device_kind or "any",
            "summary": summary(job)}


def summary(job: Job) -> str:
    """"Blender ≥ 5.0, a GPU, at most 2 agents at once"; "any agent" when the job asks for nothing."""
    words = []
    if job.blender_pin is not None:
        words.append(f"Blender {job.blender_pin}")
    elif job.scene_blender is not None:
        words.append(f"Blender ≥ {bv.format_file_version(job.scene_blender)}")
    if job.device_kind is not None:
        words.append(f"a {job.device_kind.upper()}")
    if job.max_workers is not None:
        words.append(f"at most {job.max_workers} agent(s) at once")
    return ", ".join(words) or "any agent"


# ------------------------------------------------------------------------------------------- SQL


def scene_condition(worker: Worker) -> ColumnElement[bool]:
    """Jobs whose scene this agent may open: its Blender and device fit (for render tasks and checks alike)."""
    release = bv.release(worker.blender_version)
    if release is None:  # no version we understand: only jobs that ask for none
        version = and_(Job.scene_blender.is_(None), Job.blender_pin.is_(None))
    else:
        version = and_(or_(Job.scene_blender.is_(None), Job.scene_blender <= bv.file_version_of(release)),
                       or_(Job.blender_pin.is_(None), Job.blender_pin.in_(bv.pins_matching(release))))
    return and_(version, or_(Job.device_kind.is_(None), Job.device_kind == device_kind(worker)))


def render_condition(worker: Worker) -> ColumnElement[bool]:
    """Jobs this agent may render a task of: :func:`scene_condition`, and a place under the job's cap (agents
    holding one of its tasks now, this one not counted: it holds at most one task)."""
    held = aliased(Task)  # the claim's UPDATE is on task: this subquery's rows are others
    others = (select(func.count(func.distinct(held.worker_id)))
              .where(held.job_id == Job.id, held.state == TaskState.LEASED, held.worker_id != worker.id)
              .correlate(Job).scalar_subquery())
    return and_(scene_condition(worker), or_(Job.max_workers.is_(None), others < Job.max_workers))


# ------------------------------------------------------------------------------------------- one agent


def unmet(job: Job, worker: Worker) -> list[str]:
    """What of the scene's requirements this agent lacks, as words ("Blender ≥ 5.1", "a GPU"); empty if none."""
    missing = []
    release = bv.release(worker.blender_version)
    if job.scene_blender is not None and (release is None or bv.file_version_of(release) < job.scene_blender):
        missing.append(f"Blender ≥ {bv.format_file_version(job.scene_blender)}")
    if job.blender_pin is not None and (release is None or job.blender_pin not in bv.pins_matching(release)):
        missing.append(f"Blender {job.blender_pin}")
    if job.device_kind is not None and device_kind(worker) != job.device_kind:
        missing.append("a GPU" if job.device_kind == "gpu" else "a CPU")
    return missing


def able(job: Job, online: list[Worker]) -> list[Worker]:
    return [worker for worker in online if not unmet(job, worker)]


def waiting_reason(job: Job, online: list[Worker]) -> str | None:
    """Why the job waits when agents are online but none fits it ("needs Blender ≥ 5.1: none online"); None if
    one fits, or nobody is online at all."""
    if not online or able(job, online):
        return None
    needs = sorted({need for worker in online for need in unmet(job, worker)}, key=_need_order)
    seen = Counter(f"Blender {worker.blender_version or '?'} on {device_kind(worker).upper()}" for worker in online)
    present = ", ".join(f"{count} with {what}" for what, count in sorted(seen.items()))
    return f"needs {' and '.join(needs)}: none online (agents online: {present})"


def _need_order(need: str) -> tuple[bool, str]:
    return (not need.startswith("Blender"), need)
