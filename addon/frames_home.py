"""Bring a job's verified frames home: the one way frames reach the artist's disk, for ``framehive download``,
``submit --wait`` (:meth:`Client.download_job <framehive.addon.client.Client.download_job>`) and the add-on's job
watcher (addon/job_watch.py).

No ``bpy`` here. The rule: a frame already on disk with the sha256 the coordinator lists for it is not downloaded
again; any other file at its path (older bytes, a frame the coordinator replaced since, a truncated copy) is
replaced by the download, which is checked against that sha256 (:meth:`Client.download_frame`). Once the verified
frame is home, the copy downloaded before any check (``<folder>/unverified/<name>.UNVERIFIED.png``) is removed.

Hashing a frame means reading it: :class:`DiskHashes` remembers each file's sha256 for as long as its size,
modification time and inode stay the same, so that the watcher, which looks at every frame of a job each round,
reads a frame once and not every two seconds. Its stamps can be kept across restarts (the watcher's state file).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client import ApiError, ConnectionFailed, Progress, sha256_file, unverified_path
from .vocabulary import FrameState

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .client import Client

__all__ = ["DiskHashes", "Homecoming", "Stamp", "bring_frame_home", "bring_home", "frames_in", "on_disk"]

Stamp = tuple[int, int, int]  # a file's size, modification time (ns) and inode: its contents, unless changed
# A file's modification time is only as fine as its file system's clock (a few ms on ext4, 2 s on FAT): a file read
# less than this after it was written could be written again, the same size, under the same stamp. Its hash is not
# remembered then, but read again next time (git's "racily clean" files).
RACY_NS = 2_000_000_000


def stamp_of(path: Path) -> Stamp | None:
    """The file's :data:`Stamp`; None if it is not a regular file (or cannot be looked at)."""
    try:
        info = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    return info.st_size, info.st_mtime_ns, info.st_ino


class DiskHashes:
    """The sha256 of files on disk, read once per version of each file (see the module's docstring)."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[Stamp, str]] = {}

    def sha256(self, path: Path) -> str | None:
        """The file's sha256; None if it is not there or cannot be read."""
        stamp = stamp_of(path)
        if stamp is None:
            return None
        known = self._known.get(str(path))
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            digest = sha256_file(path)
        except OSError:
            return None
        if stamp_of(path) == stamp and time.time_ns() - stamp[1] > RACY_NS:  # not changed while read, nor racy
            self._known[str(path)] = (stamp, digest)
        return digest

    def remember(self, path: Path, stamp: Stamp, sha256: str) -> None:
        """Take the file at ``path`` with ``stamp`` to hold ``sha256`` (written here, or noted before a restart)."""
        self._known[str(path)] = (stamp, sha256.strip().lower())

    def stamp(self, path: Path) -> Stamp | None:
        """The stamp under which the file's sha256 is known; None if it is not known."""
        known = self._known.get(str(path))
        return known[0] if known is not None else None


def on_disk(path: Path, sha256: str, hashes: DiskHashes | None = None) -> bool:
    """The file is already there with these bytes (downloaded before, or before a crash); False if it cannot be
    read. ``hashes`` spares reading a file whose hash is known."""
    wanted = sha256.strip().lower()
    if not wanted:
        return False
    found = (hashes or DiskHashes()).sha256(Path(path))
    return found == wanted


def frames_in(job: dict[str, Any], states: Iterable[str] = FrameState.DELIVERED) -> dict[int, str]:
    """The job's frames whose state is in ``states``: frame number → sha256 as the job lists it ('' if it gives
    none). ApiError ``bad_response`` for a job without a frame list or with a frame number that is not an integer
    (it becomes part of a file name)."""
    entries = job.get("frame_states")
    if not isinstance(entries, list):
        raise ApiError(0, "bad_response", "the job has no 'frame_states' list")
    wanted = set(states)
    out: dict[int, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("state") not in wanted:
            continue
        frame, sha256 = entry.get("frame"), entry.get("sha256")
        if not isinstance(frame, int) or isinstance(frame, bool):
            raise ApiError(0, "bad_response", f"frame number {frame!r} in the job's frame list is not an integer")
        out[frame] = sha256.strip().lower() if isinstance(sha256, str) else ""
    return out


def bring_frame_home(client: Client, job_id: int, frame: int, dest: Path, sha256: str,
                     hashes: DiskHashes | None = None) -> bool:
    """Put a verified frame at ``dest``, unless it is there already with ``sha256`` (the hash the job lists; ''
    if none: then it is always downloaded); its unverified copy, if one was downloaded, is removed. True if it was
    downloaded. Raises what :meth:`Client.download_frame` raises."""
    dest = Path(dest)
    fetched = not on_disk(dest, sha256, hashes)
    if fetched:
        client.download_frame(job_id, frame, dest, expected_sha256=sha256 or None)
        stamp = stamp_of(dest)
        if hashes is not None and sha256 and stamp is not None:
            hashes.remember(dest, stamp, sha256)  # checked against it by the download
    with contextlib.suppress(OSError):  # the verified frame replaces a copy downloaded before any check
        unverified_path(dest).unlink(missing_ok=True)
    return fetched


@dataclass
class Homecoming:
    """What one :func:`bring_home` did."""

    fetched: list[int] = field(default_factory=list)  # frames downloaded now
    present: list[int] = field(default_factory=list)  # frames already on disk with their sha256
    missing: list[int] = field(default_factory=list)  # frames that could not be brought (see ``error``)
    error: str = ""  # the first failure ('' if none)
    retrying: bool = False  # that failure may pass by itself (the coordinator, not the artist's disk)

    @property
    def home(self) -> list[int]:
        """Frames at their path with the bytes the coordinator lists, in frame order."""
        return sorted(self.fetched + self.present)


def bring_home(client: Client, job_id: int, targets: Mapping[int, tuple[Path, str]],
               hashes: DiskHashes | None = None, progress: Progress | None = None,
               keep_going: bool = False) -> Homecoming:
    """Bring each frame of ``targets`` (frame → (path, sha256 the job lists)) home, in frame order;
    ``progress(done, total)`` counts frames, those already on disk included.

    Without ``keep_going`` the first failure is raised. With it (the watcher, which tries again next round), a
    frame that fails holds back no other and the first failure is described in the result; an unreachable
    coordinator ends the round (the next frames would fail the same way).
    """
    result = Homecoming()
    frames = sorted(targets)
    for done, frame in enumerate(frames, start=1):
        dest, sha256 = targets[frame]
        try:
            fetched = bring_frame_home(client, job_id, frame, Path(dest), sha256, hashes)
        except ConnectionFailed as exc:
            if not keep_going:
                raise
            result.missing.append(frame)
            _fail(result, f"frame {frame}: {exc.message}", retrying=True)
            break
        except ApiError as exc:  # e.g. the frame was replaced between reading the job and the download
            if not keep_going:
                raise
            result.missing.append(frame)
            _fail(result, f"frame {frame}: {exc}", retrying=True)
        except OSError as exc:  # the path cannot be written: the artist must act
            if not keep_going:
                raise
            result.missing.append(frame)
            _fail(result, f"frame {frame} -> {dest}: {exc}", retrying=False)
        else:
            (result.fetched if fetched else result.present).append(frame)
        if progress is not None:
            progress(done, len(frames))
    return result


def _fail(result: Homecoming, error: str, retrying: bool) -> None:
    """Keep the first failure of a round: the one the artist sees."""
    if not result.error:
        result.error, result.retrying = error, retrying
