"""Upload one rendered frame over HTTP (never over the WebSocket)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import requests

from . import coordinator_urls, transient
from .http_errors import escaped, refusal

UPLOAD_TIMEOUT = 120.0


class LeaseLost(RuntimeError):
    """The coordinator says this worker no longer holds the task."""


class UploadError(RuntimeError):
    """The coordinator refused the frame or could not be reached."""


def upload_frame(session: requests.Session, base_url: str, url: str, worker_id: int, path: Path) -> bool:
    """PUT ``path`` to the coordinator's ``url`` (a path coordinator_urls builds; nothing else is requested);
    True if accepted, False for a harmless duplicate. Transient failures are tried again (transient.py). Blocking.
    Error bodies are logged here, not passed on."""
    data = path.read_bytes()
    headers = {
        "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
        "X-Framehive-Worker": str(worker_id),
        "Content-Type": "image/png",
    }
    try:
        target = coordinator_urls.join(base_url, url)
    except coordinator_urls.RefusedUrl as exc:
        raise UploadError(f"frame upload refused by this agent: {exc}") from None
    return transient.retried(lambda: _put(session, target, data, headers), "frame upload")


def _put(session: requests.Session, target: str, data: bytes, headers: dict[str, str]) -> bool:
    """One attempt of :func:`upload_frame`."""
    try:
        response = session.put(target, data=data, headers=headers, timeout=UPLOAD_TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        error = UploadError(f"frame upload failed: {escaped(str(exc))}")
        raise (transient.Transient(error) if transient.is_transient(exc) else error) from None
    if response.status_code == 409:
        raise LeaseLost(refusal("frame upload", response))
    if response.status_code in transient.TRANSIENT_STATUSES:
        raise transient.Transient(UploadError(refusal("frame upload refused", response)))
    if response.status_code not in (200, 201):
        raise UploadError(refusal("frame upload refused", response))
    try:
        return bool(response.json().get("accepted"))
    except (ValueError, AttributeError):
        raise UploadError("frame upload: the coordinator's answer is not the JSON object it sends") from None
