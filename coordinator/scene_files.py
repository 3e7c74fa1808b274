"""A job's scene as a folder tree of blobs: checking the tree a submission names, and describing it to workers.

Scenes use other files (image textures, linked libraries, caches). The artist's packer lays them out as a tree,
the main .blend at ``scene_path`` (``shots/shot.blend``) with its paths rewritten to ``//``-relative ones
(``//../textures/wood.png``), and every file of the tree is uploaded as a blob of its own: a re-submission, or
another job that shares the textures, uploads nothing new. The worker rebuilds the tree from the blobs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import current_app
from framehive.protocol import blend_references
from framehive.protocol import messages as m
from framehive.protocol.scenepaths import BadPath, check_path, check_tree
from framehive.protocol.untrusted_parse import TOO_LARGE
from sqlalchemy import select

from . import blob_access
from .db import db
from .errors import ApiError
from .models import Blob, Job
from .storage.local import SHA256_RE

# Where the .blend sits when a submission names no tree (older clients send only the file name, if that).
DEFAULT_SCENE_PATH = "scene.blend"
# An unknown_blob error lists this many of the missing paths in its details.
MISSING_LISTED = 20
# An outside_reference or unsupported_cache error lists this many of the scene's problems in its details.
PROBLEMS_LISTED = 50


@dataclass(frozen=True)
class SceneTree:
    scene_path: str
    assets: list[dict[str, Any]]  # {"path", "sha256", "size"} of every file but the main .blend, by path


def validate_tree(body: dict[str, Any], scene: Blob, account_id: int) -> SceneTree:
    """The tree a submit request names (``scene_path``, ``assets``), checked before anything is written:
    safe and distinct paths, blobs the account holds, and the limits on the number of files and their size."""
    scene_path = body.get("scene_path")
    if scene_path is None:
        scene_path = _default_scene_path(body.get("filename"))
    elif not isinstance(scene_path, str):
        raise ApiError(400, "bad_request", "'scene_path' must be the .blend's relative path, e.g. shots/shot.blend")
    assets = body.get("assets")
    assets = {} if assets is None else assets
    if not isinstance(assets, dict) or not all(isinstance(sha, str) and SHA256_RE.match(sha)
                                               for sha in assets.values()):
        raise ApiError(400, "bad_request",
                       "'assets' must map relative paths to sha256 hashes (64 lowercase hex) of uploaded blobs")
    most = current_app.config["FRAMEHIVE_MAX_ASSETS"]
    if len(assets) > most:
        raise ApiError(400, "too_many_files", f"a job may have at most {most} files besides its .blend, "
                                              f"not {len(assets)}")
    try:
        check_tree([scene_path, *assets])
    except BadPath as exc:
        raise ApiError(400, "bad_path", str(exc)) from None
    entries = _asset_entries(assets, account_id)
    _check_size(scene, entries)
    return SceneTree(scene_path, entries)


def asset_blobs(tree: SceneTree) -> list[Blob]:
    """The blob rows of the tree's files besides the main .blend (all uploaded: validate_tree checked)."""
    shas = {entry["sha256"] for entry in tree.assets}
    return list(db.session.execute(select(Blob).where(Blob.sha256.in_(shas))).scalars()) if shas else []


def check_references(tree: SceneTree, scene: Blob, scans: dict[str, dict[str, Any]]) -> None:
    """Refuse a tree one of whose .blend files (the main one or any other: Blender opens any of them as a
    library) names a file outside the tree, or uses a cache the network does not render (protocol.
    blend_references; ``scans``: scene_inspect's records by sha256). 400 naming the file, the datablock and the
    path, with the first PROBLEMS_LISTED problems in ``details.problems``."""
    files = {tree.scene_path: scene.sha256, **{entry["path"]: entry["sha256"] for entry in tree.assets}}
    blends = {}
    for path, sha in files.items():
        scan = scans[sha]
        if not scan["ok"]:
            code = TOO_LARGE if scan["code"] == TOO_LARGE else "not_a_blend"
            raise ApiError(400, code, f"{path}: a .blend the coordinator cannot read ({scan['error']}), so the "
                                      "files it uses cannot be checked", file=path)
        if scan["blend"]:
            blends[path] = scan
    problems = blend_references.problems(blends, main=tree.scene_path)
    if problems:
        first = problems[0]
        more = f" ({len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ApiError(400, first.code, first.message + more, **first.details(),
                       problems=[{"code": problem.code, **problem.details()} for problem in problems[:PROBLEMS_LISTED]])


def describe(job: Job) -> dict[str, Any]:
    """The ``scene`` of an assign or verify order: the main .blend and every other file of its tree, as blobs
    to download (the first three keys are what single-file workers read)."""
    return {
        "sha256": job.scene_sha256,
        "size": _blob_size(job.scene_sha256),
        "url": blob_url(job.scene_sha256),
        "path": job.scene_path,
        "assets": _wire(job.assets or []),
    }


#: Sizes of scene blobs by sha256, for orders: content addressed, a blob's size never changes (every order read the
#: scene's row: a statement per check sent, issue 16). Bounded: cleared when full.
_SIZES: dict[str, int] = {}
_SIZES_KEPT = 4096


def _blob_size(sha256: str) -> int:
    size = _SIZES.get(sha256)
    if size is None:
        size = db.session.get_one(Blob, sha256).size
        if len(_SIZES) >= _SIZES_KEPT:
            _SIZES.clear()
        _SIZES[sha256] = size
    return size


def blob_url(sha256: str) -> str:
    return f"/api/v1/blobs/{sha256}"


def holds(job_scene: str, job_assets: list[dict[str, Any]] | None, sha256: str) -> bool:
    """Whether the blob is one of the files of this job's scene tree."""
    return sha256 == job_scene or any(asset["sha256"] == sha256 for asset in job_assets or ())


def _default_scene_path(filename: Any) -> str:
    """The uploaded file's own name, if it is a usable path; the .blend then sits alone at the tree's top."""
    if isinstance(filename, str):
        try:
            return check_path(filename)
        except BadPath:
            pass
    return DEFAULT_SCENE_PATH


def _asset_entries(assets: dict[str, str], account_id: int) -> list[dict[str, Any]]:
    """The files with their sizes, sorted by path; 400 ``unknown_blob`` naming a file the account did not
    upload (another account's blob is one nobody uploaded, as far as this account can tell)."""
    if not assets:
        return []
    held = blob_access.owned_by(account_id, assets.values())
    query = select(Blob.sha256, Blob.size).where(Blob.sha256.in_(held))
    sizes = {sha: size for sha, size in db.session.execute(query)} if held else {}
    missing = sorted(path for path, sha in assets.items() if sha not in sizes)
    if missing:
        more = f" ({len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise ApiError(400, "unknown_blob", f"the file {missing[0]!r} (blob {assets[missing[0]]}) was not "
                                            f"uploaded; upload it first{more}", missing=missing[:MISSING_LISTED])
    return [{"path": path, "sha256": sha, "size": sizes[sha]} for path, sha in sorted(assets.items())]


def _check_size(scene: Blob, entries: list[dict[str, Any]]) -> None:
    """The tree as it lands on a worker's disk, and its file list in one worker message, must fit."""
    total = scene.size + sum(entry["size"] for entry in entries)
    limit = current_app.config["FRAMEHIVE_MAX_JOB_BYTES"]
    if total > limit:
        raise ApiError(400, "too_large", f"the scene's files add up to {total} bytes; a job may have {limit}")
    listed = len(json.dumps(_wire(entries), separators=(",", ":")))
    if listed > m.MAX_MANIFEST_BYTES:
        raise ApiError(400, "too_many_files", f"the list of the scene's files takes {listed} bytes, more than fits "
                                              f"in a worker message ({m.MAX_MANIFEST_BYTES}); use fewer files or "
                                              "shorter paths")


def _wire(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**entry, "url": blob_url(entry["sha256"])} for entry in entries]
