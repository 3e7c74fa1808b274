"""The coordinator's own reference check, run again on a job's scene tree when a worker refuses it as unsafe.

The check at submit (scene_files.check_references over scene_inspect's scans) is the same code the worker runs
(framehive.protocol.blend_references). A worker refusing a scene the coordinator accepted means the check differs
between
them (this coordinator was upgraded since the job was submitted, or the agent is newer), or the worker lies.
Running the current check again tells the first case apart: the scans are kept on the blob rows, so this costs no
parse unless the scan format changed since (then each file is parsed once more, in the bounded child process).
"""

from __future__ import annotations

from sqlalchemy import select

from .db import db
from .errors import ApiError
from .models import Blob, Job
from .scene_files import SceneTree, check_references
from .scene_inspect import scan_blobs


def problem(job: Job) -> str | None:
    """Why the coordinator's current check refuses ``job``'s scene tree, or None if it accepts it."""
    tree = SceneTree(job.scene_path, list(job.assets or []))
    shas = {job.scene_sha256, *(entry["sha256"] for entry in tree.assets)}
    blobs = {blob.sha256: blob for blob in db.session.execute(select(Blob).where(Blob.sha256.in_(shas))).scalars()}
    if len(blobs) < len(shas):
        return None  # files already collected: the job is over, nothing to decide
    try:
        check_references(tree, blobs[job.scene_sha256], scan_blobs(list(blobs.values())))
    except ApiError as exc:
        return exc.message
    return None
