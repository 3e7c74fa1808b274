"""A scene's folder tree on the worker: each verified blob linked in at the relative path the job names.

Blender resolves ``//../textures/wood.png`` against the folder of the .blend it opened, so the worker rebuilds
the artist's tree (``shots/shot.blend``, ``textures/wood.png``) and opens the .blend inside it. A tree lives
in ``<trees>/<key>/``, where the key hashes every (path, sha256) pair: jobs with the same files share it, and
it is built once, in a private temporary folder renamed into place when complete.

The paths come from the coordinator, which this agent does not trust with its disk: every path is checked
again here (framehive.protocol.scenepaths), no folder on the way may be a symlink, and each file's folder must resolve
to inside the tree before anything is linked there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from framehive.protocol.scenepaths import BadPath, check_tree


class UnsafeTree(ValueError):
    """A path would leave the tree, go through a symlink, or land on a file that is already there."""


@dataclass(frozen=True)
class TreeFile:
    path: str  # relative POSIX path inside the tree
    sha256: str
    source: Path  # the verified blob


def tree_key(files: Iterable[TreeFile]) -> str:
    """Names the tree by its content: sha256 over the sorted (path, sha256) pairs."""
    pairs = sorted((f.path, f.sha256) for f in files)
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()


def assemble(trees: Path, files: list[TreeFile]) -> Path:
    """The folder holding every file at its path, built now unless an earlier task built it already.

    Raises :class:`framehive.protocol.scenepaths.BadPath` or :class:`UnsafeTree` (nothing is left behind) for a path
    that is not a plain downward path, or two paths that are one file on some file system.
    """
    check_tree(f.path for f in files)
    final = trees / tree_key(files)
    if final.is_dir():
        return final
    trees.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=trees, prefix=".building-"))
    try:
        for file in files:
            link_into(building, file.path, file.source)
        try:
            building.rename(final)
        except OSError:
            if not final.is_dir():  # not another agent sharing this cache that finished first
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)  # gone already if the rename succeeded
    return final


def link_into(root: Path, path: str, source: Path) -> Path:
    """Put ``source`` at ``root/path``: a hard link (no copy of a multi-GB texture), or a copy if the file
    system cannot link. Creates the folders on the way; refuses to follow or overwrite anything."""
    try:
        check_tree([path])
    except BadPath as exc:
        raise UnsafeTree(str(exc)) from None
    *folders, name = path.split("/")
    parent = root
    for folder in folders:
        parent = parent / folder
        if parent.is_symlink():
            raise UnsafeTree(f"{path!r}: {folder!r} is a symlink")
        try:
            parent.mkdir(exist_ok=True)
        except FileExistsError:
            raise UnsafeTree(f"{path!r}: {folder!r} is a file, not a folder") from None
    if not parent.resolve().is_relative_to(root.resolve()):
        raise UnsafeTree(f"{path!r} resolves to outside the scene's folder")
    target = parent / name
    if target.is_symlink() or target.exists():
        raise UnsafeTree(f"{path!r} is already in the scene's folder")
    try:
        os.link(source, target)
    except FileExistsError:
        raise UnsafeTree(f"{path!r} is already in the scene's folder") from None
    except OSError:  # another file system, or one without hard links (FAT, some network shares)
        with source.open("rb") as src, target.open("xb") as dst:
            shutil.copyfileobj(src, dst)
    return target
