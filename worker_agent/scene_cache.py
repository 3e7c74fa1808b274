"""A job's scene on the worker: each of its files downloaded once into a blob cache and verified against its
sha256, then laid out as the scene's folder tree (scene_tree.py), from which Blender opens the main .blend.

Before Blender may open a tree, the agent checks it itself, whatever the coordinator checked (it may be
compromised, buggy or older): every .blend of the tree is read in a limited child process
(framehive.protocol.untrusted_parse) and each file it names must stay inside the tree, with no fluid domain
(framehive.protocol.blend_references, the coordinator's own check). A tree that fails raises :class:`SceneUnsafe`, and
the
task or check fails with its message. A tree is checked once per agent process.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from framehive.protocol import blend_references
from framehive.protocol.blend_inflate import may_be_blend
from framehive.protocol.json_numbers import is_int
from framehive.protocol.scenepaths import BadPath, check_path, check_tree
from framehive.protocol.untrusted_parse import ParseLimits, scan_files

from . import cache_eviction, coordinator_urls
from .coordinator_urls import SHA256_RE
from .http_errors import refusal
from .scene_tree import TreeFile, UnsafeTree, assemble

CHUNK = 1024 * 1024
DOWNLOAD_TIMEOUT = 60.0  # seconds without a byte before giving up
# Where the .blend sits in its tree when the order names no path (coordinators from before scene trees).
DEFAULT_SCENE_PATH = "scene.blend"
# Cached blobs are read-only: the tree's hard links share them, and nothing may change a verified file.
BLOB_MODE = 0o444


class SceneDownloadError(RuntimeError):
    """The scene's files could not be fetched, did not hash to what the coordinator announced, or name paths
    this agent refuses to write."""


class SceneUnsafe(SceneDownloadError):
    """The scene names files outside its tree, uses a cache the network does not render, or cannot be read within
    the parser's limits: Blender must not open it. ``problems``: what framehive.protocol.blend_references found.

    ``limit`` goes into the task_failed message (the task runner reads it from the exception): the scene's fault,
    not the agent's, as for the render limits."""

    limit = "unsafe_scene"

    def __init__(self, message: str, problems: list[blend_references.Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class RemoteFile:
    path: str  # in the scene's tree
    sha256: str
    size: int | None  # None: not announced


def scene_files(scene: Any) -> tuple[str, list[RemoteFile]]:
    """The main .blend's path and every file of its tree, from an order's ``scene``; all checked before a byte
    is downloaded, so a hostile file list costs nothing but this error."""
    if not isinstance(scene, dict) or not isinstance(scene.get("assets", []), list):
        raise SceneDownloadError("the order's scene is not {sha256, url, path, assets: [...]}")
    main = scene.get("path", DEFAULT_SCENE_PATH)
    files = [_remote({**scene, "path": main}), *map(_remote, scene.get("assets", []))]
    try:
        check_tree(f.path for f in files)
    except BadPath as exc:
        raise SceneDownloadError(f"refusing the scene's files: {exc}") from None
    return main, files


def _remote(entry: Any) -> RemoteFile:
    """One file of the scene. Its ``url`` is not used: the agent builds the URL from the sha256
    (coordinator_urls; the agent refused the order already if the two differ)."""
    if not isinstance(entry, dict):
        raise SceneDownloadError("a file of the scene is not an object")
    sha, size = entry.get("sha256"), entry.get("size")
    if not isinstance(sha, str) or not SHA256_RE.fullmatch(sha):
        raise SceneDownloadError(f"a file of the scene has no valid sha256: {sha!r:.80}")
    if size is not None and (not is_int(size) or size < 0):
        raise SceneDownloadError(f"a file of the scene has a bad size: {size!r:.80}")
    try:
        path = check_path(entry.get("path"))
    except BadPath as exc:
        raise SceneDownloadError(f"refusing the scene's files: {exc}") from None
    return RemoteFile(path, sha, size)


#: Scenes kept whatever the limit: the one being prepared and the one before it (the warm Blender's, which may
#: still read textures and libraries lazily while it renders).
KEEP_RECENT = 2


class SceneCache:
    """``limit``: bytes the cache may hold before least recently used scenes are removed (None: no limit);
    ``parse_limits``: what reading one of a scene's .blend files may cost (framehive.protocol.untrusted_parse)."""

    def __init__(self, root: Path, session: requests.Session, base_url: str, limit: int | None = None,
                 parse_limits: ParseLimits | None = None) -> None:
        self.blobs = root / "blobs"
        self.trees = root / "trees"
        self.parsing = root / "parsing"  # the parser inflates compressed .blend files here (on disk, not /tmp)
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.limit = limit
        self.parse_limits = parse_limits or ParseLimits()
        self._recent: list[Path] = []
        self._verdicts: dict[Path, SceneUnsafe | None] = {}  # tree -> why it is refused (None: it is safe)
        # Only tests of what lies behind the check (Blender crashing on a crafted file) turn it off; no option
        # of the agent does.
        self.check_references = True

    def ensure(self, scene: dict[str, Any]) -> Path:
        """The main .blend inside its laid-out tree, downloading the files not cached yet (blocking: run it in a
        thread). ``scene`` is an assign's or verify's ``scene``."""
        main, files = scene_files(scene)
        local = [TreeFile(f.path, f.sha256, self.fetch(f)) for f in files]
        try:
            tree = assemble(self.trees, local)
        except (BadPath, UnsafeTree, OSError) as exc:
            raise SceneDownloadError(f"cannot lay out the scene's files: {exc}") from None
        if self.check_references:
            if tree not in self._verdicts:
                self._verdicts[tree] = self._unsafe(tree, main, [f.path for f in files])
            if (unsafe := self._verdicts[tree]) is not None:
                raise unsafe
        cache_eviction.touch([tree, *(f.source for f in local)])
        self._recent = [tree, *(t for t in self._recent if t != tree)][:KEEP_RECENT]
        if self.limit is not None:
            cache_eviction.prune(self.blobs, self.trees, self.limit, keep=self._recent)
        return tree / main

    def _unsafe(self, tree: Path, main: str, paths: list[str]) -> SceneUnsafe | None:
        """Why Blender must not open the tree's main .blend, or None (see the module's docstring)."""
        blends = [path for path in paths if may_be_blend(tree / path)]
        self.parsing.mkdir(exist_ok=True)
        answers = scan_files([tree / path for path in blends], self.parse_limits, scratch=self.parsing)
        scans = {}
        for path, answer in zip(blends, answers, strict=True):
            if not answer["ok"]:
                return SceneUnsafe(f"refusing the scene: {path}: a .blend this agent cannot read within its "
                                   f"limits ({answer['error']}), so the files it uses cannot be checked")
            if answer["blend"]:
                scans[path] = answer
        problems = blend_references.problems(scans, main)
        if not problems:
            return None
        more = f" ({len(problems) - 1} more problems)" if len(problems) > 1 else ""
        return SceneUnsafe(f"refusing the scene: {problems[0].message}{more}", problems)

    def _download(self, sha256: str) -> requests.Response:
        """The blob from the coordinator, or from the object store its redirect names (S3 storage: a presigned
        URL). One hop only, fetched outside the session so the worker's token never reaches the store; the
        bytes are checked against the sha256 and size all the same."""
        response = self.session.get(coordinator_urls.join(self.base_url, coordinator_urls.blob_path(sha256)),
                                    stream=True, timeout=DOWNLOAD_TIMEOUT, allow_redirects=False)
        location = response.headers.get("Location", "")
        if response.status_code in (302, 303, 307) and location.startswith(("https://", "http://")):
            response.close()
            return requests.get(location, stream=True, timeout=DOWNLOAD_TIMEOUT, allow_redirects=False)
        return response

    def fetch(self, file: RemoteFile) -> Path:
        """The cached blob, downloaded and verified first if needed (never more bytes than announced)."""
        target = self.blobs / file.sha256
        if target.is_file():
            return target
        digest = hashlib.sha256()
        received = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.blobs, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as tmp, self._download(file.sha256) as response:
                if response.status_code != 200:
                    raise SceneDownloadError(refusal(f"download of {file.path} failed", response))
                for chunk in response.iter_content(CHUNK):
                    received += len(chunk)
                    if file.size is not None and received > file.size:
                        raise SceneDownloadError(f"{file.path} is larger than the {file.size} bytes announced")
                    digest.update(chunk)
                    tmp.write(chunk)
            if digest.hexdigest() != file.sha256:
                raise SceneDownloadError(f"{file.path} hashes to {digest.hexdigest()}, expected {file.sha256}")
            os.chmod(tmp_name, BLOB_MODE)
            os.replace(tmp_name, target)
        except requests.RequestException as exc:
            raise SceneDownloadError(f"download of {file.path} failed: {exc}") from None
        except OSError as exc:  # a full disk fails the task instead of crashing the agent's work loop
            raise SceneDownloadError(f"cannot store {file.path}: {exc}") from None
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        return target
