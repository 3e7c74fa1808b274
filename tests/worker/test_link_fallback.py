"""A scene's tree is made of hard links to the cached blobs, or of copies where the file system cannot link
(another file system, FAT, some network shares, some Windows set-ups).

The fallback is exercised for real: the blob sits on /dev/shm (tmpfs) and the tree on the test's temporary folder
(another file system here), so ``os.link`` fails with EXDEV exactly as it would on such a machine.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from framehive.worker_agent.scene_tree import TreeFile, UnsafeTree, assemble, link_into

SHM = Path("/dev/shm")


@pytest.fixture
def other_fs_blob(tmp_path: Path) -> Iterator[Path]:
    """A blob on another file system than ``tmp_path``."""
    folder = Path(tempfile.mkdtemp(dir=SHM, prefix="framehive-blob-"))
    try:
        blob = folder / "blob"
        blob.write_bytes(b"texture bytes " * 1000)
        blob.chmod(0o444)
        assert blob.stat().st_dev != tmp_path.stat().st_dev, "the test needs two file systems"
        with pytest.raises(OSError) as linking:  # control: this is the failure the fallback is for
            os.link(blob, tmp_path / "probe")
        assert linking.value.errno == errno.EXDEV
        yield blob
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_blob_on_another_file_system_is_copied_into_the_tree(tmp_path: Path, other_fs_blob: Path) -> None:
    target = link_into(tmp_path, "textures/wood.png", other_fs_blob)
    assert target.read_bytes() == other_fs_blob.read_bytes()
    assert target.stat().st_ino != other_fs_blob.stat().st_ino and not target.is_symlink()


def test_a_whole_tree_of_copies_is_built(tmp_path: Path, other_fs_blob: Path) -> None:
    data = other_fs_blob.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    tree = assemble(tmp_path / "trees", [TreeFile("shots/shot.blend", sha, other_fs_blob),
                                         TreeFile("textures/wood.png", sha, other_fs_blob)])
    assert (tree / "shots" / "shot.blend").read_bytes() == data
    assert (tree / "textures" / "wood.png").read_bytes() == data
    assert [p.name for p in (tmp_path / "trees").iterdir()] == [tree.name], "no half-built folder left"


def test_the_copy_never_overwrites(tmp_path: Path, other_fs_blob: Path) -> None:
    link_into(tmp_path, "a.png", other_fs_blob)
    with pytest.raises(UnsafeTree, match="already"):
        link_into(tmp_path, "a.png", other_fs_blob)
