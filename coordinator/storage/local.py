"""Blobs on local disk under ``root/ab/cdef…``; written through a temp file and renamed when complete."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


class HashMismatch(ValueError):
    """The bytes received do not hash to the announced sha256."""


class BlobTooLarge(ValueError):
    """More bytes than the caller is allowed to upload."""


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        self.scratch = self.root / "tmp"  # where callers may write temp files next to the blobs

    def path(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:]

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, sha256: str, stream: IO[bytes], max_size: int) -> int:
        """Store ``stream`` if it hashes to ``sha256``; return its size. Nothing is kept on any error.

        Bytes already stored are received and checked all the same (the caller may not claim a blob without
        sending it), and the copy already there stays: one copy of each content."""
        target = self.path(sha256)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > max_size:
                        raise BlobTooLarge(f"larger than the limit of {max_size} bytes")
                    digest.update(chunk)
                    tmp.write(chunk)
            if digest.hexdigest() != sha256:
                raise HashMismatch(f"content hashes to {digest.hexdigest()}, not {sha256}")
            target.parent.mkdir(exist_ok=True)
            if target.is_file():
                Path(tmp_name).unlink()
            else:
                os.replace(tmp_name, target)  # atomic: readers see the whole blob or none
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return size

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def size(self, sha256: str) -> int | None:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    @contextmanager
    def local_file(self, sha256: str) -> Iterator[Path]:
        """The blob as a file on this machine (here: the stored file itself; never write to it)."""
        yield self.path(sha256)

    def presigned_put(self, sha256: str, size: int, content_type: str) -> None:
        """Where the uploader may PUT the bytes itself: nowhere for local disk (they come through the coordinator)."""
        return None

    def sweep_staged(self, older_than: float = 0) -> int:
        """Direct uploads never confirmed: none on local disk (nothing is uploaded around the coordinator)."""
        return 0

    def presigned_get(self, sha256: str, mimetype: str, download_name: str | None = None) -> str | None:
        """A URL the client may fetch the blob from without the coordinator: none for local disk."""
        return None
