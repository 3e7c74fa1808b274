"""Upload one rendered frame over HTTP (never over the WebSocket)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import requests

from . import coordinator_urls
from .http_errors import escaped, refusal

UPLOAD_TIMEOUT = 120.0


class LeaseLost(RuntimeError):
    """The coordinator says this worker no longer holds the task."""


class UploadError(RuntimeError):
    """The coordinator refused the frame or could not be reached."""


def upload_frame(session: requests.Session, base_url: str, url: str, worker_id: int, path: Path) -> bool:
    """PUT ``path`` to the coordinator's ``url`` (a path coordinator_urls builds; nothing else is requested);
    True if accepted, False for a harmless duplicate. Blocking. Error bodies are logged here, not passed on."""
    data = path.read_bytes()
    headers = {
        "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
        "X-Framehive-Worker": str(worker_id),
        "Content-Type": "image/png",
    }
    try:
        response = session.put(coordinator_urls.join(base_url, url), data=data, headers=headers,
                               timeout=UPLOAD_TIMEOUT, allow_redirects=False)
    except coordinator_urls.RefusedUrl as exc:
        raise UploadError(f"frame upload refused by this agent: {exc}") from None
    except requests.RequestException as exc:
        raise UploadError(f"frame upload failed: {escaped(str(exc))}") from None
    if response.status_code == 409:
        raise LeaseLost(refusal("frame upload", response))
    if response.status_code not in (200, 201):
        raise UploadError(refusal("frame upload refused", response))
    try:
        return bool(response.json().get("accepted"))
    except (ValueError, AttributeError):
        raise UploadError("frame upload: the coordinator's answer is not the JSON object it sends") from None
