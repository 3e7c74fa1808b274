"""Scenes downloaded once per job into a local cache, verified against their sha256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import requests

CHUNK = 1024 * 1024
DOWNLOAD_TIMEOUT = 60.0  # seconds without a byte before giving up


class SceneDownloadError(RuntimeError):
    """The scene could not be fetched or did not hash to what the coordinator announced."""


class SceneCache:
    def __init__(self, root: Path, session: requests.Session, base_url: str) -> None:
        self.root = root / "scenes"
        self.root.mkdir(parents=True, exist_ok=True)
        self.session = session
        self.base_url = base_url.rstrip("/")

    def path(self, sha256: str) -> Path:
        return self.root / f"{sha256}.blend"

    def ensure(self, sha256: str, url: str) -> Path:
        """Return the cached scene, downloading it first if needed (blocking; run it in a thread)."""
        target = self.path(sha256)
        if target.is_file():
            return target
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self.root, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as tmp, self.session.get(
                self.base_url + url, stream=True, timeout=DOWNLOAD_TIMEOUT
            ) as response:
                if response.status_code != 200:
                    raise SceneDownloadError(
                        f"scene download failed: HTTP {response.status_code} {response.text[:200]}")
                for chunk in response.iter_content(CHUNK):
                    digest.update(chunk)
                    tmp.write(chunk)
            if digest.hexdigest() != sha256:
                raise SceneDownloadError(f"scene hashes to {digest.hexdigest()}, expected {sha256}")
            os.replace(tmp_name, target)
        except requests.RequestException as exc:
            raise SceneDownloadError(f"scene download failed: {exc}") from None
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        return target
