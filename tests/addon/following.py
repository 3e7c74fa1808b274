"""What the job watcher's tests (test_job_watch.py, test_claims.py) look at: the client the add-on's session
would give the watcher, the state file, the frames of a job, and the identity of a file on disk."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from framehive.addon.client import Client

from tests.live import Site


def clients(site: Site, who: str = "artist") -> Callable[[str], Client | None]:
    """What the add-on's session gives the watcher: a client for the coordinator the preferences point at."""
    return lambda url: site.client(who) if url == site.url else None


def saved_jobs(state_file: Path) -> list[int]:
    return [job["job_id"] for job in json.loads(state_file.read_text())["jobs"]]


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def shas(job: dict[str, Any]) -> dict[int, str]:
    return {entry["frame"]: entry["sha256"] for entry in job["frame_states"]}


def stamp(path: Path) -> tuple[int, int]:
    """Identity of a file's current contents: a rewrite (download to a temp file, rename) changes the inode."""
    info = path.stat()
    return info.st_ino, info.st_mtime_ns
