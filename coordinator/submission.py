"""Turning a submit request into a job, its tasks and its frames, in one transaction."""

from __future__ import annotations

from typing import Any

from flask import current_app
from framehive.protocol import frameranges
from framehive.protocol.json_numbers import is_int
from framehive.protocol.untrusted_parse import TOO_LARGE
from sqlalchemy import insert, select

from . import blob_access, capabilities, config, events, ledger, payments, quotas, scene_files, splitting
from .db import db
from .errors import ApiError
from .models import Blob, Frame, Job, Task, VerificationKey, Worker
from .scene_inspect import scan_blobs
from .storage.local import SHA256_RE
from .verification.keys import draw_keys


def scene_info(blob: Blob) -> dict[str, Any]:
    """The scene's record (scene_inspect: parsed once, kept on the blob row), with its active scene's frame
    range and resolution at the top; 400 when it is not a .blend with a scene, or too large to read."""
    info = scan_blobs([blob])[blob.sha256]
    if not info["ok"]:
        if info["code"] == TOO_LARGE:
            raise ApiError(400, TOO_LARGE, f"the scene cannot be read within the coordinator's limits "
                                           f"({info['error']})")
        raise ApiError(400, "not_a_blend", f"the scene is not a usable .blend file ({info['error']})")
    if not info["blend"]:
        raise ApiError(400, "not_a_blend", f"the scene is not a usable .blend file ({info['why']})")
    if info.get("scene") is None:
        raise ApiError(400, "not_a_blend", "the scene is not a usable .blend file (it contains no scene)")
    return info


def _int_field(body: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if not is_int(value) or not low <= value <= high:
        raise ApiError(400, "bad_request", f"'{name}' must be an integer from {low} to {high}")
    return value


def validate(body: Any, account_id: int) -> dict[str, Any]:
    """Check a submit request fully before anything is written. Every blob it names must be the account's own
    (blob_access): another account's hash is answered as one nobody uploaded."""
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    unknown = set(body) - {"scene", "frames", "chunk", "priority", "name", "filename", "policy", "scene_path",
                           "assets", *capabilities.FIELDS}
    if unknown:
        raise ApiError(400, "bad_request", f"unknown field(s): {', '.join(sorted(unknown))}")
    sha = body.get("scene")
    if not isinstance(sha, str) or not SHA256_RE.match(sha):
        raise ApiError(400, "bad_request", "'scene' must be the sha256 (64 lowercase hex) of an uploaded blob")
    blob = db.session.get(Blob, sha)
    if blob is None or not blob_access.owned_by(account_id, [sha]):
        raise ApiError(400, "unknown_blob", "the scene blob was not uploaded; upload it first")
    tree = scene_files.validate_tree(body, blob, account_id)
    scans = scan_blobs([blob, *scene_files.asset_blobs(tree)])  # every file of the tree in one parser run
    info = scene_info(blob)
    frames = _frames(body.get("frames"), info)
    for text in ("name", "filename"):
        if text in body and (not isinstance(body[text], str) or len(body[text]) > 200):
            raise ApiError(400, "bad_request", f"'{text}' must be a string of at most 200 characters")
    policy = body.get("policy", "adaptive")
    if policy not in config.POLICIES:
        raise ApiError(400, "bad_request", f"'policy' must be one of {', '.join(config.POLICIES)}")
    scene_files.check_references(tree, blob, scans)
    return {
        "policy": policy,
        "blob": blob,
        "tree": tree,
        "info": info,
        "frames": frames,
        "chunk": _int_field(body, "chunk", None, 1, 10_000),
        "priority": _int_field(body, "priority", config.DEFAULT_PRIORITY, config.MIN_PRIORITY, config.MAX_PRIORITY),
        "name": body.get("name") or body.get("filename") or "job",
        "filename": body.get("filename", ""),
        "capabilities": capabilities.from_request(body, info.get("blender_version")),
    }


def _frames(spec: Any, info: dict[str, Any]) -> list[int]:
    start, end = info["frame_start"], info["frame_end"]
    if spec is None:  # the scene's own range, under the same limit as a range given in the request
        quotas.check_job_frames(end - start + 1, f"the scene's frame range {start}-{end}")
        return list(range(start, end + 1))
    try:
        frames = frameranges.parse(spec)
    except frameranges.FrameRangeError as exc:
        raise ApiError(400, "bad_frames", str(exc)) from None
    quotas.check_job_frames(len(frames), f"the frame range {spec}")
    outside = [f for f in frames if not start <= f <= end]
    if outside:
        raise ApiError(
            400,
            "frames_out_of_range",
            f"frames {frameranges.format_frames(outside)} are outside the scene's range {start}-{end}",
            scene_frames=f"{start}-{end}",
        )
    return frames


def create_job(account_id: int, body: Any) -> Job:
    """Validate, then create job + tasks + frames and commit them together."""
    request = validate(body, account_id)
    frames: list[int] = request["frames"]
    quotas.check_live_jobs(account_id)
    price = payments.job_price(len(frames))
    available = ledger.balance(ledger.account_book(account_id))
    if available < price:  # refuse before anything is written
        raise ledger.InsufficientPoints(available, price)
    chunk = request["chunk"] or splitting.default_chunk(len(frames), _may_render(request["capabilities"]))
    width, height = request["info"]["resolution"]
    job = Job(
        account_id=account_id,
        name=request["name"],
        filename=request["filename"],
        scene_sha256=request["blob"].sha256,
        scene_path=request["tree"].scene_path,
        assets=request["tree"].assets,
        frames_spec=frameranges.format_frames(frames),
        chunk=chunk,
        priority=request["priority"],
        resolution_x=width,
        resolution_y=height,
        policy=request["policy"],
        settings=dict(config.PINNED_SETTINGS),
        **request["capabilities"],
    )
    db.session.add(job)
    db.session.flush()
    payments.charge(job, len(frames))
    _add_tasks(job, splitting.split(frames, chunk))
    events.record(events.JOB_SUBMITTED, f"job {job.id} ({job.name}) submitted: {len(frames)} frames "
                                        f"({job.frames_spec}), priority {job.priority}", job=job)
    db.session.commit()
    current_app.logger.info("job %s: %d frames in chunks of %d, %d files besides %s", job.id, len(frames), chunk,
                            len(job.assets), job.scene_path)
    return job


def _add_tasks(job: Job, groups: list[list[int]]) -> None:
    """The job's tasks, frames and verification keys, each kind in one executemany (bulk INSERTs without RETURNING).

    Added as ORM objects, each row was a statement of its own (SQLite gives SQLAlchemy no ordered RETURNING for a
    batch): 4,000 statements for a 1,000-frame job in chunks of 1, inside the write transaction (issue 16). The
    tasks' ids are read back in one SELECT, by their frame specs (each names other frames)."""
    specs = [frameranges.format_frames(group) for group in groups]
    db.session.execute(insert(Task), [{"job_id": job.id, "frames_spec": spec} for spec in specs])
    rows = db.session.execute(select(Task.frames_spec, Task.id).where(Task.job_id == job.id))
    ids = {spec: id_ for spec, id_ in rows}
    tasks = [Task(id=ids[spec], job_id=job.id, frames_spec=spec) for spec in specs]  # transient: draw_keys' input
    db.session.execute(insert(Frame), [{"job_id": job.id, "task_id": task.id, "number": n}
                                       for task, group in zip(tasks, groups, strict=True) for n in group])
    keys = [key for task, group in zip(tasks, groups, strict=True) for key in draw_keys(job, task, group)]
    if keys:
        db.session.execute(insert(VerificationKey), [_row(key) for key in keys])


def _row(obj: object) -> dict[str, Any]:
    """The attributes an ORM object was built with, as an INSERT's row (its defaults are the table's)."""
    return {name: value for name, value in vars(obj).items() if not name.startswith("_")}


def _may_render(requirements: dict[str, Any]) -> int:
    """How many agents a job may spread over: online agents that fit it, at most its cap."""
    online = db.session.execute(db.select(Worker).filter_by(online=True)).scalars().all()
    fitting = len(capabilities.able(Job(**requirements), list(online)))
    return min(fitting, requirements["max_workers"] or fitting)
