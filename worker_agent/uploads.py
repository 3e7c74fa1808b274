"""Upload one rendered frame, or a verifier's region render, over HTTP (never over the WebSocket).

Both take the same way (coordinator/api/worker_frames.py, worker_checks.py). A coordinator on an object store hands
out a presigned PUT (``POST <frame url>/uploads``): the frame goes straight
to the store, without the agent's token, and the agent then asks the coordinator to confirm it, which reads it back
and checks it. A coordinator on local disk answers ``{"url": null}`` (remembered per coordinator, so it is asked
once): the frame is PUT to the coordinator itself.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from framehive.protocol import messages as m

from . import coordinator_urls, transient
from .http_errors import escaped, refusal

UPLOAD_TIMEOUT = 120.0
# The only headers a presigned PUT may ask the agent to send (the store's signature covers them).
STORE_HEADERS = frozenset({"content-length", "content-type", "x-amz-checksum-sha256"})

# Coordinators that answered that frames come to them (local disk): not asked again.
_proxied: set[str] = set()
_proxied_lock = threading.Lock()


class LeaseLost(RuntimeError):
    """The coordinator says this worker no longer holds the task."""


class UploadError(RuntimeError):
    """The coordinator refused the frame or could not be reached."""


def upload_frame(session: requests.Session, base_url: str, url: str, worker_id: int, path: Path) -> bool:
    """Upload ``path`` as the frame at the coordinator's ``url`` (a path coordinator_urls builds; the agent's token
    goes nowhere else): straight to the object store when the coordinator presigns, else PUT to the coordinator.
    True if accepted, False for a harmless duplicate. Transient failures are tried again (transient.py). Blocking.
    Error bodies are logged here, not passed on."""
    data = path.read_bytes()
    headers = {
        "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
        "X-Framehive-Worker": str(worker_id),
    }
    try:
        target = coordinator_urls.join(base_url, url)
    except coordinator_urls.RefusedUrl as exc:
        raise UploadError(f"frame upload refused by this agent: {exc}") from None
    with _proxied_lock:
        proxied = base_url in _proxied
    if not proxied:
        direct = transient.retried(lambda: _begin(session, target, len(data), headers), "frame upload")
        if "accepted" in direct:  # a duplicate, answered at once
            return bool(direct["accepted"])
        if direct.get("url") is not None:
            return _direct(session, target, data, headers, direct)
        with _proxied_lock:
            _proxied.add(base_url)
    return transient.retried(lambda: _put(session, target, data, {**headers, "Content-Type": "image/png"}),
                             "frame upload")


def _with_suffix(target: str, suffix: str) -> str:
    """``…/frames/3?attempt=1`` → ``…/frames/3<suffix>?attempt=1``."""
    path, _, query = target.partition("?")
    return f"{path}{suffix}?{query}" if query else path + suffix


def _begin(session: requests.Session, target: str, size: int, headers: dict[str, str]) -> dict[str, Any]:
    """Ask for a presigned PUT; ``{"url": None}`` when the coordinator takes the frame itself."""
    response = _request(session, "POST", _with_suffix(target, "/uploads"), headers, json={"size": size})
    if response.status_code in (404, 405, 501):  # a coordinator (or proxy) from before direct uploads
        return {"url": None}
    answer = _answer(response)
    url = answer.get("url")
    if url is not None and not (isinstance(url, str) and isinstance(answer.get("upload"), str)
                                and isinstance(answer.get("headers"), dict)):
        raise UploadError("frame upload: the coordinator's presigned upload is not the JSON object it sends")
    return answer


def _direct(session: requests.Session, target: str, data: bytes, headers: dict[str, str],
            direct: dict[str, Any]) -> bool:
    """PUT the frame to the store's presigned URL (with no Framehive header), then have the coordinator confirm it."""
    url = direct["url"]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise UploadError(f"frame upload refused by this agent: the store URL {escaped(url[:120])} is not http(s)")
    store_headers = {str(k): str(v) for k, v in direct["headers"].items()}
    if {k.lower() for k in store_headers} - STORE_HEADERS or store_headers.get("Content-Length") != str(len(data)):
        raise UploadError("frame upload refused by this agent: the presigned upload asks for other headers")
    if not m.HANDLE_RE.fullmatch(direct["upload"]):
        raise UploadError("frame upload refused by this agent: the upload handle is not a plain name")
    confirm = _with_suffix(target, f"/uploads/{direct['upload']}")
    transient.retried(lambda: _store(url, data, store_headers), "frame upload to the store")
    return transient.retried(
        lambda: bool(_answer(_request(session, "POST", confirm, headers, json={"size": len(data)})).get("accepted")),
        "frame upload confirmation")


def _store(url: str, data: bytes, headers: dict[str, str]) -> None:
    """One PUT to the store: a bare request (not the agent's session, whose headers carry its token)."""
    try:
        response = requests.put(url, data=data, headers=headers, timeout=UPLOAD_TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        error = UploadError(f"frame upload to the store failed: {escaped(str(exc))}")
        raise (transient.Transient(error) if transient.is_transient(exc) else error) from None
    if response.status_code in transient.TRANSIENT_STATUSES:
        raise transient.Transient(UploadError(refusal("frame upload refused by the store", response)))
    if not 200 <= response.status_code < 300:
        raise UploadError(refusal("frame upload refused by the store", response))


def _request(session: requests.Session, method: str, target: str, headers: dict[str, str],
             **body: Any) -> requests.Response:
    try:
        return session.request(method, target, headers=headers, timeout=UPLOAD_TIMEOUT, allow_redirects=False,
                               **body)
    except requests.RequestException as exc:
        error = UploadError(f"frame upload failed: {escaped(str(exc))}")
        raise (transient.Transient(error) if transient.is_transient(exc) else error) from None


def _answer(response: requests.Response) -> dict[str, Any]:
    """The coordinator's JSON answer to a frame request, or the error its status means."""
    if response.status_code == 409:
        raise LeaseLost(refusal("frame upload", response))
    if response.status_code in transient.TRANSIENT_STATUSES:
        raise transient.Transient(UploadError(refusal("frame upload refused", response)))
    if response.status_code not in (200, 201):
        raise UploadError(refusal("frame upload refused", response))
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise UploadError("frame upload: the coordinator's answer is not the JSON object it sends")
    return answer


def _put(session: requests.Session, target: str, data: bytes, headers: dict[str, str]) -> bool:
    """One PUT of the frame to the coordinator."""
    return bool(_answer(_request(session, "PUT", target, headers, data=data)).get("accepted"))
