"""Keep the scene cache under a size limit: least recently used scenes go first.

The cache holds verified blobs (``blobs/<sha256>``) and scene trees (``trees/<key>/…``) made of hard links to
them (or copies where the file system cannot link). A blob's bytes are freed only when no tree links it, so
eviction removes whole trees, oldest use first, and then the blobs nobody links any more, oldest use first.
Trees in ``keep`` (the scene being prepared and the one the warm Blender has open) are never removed: a scene
bigger than the limit still renders, and the cache shrinks again after it. Use is recorded by touching the
tree and its blobs (:func:`touch`) each time a scene is prepared.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("framehive.worker")


@dataclass
class Pruned:
    trees: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    freed: int = 0  # bytes
    used: int = 0  # bytes left in the cache


def usage(*roots: Path) -> int:
    """Bytes on disk under ``roots``, each file counted once however many hard links it has."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in roots:
        for path in _files(root):
            stat = path.lstat()
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def touch(paths: Iterable[Path]) -> None:
    """Mark these trees and blobs as just used."""
    for path in paths:
        # Gone meanwhile (another agent sharing the cache pruned it)? The next prepare fetches it again.
        with contextlib.suppress(OSError):
            os.utime(path)


def prune(blobs: Path, trees: Path, limit: int, keep: Iterable[Path] = ()) -> Pruned:
    """Remove unused blobs and least recently used trees until the cache holds at most ``limit`` bytes."""
    kept = {Path(p).resolve() for p in keep}
    result = Pruned(used=usage(blobs, trees))
    if result.used <= limit:
        return result
    candidates = sorted((t for t in _dirs(trees) if t.resolve() not in kept), key=_mtime)
    while True:
        _drop_unlinked_blobs(blobs, limit, result)
        if result.used <= limit or not candidates:
            break
        tree = candidates.pop(0)
        # Its hard links free nothing yet (their blobs go once unlinked, above); its copies free their bytes.
        copies = sum(stat.st_size for stat in (p.lstat() for p in _files(tree)) if stat.st_nlink == 1)
        shutil.rmtree(tree, ignore_errors=True)
        result.used -= copies
        result.freed += copies
        result.trees.append(tree.name)
    if result.trees or result.blobs:
        log.info("scene cache: removed %d scene(s) and %d file(s), %.1f MB freed, %.1f MB in use (limit %.1f MB)",
                 len(result.trees), len(result.blobs), result.freed / 1e6, result.used / 1e6, limit / 1e6)
    if result.used > limit:
        log.warning("scene cache: %.1f MB in use is over the %.1f MB limit: the scenes in use are bigger than it",
                    result.used / 1e6, limit / 1e6)
    return result


def _drop_unlinked_blobs(blobs: Path, limit: int, result: Pruned) -> None:
    """Blobs no tree links (one link: the cache's own), oldest use first, until under the limit."""
    unlinked = sorted((b for b in _files(blobs) if b.lstat().st_nlink == 1 and not b.name.endswith(".part")),
                      key=_mtime)
    for blob in unlinked:
        if result.used <= limit:
            return
        size = blob.lstat().st_size
        blob.unlink(missing_ok=True)
        result.used -= size
        result.freed += size
        result.blobs.append(blob.name)


def _files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def _dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
