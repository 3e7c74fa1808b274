"""Upload one rendered frame over HTTP (never over the WebSocket)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import requests

UPLOAD_TIMEOUT = 120.0


class LeaseLost(RuntimeError):
    """The coordinator says this worker no longer holds the task."""


class UploadError(RuntimeError):
    """The coordinator refused the frame or could not be reached."""


def upload_frame(session: requests.Session, base_url: str, url: str, worker_id: int, path: Path) -> bool:
    """PUT ``path`` to ``url``; True if accepted, False for a harmless duplicate. Blocking."""
    data = path.read_bytes()
    headers = {
        "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
        "X-Framehive-Worker": str(worker_id),
        "Content-Type": "image/png",
    }
    try:
        response = session.put(base_url.rstrip("/") + url, data=data, headers=headers, timeout=UPLOAD_TIMEOUT)
    except requests.RequestException as exc:
        raise UploadError(f"frame upload failed: {exc}") from None
    if response.status_code == 409:
        raise LeaseLost(response.text[:300])
    if response.status_code not in (200, 201):
        raise UploadError(f"frame upload refused: HTTP {response.status_code} {response.text[:300]}")
    return bool(response.json().get("accepted"))
