"""HTTP client for a Framehive coordinator, shared by the ``framehive`` command line and the Blender add-on.

Free of ``bpy``, and of third-party packages but ``requests``, which Blender's bundled Python ships and the
artist install (``framehive[artist]``) brings. One :class:`requests.Session` per :class:`Client` keeps its
connection open between requests (an upload of many blobs, a poll every second, a download of many frames), and
tries idempotent requests (GET, HEAD, PUT of a blob) again after a transient failure; a POST is never sent twice
(a job created twice costs the artist twice). Every failure reaches the caller as :class:`ApiError` (or its
subclass :class:`ConnectionFailed`), so a user interface needs a single ``except`` to show a clean message. That
includes a coordinator URL or token that cannot be used at all (:class:`InvalidSetting`, raised when the
:class:`Client` is made, before anything is sent).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Self, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

from .job_polling import Round, poll_until_over
from .version import VERSION
from .vocabulary import FrameState, JobState

__all__ = [
    "API_PREFIX",
    "CLIENT_VERSION",
    "USER_AGENT",
    "ApiError",
    "Client",
    "ConnectionFailed",
    "InvalidSetting",
    "check_token",
    "check_url",
    "sha256_file",
    "unverified_path",
]

CLIENT_VERSION = VERSION  # framehive/__init__.py's, through version.py
USER_AGENT = f"framehive-client/{CLIENT_VERSION}"
API_PREFIX = "/api/v1"
CHUNK_SIZE = 1024 * 1024
# Frames no check has accepted yet (FrameState.RENDERED), downloaded only when asked (download_unverified): in a
# folder of their own, under a name that says so (unverified_path), and the coordinator marks their bytes too
# (coordinator/unverified_frames.py).
UNVERIFIED_DIR = "unverified"
FRAME_PATTERN = "frame_{frame:04d}.png"  # a frame's file name in a download folder
# How long Client.wait tolerates an unreachable coordinator (a restart) before giving up; the add-on's job watcher
# takes it as its default.
RECONNECT_GRACE = 60.0
# Hashes per blobs/missing request: a scene tree may have more files than the coordinator takes in one query.
MISSING_QUERY_BATCH = 1000
# A coordinator that is rate limiting the token answers 429 with Retry-After: the request is sent again after
# that many seconds (at most MAX_RETRY_AFTER at a time), for RATE_LIMIT_PATIENCE seconds in all.
RATE_LIMIT_PATIENCE = 120.0
MAX_RETRY_AFTER = 30.0
# Transient failures of an idempotent request are tried again: a proxy's 502, a busy 503 or a 504 up to RETRIES
# times, after 0, 0.5, 1 and 2 s (a coordinator restarting behind its proxy); a connection refused or broken
# (connect or read) CONNECTION_RETRIES times, so that a coordinator that is down is said so within a second
# (Client.wait has its own RECONNECT_GRACE).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT"})
TRANSIENT_STATUSES = frozenset({502, 503, 504})
RETRIES = 4
CONNECTION_RETRIES = 2
TRANSIENT_BACKOFF = 0.25
TRANSIENT_BACKOFF_MAX = 2.0
MAX_REDIRECTS = 5

Progress = Callable[[int, int], None]

_ERROR_BODY_LIMIT = 64 * 1024
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_NETWORK_ERRORS = (OSError, requests.RequestException)
# Used when an error answer carries no JSON code of its own (a proxy page, a crash).
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    429: "rate_limited",
}


class ApiError(Exception):
    """An error answer from the coordinator, or a problem the client found itself (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        return f"{text} (HTTP {self.status})" if self.status else text


class ConnectionFailed(ApiError):
    """The coordinator could not be reached, or the connection broke mid-request (refused, DNS, timeout)."""

    def __init__(self, url: str, reason: object) -> None:
        self.url = url
        message = f"cannot reach the coordinator at {url} ({_describe(reason)})"
        super().__init__(0, "unreachable", message, {"url": url})


class InvalidSetting(ApiError, ValueError):
    """The coordinator URL (``code`` "bad_url") or the token ("bad_token") cannot be used as given.

    Found by :func:`check_url` and :func:`check_token` when a :class:`Client` is made, so that nothing is sent.
    Also a ValueError: it is one, and callers that only know that keep working.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(0, code, message)


def all_rendered(job: dict[str, Any]) -> bool:
    """Every frame of a running job has pixels, or failed: only its checks are left (the end is near)."""
    counts = job.get("counts")
    if not isinstance(counts, dict) or job.get("state") != JobState.RUNNING:
        return False
    return not any(counts.get(state) for state in (FrameState.QUEUED, FrameState.RENDERING))


def check_url(url: str) -> str:
    """The coordinator's root URL without blanks around it or slashes at its end; :class:`InvalidSetting`
    when it cannot be one (the API's paths are appended to it as they are)."""
    text = url.strip() if isinstance(url, str) else ""
    if not text:
        raise InvalidSetting("bad_url", "no coordinator URL given (e.g. http://render.example:8400)")
    if not text.startswith(("http://", "https://")):
        raise InvalidSetting("bad_url", f"the coordinator URL must start with http:// or https://, got {text!r}")
    problem = _odd_character(text)
    if problem:
        raise InvalidSetting("bad_url", f"the coordinator URL {text!r} contains {problem}: type it again")
    parts = urllib.parse.urlsplit(text)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise InvalidSetting("bad_url", f"the coordinator URL {text!r} has an invalid port") from None
    if not parts.hostname:
        raise InvalidSetting("bad_url", f"the coordinator URL {text!r} has no host name")
    if parts.username is not None or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise InvalidSetting("bad_url", f"the coordinator URL {text!r} may only have a scheme, a host, a port and "
                                        "a path (no user name, ?query or #fragment)")
    return text.rstrip("/")


def check_token(token: str | None) -> str | None:
    """The token without the blanks a paste adds around it (None if it is empty); :class:`InvalidSetting`
    when it holds what no token has: spaces, line breaks, control or non-ASCII characters. An HTTP header
    cannot carry some of them, and a token is never to be guessed at, so the message does not show it."""
    text = token.strip() if isinstance(token, str) else ""
    if not text:
        return None
    problem = _odd_character(text)
    if problem:
        raise InvalidSetting("bad_token", f"the token contains {problem}, which tokens never have: paste it again "
                                          "(it looks like fhu_...)")
    return text


def _odd_character(text: str) -> str:
    """What is wrong with the first character of ``text`` that is not printable ASCII without spaces."""
    for position, char in enumerate(text, start=1):
        if char in "\r\n":
            return f"a line break (character {position})"
        if not char.isascii():
            return f"a non-ASCII character (character {position})"
        if char.isspace():
            return f"a space or tab (character {position})"
        if not char.isprintable():
            return f"a control character (character {position})"
    return ""


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks so that multi-GB scenes never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


class Client:
    """Talks to one coordinator's HTTP API (``<base_url>/api/v1``) on behalf of one token."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 30) -> None:
        """``base_url`` is the coordinator's root, e.g. ``http://render.example:8000``; ``timeout`` applies
        to each socket operation (connect, each read), not to a whole transfer. Raises
        :class:`InvalidSetting` for a URL or token that cannot be used (see :func:`check_url`,
        :func:`check_token`)."""
        self.base_url = check_url(base_url)
        self.token = check_token(token)
        self.timeout = timeout
        self._session = _new_session()
        # False once the coordinator said it takes blobs only itself (local disk, or from before direct uploads):
        # its storage is set when it starts, so the client stops asking for a presigned PUT per blob.
        self._direct_uploads: bool | None = None

    def close(self) -> None:
        """Close the kept-alive connections (they are also closed when the client is garbage collected)."""
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ account

    def health(self) -> dict[str, Any]:
        """The coordinator's health report (needs no valid token)."""
        return _expect_dict(self._json("GET", "/health"), "health report")

    def me(self) -> dict[str, Any]:
        """The account the token belongs to."""
        return _expect_dict(self._json("GET", "/me"), "account")

    def workers(self) -> list[dict[str, Any]]:
        """The worker agents of the token's account (every agent for an admin token)."""
        return self._list("/workers", "workers", "worker list")

    # ------------------------------------------------------------------ blobs

    def missing_blobs(self, hashes: list[str]) -> list[str]:
        """The subset of ``hashes`` (hex SHA-256) that the coordinator does not store yet."""
        hashes = list(hashes)
        found: list[str] = []
        for start in range(0, len(hashes), MISSING_QUERY_BATCH):
            batch = hashes[start:start + MISSING_QUERY_BATCH]
            answer = self._json("POST", "/blobs/missing", {"sha256": batch})
            missing = answer.get("missing") if isinstance(answer, dict) else None
            if not isinstance(missing, list):
                raise _bad_response("the answer to blobs/missing has no 'missing' list")
            found += [h for h in missing if isinstance(h, str)]
        return found

    def upload_blob(self, path: Path, sha256: str, progress: Progress | None = None) -> dict[str, Any]:
        """Upload a file as the blob ``sha256``, streamed from disk; ``progress(sent, total)`` in bytes.

        The coordinator checks the bytes against the hash and answers ``{"sha256", "size"}``. A coordinator on an
        object store hands out a presigned PUT: the bytes go straight to the store (without the token), and the
        coordinator reads them back and checks them when asked to confirm. A coordinator that answers once that
        it has no store to upload to (``{"url": null}``, or 404/405 from one older than direct uploads) is not
        asked again by this client: the next blobs are PUT to it straight away.
        """
        sha256 = _check_sha256(sha256)
        size = Path(path).stat().st_size
        direct: dict[str, Any] = {"url": None}
        if self._direct_uploads is not False:
            try:
                direct = _expect_dict(self._json("POST", f"/blobs/{sha256}/uploads", {"size": size}), "upload")
            except ApiError as exc:
                if exc.status not in (404, 405):  # 404/405: a coordinator from before direct uploads
                    raise
            if "existed" in direct:
                return direct
            self._direct_uploads = isinstance(direct.get("url"), str)

        def send() -> dict[str, Any]:  # the file is read afresh for each try
            with Path(path).open("rb") as fp:
                size = os.fstat(fp.fileno()).st_size
                body = _ProgressReader(fp, size, progress)
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
                if progress is not None:
                    progress(0, size)
                if isinstance(direct.get("url"), str):
                    self._put_to_store(direct, body)
                    return _expect_dict(self._json("POST", f"/blobs/{sha256}/uploads/{direct.get('upload')}",
                                                   {"size": size}), "blob")
                with self._open("PUT", f"/blobs/{sha256}", body, headers) as response:
                    return _expect_dict(_read_json(response), "blob")

        return _backing_off(send)

    def _put_to_store(self, direct: dict[str, Any], body: _ProgressReader) -> None:
        """PUT a blob to the presigned URL the coordinator handed out, with exactly the headers it names."""
        url, headers = direct["url"], direct.get("headers")
        if not url.startswith(("http://", "https://")) or not isinstance(headers, dict) \
                or not isinstance(direct.get("upload"), str) or not direct["upload"].replace("-", "").replace(
                    "_", "").isalnum():
            raise _bad_response("the coordinator's presigned upload is not the JSON object it sends")
        try:
            response = self._session.put(url, data=body, headers={str(k): str(v) for k, v in headers.items()},
                                         timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise ConnectionFailed(url.split("?")[0], _cause(exc)) from None
        with response:
            if not 200 <= response.status_code < 300:
                raise ApiError(response.status_code, "store_refused", f"the object store refused the upload "
                               f"(HTTP {response.status_code})")

    # ------------------------------------------------------------------ jobs

    def submit(
        self,
        scene: Path,
        frames: str | None = None,
        chunk: int | None = None,
        priority: int | None = None,
        name: str | None = None,
        progress: Progress | None = None,
        policy: str | None = None,
        assets: dict[str, Path] | None = None,
        scene_path: str | None = None,
        blender_version: str | None = None,
        max_workers: int | None = None,
        device: str | None = None,
    ) -> dict[str, Any]:
        """Upload the scene and its files where the coordinator lacks them, then create a job; returns the job.

        ``frames`` is a range spec such as ``"1-24"`` (default: the scene's own range); ``progress`` gets
        ``(sent, total)`` bytes over all the files to upload and is not called at all when nothing needs
        uploading. A scene that uses other files (textures, libraries, caches) is a folder tree: ``assets`` maps
        each file's relative POSIX path in the tree to the file (``{"textures/wood.png": Path(...)}``) and
        ``scene_path`` is the .blend's own path in it (``"shots/shot.blend"``; default: its file name at the top).
        Every file is a blob of its own, so files the coordinator already has (from any job) are not sent again.
        ``blender_version`` (an exact Blender, "5.0" or "5.0.1"), ``max_workers`` (agents rendering it at once) and
        ``device`` ("gpu", "cpu", "any") restrict which agents render the job.
        """
        scene = Path(scene)
        digest = sha256_file(scene)
        tree = {path: (sha256_file(file), Path(file)) for path, file in (assets or {}).items()}
        self._upload_missing({digest: scene, **{sha: file for sha, file in tree.values()}}, progress)
        payload = {
            "scene": digest,
            "frames": frames,
            "chunk": chunk,
            "priority": priority,
            "name": name or scene.stem,
            "policy": policy,
            "filename": scene.name,
            "scene_path": scene_path,
            "blender_version": blender_version,
            "max_workers": max_workers,
            "device": device,
            # Left out when empty: a single .blend is a request any coordinator understands.
            "assets": {path: sha for path, (sha, _file) in tree.items()} or None,
        }
        body = {key: value for key, value in payload.items() if value is not None}
        return _expect_dict(self._json("POST", "/jobs", body), "job")

    def job(self, job_id: int) -> dict[str, Any]:
        """One job with its per-state counts, frame states and tasks."""
        return _expect_dict(self._json("GET", f"/jobs/{int(job_id)}"), "job")

    def jobs(self) -> list[dict[str, Any]]:
        """The token owner's jobs, newest first."""
        return self._list("/jobs", "jobs", "job list")

    def claim(self, job_id: int, frames: str, reason: str) -> dict[str, Any]:
        """Dispute delivered frames (e.g. ``"3,7"``); trusted nodes re-render them and the claim is decided."""
        body = {"frames": frames, "reason": reason}
        return _expect_dict(self._json("POST", f"/jobs/{int(job_id)}/claims", body), "claim")

    def claims(self, job_id: int) -> list[dict[str, Any]]:
        """The job's claims with their state and outcome."""
        return self._list(f"/jobs/{int(job_id)}/claims", "claims", "claim list")

    def balance(self) -> dict[str, Any]:
        """The account's points: balance, escrow held by running jobs, and what each of its agents earned."""
        return _expect_dict(self._json("GET", "/balance"), "balance")

    def ledger(self, job_id: int | None = None) -> list[dict[str, Any]]:
        """The account's ledger entries, newest first (only one job's with ``job_id``)."""
        return self._list("/ledger" + (f"?job={int(job_id)}" if job_id is not None else ""), "entries", "ledger")

    def pricing(self) -> dict[str, Any]:
        return _expect_dict(self._json("GET", "/pricing"), "pricing")

    def cancel(self, job_id: int) -> dict[str, Any]:
        """Cancel a job; returns the job as it is after cancelling."""
        return _expect_dict(self._json("POST", f"/jobs/{int(job_id)}/cancel", {}), "job")

    def pause(self, job_id: int) -> dict[str, Any]:
        """Pause a queued or running job (no new leases; work in flight finishes); returns the job."""
        return _expect_dict(self._json("POST", f"/jobs/{int(job_id)}/pause", {}), "job")

    def resume(self, job_id: int) -> dict[str, Any]:
        """Resume a paused job; returns the job."""
        return _expect_dict(self._json("POST", f"/jobs/{int(job_id)}/resume", {}), "job")

    def requeue(self, job_id: int) -> dict[str, Any]:
        """Give a job's failed tasks a fresh start (a failed job runs again, paid for anew); returns the job with
        ``requeued``, how many tasks."""
        return _expect_dict(self._json("POST", f"/jobs/{int(job_id)}/requeue", {}), "job")

    def set_priority(self, job_id: int, priority: int) -> dict[str, Any]:
        """Change a live job's priority (higher is rendered first); returns the job."""
        return _expect_dict(self._json("POST", f"/jobs/{int(job_id)}/priority", {"priority": priority}), "job")

    def wait(
        self,
        job_id: int,
        poll: float = 1.0,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Poll a job until it is completed, failed or cancelled, and return it.

        ``on_update`` gets the job after every poll. An unreachable coordinator is retried for
        :data:`RECONNECT_GRACE` seconds (a restart must not end a wait on a long render); ``timeout``
        raises :class:`TimeoutError`. The loop is addon/job_polling.py's, as the add-on's job watcher's.
        """
        def one_round() -> dict[str, Any] | ConnectionFailed:
            try:
                job = self.job(job_id)
            except ConnectionFailed as exc:
                return exc
            if on_update is not None:
                on_update(job)
            return job

        def judge(answer: dict[str, Any] | ConnectionFailed) -> Round:
            if isinstance(answer, ConnectionFailed):
                return Round.FAILING
            if answer.get("state") in JobState.FINAL:
                return Round.OVER
            return Round.CLOSING if all_rendered(answer) else Round.GOING

        last = poll_until_over(one_round, judge, interval=poll, grace=RECONNECT_GRACE, timeout=timeout,
                               what=f"job {job_id}")
        if isinstance(last, ConnectionFailed):
            raise last
        return last

    # ------------------------------------------------------------------ frames

    def download_frame(self, job_id: int, frame: int, dest: Path, expected_sha256: str | None = None) -> Path:
        """Download one rendered frame (PNG) to ``dest`` and return ``dest``.

        The bytes go to a temporary file next to ``dest`` that is renamed only once complete and checked
        against the ``X-Content-SHA256`` header and ``expected_sha256`` (either mismatch: ApiError
        ``hash_mismatch``), so ``dest`` never holds a half-written or corrupt frame.
        """
        path = f"/jobs/{int(job_id)}/frames/{int(frame)}"
        return self._fetch_frame(path, f"frame {frame} of job {job_id}", Path(dest), expected_sha256)

    def download_unverified(self, job_id: int, out_dir: Path, progress: Progress | None = None) -> list[Path]:
        """Download the job's rendered frames that no check has accepted yet, and may never be (they may be wrong
        or faked), into ``out_dir/unverified/`` as ``frame_NNNN.UNVERIFIED.png``; return the files.

        The coordinator marks their bytes (a PNG text chunk saying UNVERIFIED), so they never have the sha256 of
        the verified frame: :meth:`download_job` downloads that one whatever is on disk, and removes the
        unverified copy then."""
        from .frames_home import frames_in  # imported here: frames_home builds on this module

        frames = list(frames_in(self.job(job_id), {FrameState.RENDERED}))
        files: list[Path] = []
        for done, frame in enumerate(frames, start=1):
            dest = unverified_path(Path(out_dir) / FRAME_PATTERN.format(frame=frame))
            try:
                files.append(self.download_unverified_frame(job_id, frame, dest))
            except ApiError as exc:
                if exc.status not in (404, 409):
                    raise  # else verified or rendered again since the job was read: not unverified any more
            if progress is not None:
                progress(done, len(frames))
        return files

    def download_unverified_frame(self, job_id: int, frame: int, dest: Path) -> Path:
        """Download one frame no check has accepted yet, marked UNVERIFIED by the coordinator, to ``dest``."""
        path = f"/jobs/{int(job_id)}/unverified/{int(frame)}"
        return self._fetch_frame(path, f"unverified frame {frame} of job {job_id}", Path(dest), None)

    def _fetch_frame(self, path: str, what: str, dest: Path, expected_sha256: str | None) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # A hidden name of our own rather than mkstemp, whose 0600 mode would stick to the frame.
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        try:
            with open(tmp, "xb") as out, self._open("GET", path, headers={"Accept": "image/png"}) as response:
                digest, size = _copy_hashed(response, out, self._url(path))
                length = response.headers.get("Content-Length")
                announced = response.headers.get("X-Content-SHA256")
            _check_download(what, size, digest, length, announced, expected_sha256)
            os.replace(tmp, dest)
        except BaseException:
            # Also on Ctrl-C: a stray .part file would only confuse the artist.
            tmp.unlink(missing_ok=True)
            raise
        return dest

    def download_job(
        self,
        job_id: int,
        out_dir: Path,
        pattern: str = FRAME_PATTERN,
        states: Iterable[str] = FrameState.DELIVERED,
        progress: Progress | None = None,
    ) -> list[Path]:
        """Download the job's frames whose state is in ``states`` into ``out_dir``; return the new files.

        A frame already on disk with the sha256 the coordinator reports is skipped (not in the returned
        list). ``progress(done, total)`` counts frames, skipped ones included. The rule and the download are
        addon/frames_home.py's, as the add-on's job watcher's.
        """
        from .frames_home import bring_home, frames_in  # imported here: frames_home builds on this module

        out_dir = Path(out_dir)
        frames = frames_in(self.job(job_id), states)
        targets = {frame: (out_dir / pattern.format(frame=frame), sha256) for frame, sha256 in frames.items()}
        result = bring_home(self, job_id, targets, progress=progress)
        return [targets[frame][0] for frame in result.fetched]

    # ------------------------------------------------------------------ plumbing

    def _upload_missing(self, files: dict[str, Path], progress: Progress | None) -> None:
        """Upload those of ``files`` (sha256 → path) that the coordinator does not have; ``progress`` counts
        the bytes of all of them together, so that a tree of many files shows as one upload."""
        missing = set(self.missing_blobs(list(files)))
        uploads = [(digest, path) for digest, path in files.items() if digest in missing]
        total = sum(path.stat().st_size for _digest, path in uploads)
        done = 0
        for digest, path in uploads:
            self.upload_blob(path, digest, None if progress is None else _offset(progress, done, total))
            done += path.stat().st_size

    def _list(self, path: str, key: str, what: str) -> list[dict[str, Any]]:
        """Every item of a list endpoint: its pages, one after another, by their ``next`` links."""
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            answer = self._json("GET", path)
            page = answer.get(key) if isinstance(answer, dict) else None
            if not isinstance(page, list):
                raise _bad_response(f"the {what} has no {key!r} list")
            items += [item for item in page if isinstance(item, dict)]
            following = answer.get("next")
            if following is None:  # the last page (or a coordinator from before paging)
                return items
            path = _next_page(following, what)
            if path in seen:  # a coordinator must never send a client round in circles
                raise _bad_response(f"the {what}'s pages lead back to {following!r}")
            seen.add(path)

    def _url(self, path: str) -> str:
        return f"{self.base_url}{API_PREFIX}{path}"

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        """Send a request with an optional JSON body and return the decoded JSON answer."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        with self._open(method, path, data, headers) as response:
            return _read_json(response)

    def _open(
        self,
        method: str,
        path: str,
        body: bytes | _ProgressReader | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send a request and return the open response if it is a success; raise ApiError otherwise. A 429 is
        sent again after the wait it names, unless the body is a stream (its caller tries again itself)."""
        if isinstance(body, _ProgressReader):
            return self._send(method, path, body, headers)
        return _backing_off(lambda: self._send(method, path, body, headers))

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | _ProgressReader | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """One try of :meth:`_open` (transient failures of an idempotent request are tried again below it, by the
        session's adapter). The answer is streamed: its caller reads it, which returns the connection to the pool.
        """
        url = self._url(path)
        headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if self.token:
            # requests drops it when a redirect leads to another host: the artist's token goes nowhere else.
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            # Only reads follow redirects: a PUT's stream or a POST is never sent on to another place.
            response = self._session.request(method, url, data=body, headers=headers, timeout=self.timeout,
                                             stream=True, allow_redirects=method in ("GET", "HEAD"))
        except requests.RequestException as exc:
            raise ConnectionFailed(url, _cause(exc)) from None
        if not 200 <= response.status_code < 300:
            with response:
                error = _error_from_response(response, url)
            if isinstance(body, _ProgressReader):
                # A refused upload (413, 401...) may be answered before its body was read, and the server then
                # closes the connection: none of the pooled connections is used again (the next request on a
                # half-closed one would fail with "Remote end closed connection", measured in CI).
                self._session.close()
            raise error
        return response


T = TypeVar("T")


class _IdempotentRetry(Retry):
    """urllib3's Retry, except that a method it may not repeat is never sent again, even after a refused
    connection (urllib3 retries those for every method)."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        # A copy with no tries left raises at once (MaxRetryError, or the error itself).
        retry = self.new(total=0) if method is not None and method.upper() not in IDEMPOTENT_METHODS else self
        return super(_IdempotentRetry, retry).increment(method, url, response, error, _pool, _stacktrace)


def _new_session() -> requests.Session:
    """A session whose connections stay open between requests, with transient failures of idempotent requests
    tried again (see RETRIES). A private session: inside Blender another add-on may change requests' defaults."""
    retry = _IdempotentRetry(
        total=RETRIES, connect=CONNECTION_RETRIES, read=CONNECTION_RETRIES,
        backoff_factor=TRANSIENT_BACKOFF, backoff_max=TRANSIENT_BACKOFF_MAX,
        allowed_methods=IDEMPOTENT_METHODS, status_forcelist=TRANSIENT_STATUSES,
        # A 429 is _backing_off's (its Retry-After capped, for every method); the last 5xx becomes an ApiError.
        respect_retry_after_header=False, raise_on_status=False, raise_on_redirect=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = MAX_REDIRECTS
    # Bytes as sent: a frame's hash and Content-Length are of them, and a coordinator's gzip could be a bomb.
    session.headers["Accept-Encoding"] = "identity"
    return session


def _cause(exc: requests.RequestException) -> BaseException:
    """The socket's own error inside requests' and urllib3's wrappings (a refused connection's "Connection
    refused"), for :func:`_describe`; ``exc`` itself when there is none."""
    queue: list[BaseException] = [exc]
    seen: set[int] = set()
    while queue:
        error = queue.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, OSError) and error.strerror:
            return error
        inner = (getattr(error, "reason", None), *error.args[:1], error.__cause__, error.__context__)
        queue += [item for item in inner if isinstance(item, BaseException)]
    return exc


def _backing_off(send: Callable[[], T]) -> T:
    """``send()``, tried again while the coordinator answers 429, after the Retry-After it names."""
    waited = 0.0
    while True:
        try:
            return send()
        except ApiError as exc:
            delay = _retry_after(exc)
            if delay is None or waited + delay > RATE_LIMIT_PATIENCE:
                raise
        time.sleep(delay)  # the coordinator's own instruction: when its bucket has room again
        waited += delay


def _retry_after(exc: ApiError) -> float | None:
    """How long to wait before trying again, for a 429 (1 s when it says nothing usable); None otherwise."""
    if exc.status != 429:
        return None
    value = exc.details.get("retry_after")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        return 1.0
    return min(float(value), MAX_RETRY_AFTER)


def _next_page(link: Any, what: str) -> str:
    """The API path of a ``next`` link (``/api/v1/jobs?after=…``), which must stay on this coordinator's API."""
    if not isinstance(link, str) or not link.startswith(API_PREFIX + "/") or _odd_character(link):
        raise _bad_response(f"the {what}'s 'next' link {link!r} is not a path of the API")
    return link[len(API_PREFIX):]


def _offset(progress: Progress, before: int, total: int) -> Progress:
    """One file's ``(sent, size)`` as ``(bytes sent of all files, total of all files)``."""
    return lambda sent, _size: progress(before + sent, total)


class _ProgressReader:
    """Request body that streams a file and reports progress; urllib3 pulls it through ``read``."""

    def __init__(self, fp: BinaryIO, total: int, progress: Progress | None) -> None:
        self._fp = fp
        self._total = total
        self._progress = progress
        self._sent = 0
        self._reported = 0

    def __len__(self) -> int:  # requests takes Content-Length from it
        return self._total

    def tell(self) -> int:  # urllib3 notes the start before sending and seeks back there to send again
        return self._sent

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET or not 0 <= offset <= self._total:
            raise OSError("a blob upload can only be rewound")
        self._fp.seek(offset)
        self._sent = self._reported = offset
        return offset

    def read(self, size: int = -1) -> bytes:
        # Never more than Content-Length promised, even if the file grew since it was measured.
        remaining = self._total - self._sent
        size = remaining if size < 0 else min(size, remaining)
        data = self._fp.read(size) if size else b""
        self._sent += len(data)
        self._report()
        return data

    def _report(self) -> None:
        # urllib3 reads 16 KiB blocks; reporting each would redraw a progress bar 100 000 times per GB.
        if self._progress is None or self._sent == self._reported:
            return
        if self._sent - self._reported >= CHUNK_SIZE or self._sent == self._total:
            self._reported = self._sent
            self._progress(self._sent, self._total)


def _describe(reason: object) -> str:
    """Short text for a low-level network failure ("Connection refused", "timed out")."""
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _bad_response(message: str, status: int = 0) -> ApiError:
    return ApiError(status, "bad_response", message)


def _expect_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad_response(f"expected a {what} object from the coordinator, got {type(value).__name__}")
    return value


def _check_sha256(sha256: str) -> str:
    """Normalise a hex digest; refuse anything else since it becomes part of the URL path."""
    digest = sha256.strip().lower() if isinstance(sha256, str) else ""
    if not _SHA256_RE.fullmatch(digest):
        raise ValueError(f"not a hex SHA-256 digest: {sha256!r}")
    return digest


def _read_json(response: requests.Response) -> Any:
    """Read a whole (small) JSON answer."""
    try:
        raw = response.content
    except _NETWORK_ERRORS as exc:
        raise ConnectionFailed(_response_url(response), exc) from None
    try:
        return json.loads(raw)
    except ValueError:
        raise _bad_response(f"expected JSON from {_response_url(response)}", response.status_code) from None


def _response_url(response: requests.Response) -> str:
    return str(getattr(response, "url", "") or "the coordinator")


def _error_from_response(response: requests.Response, url: str) -> ApiError:
    """Turn an HTTP error answer into ApiError, using the server's ``{"error": {...}}`` body if present."""
    status = response.status_code
    try:
        raw = next(response.iter_content(_ERROR_BODY_LIMIT), b"")  # no more of a stranger's page than that
    except _NETWORK_ERRORS:
        raw = b""
    error = _json_error(raw)
    if error is not None:
        code = error["code"] if isinstance(error.get("code"), str) else _default_code(status)
        message = error["message"] if isinstance(error.get("message"), str) else response.reason
        details = error.get("details")
        if not isinstance(details, dict):
            details = {key: value for key, value in error.items() if key not in ("code", "message")}
        failure = ApiError(status, code, str(message), details)
    else:
        failure = ApiError(status, _default_code(status), _generic_message(status, response, raw, url))
    if status == 429 and (header := response.headers.get("Retry-After", "").strip()).isdigit():
        failure.details["retry_after"] = int(header)  # the header is the standard; a body may lack it
    return failure


def _json_error(raw: bytes) -> dict[str, Any] | None:
    """The ``error`` object of a JSON error body, or None for anything else."""
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, str):
        return {"message": error}
    return error if isinstance(error, dict) else None


def _default_code(status: int) -> str:
    return _STATUS_CODES.get(status, "server_error" if status >= 500 else "http_error")


def _generic_message(status: int, response: requests.Response, raw: bytes, url: str) -> str:
    """Message for an error without a JSON body; a short plain-text body is worth showing, HTML is not."""
    message = f"{response.reason or 'error'} from {url}"
    content_type = response.headers.get("Content-Type") or ""
    if content_type.startswith("text/plain"):
        first_line = raw.decode("utf-8", "replace").strip().splitlines()[:1]
        if first_line:
            message += f": {first_line[0][:200]}"
    return message


def _copy_hashed(response: requests.Response, out: BinaryIO, url: str) -> tuple[str, int]:
    """Copy a response body to ``out`` in chunks; return its sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    chunks = response.iter_content(CHUNK_SIZE)
    while True:
        try:
            chunk = next(chunks, b"")
        except _NETWORK_ERRORS as exc:
            raise ConnectionFailed(url, exc) from None
        if not chunk:
            return digest.hexdigest(), size
        digest.update(chunk)
        out.write(chunk)  # a full disk is an OSError of its own, not a network failure
        size += len(chunk)


def _check_download(
    what: str, size: int, digest: str, length: str | None, announced: str | None, expected: str | None
) -> None:
    """Refuse a truncated download or one whose bytes do not match the hash the coordinator gave."""
    if length is not None and length.isdigit() and int(length) != size:
        raise ApiError(0, "incomplete_download", f"{what}: received {size} of {length} bytes")
    for source, wanted in (("X-Content-SHA256 header", announced), ("job's frame list", expected)):
        if wanted and wanted.strip().lower() != digest:
            message = f"{what}: downloaded bytes have sha256 {digest}, the {source} says {wanted.strip()}"
            raise ApiError(0, "hash_mismatch", message, {"sha256": digest, "expected": wanted.strip()})


def unverified_path(dest: Path) -> Path:
    """Where the unverified copy of the frame bound for ``dest`` goes: a folder and a name that say so
    (``out/frame_0001.png`` → ``out/unverified/frame_0001.UNVERIFIED.png``)."""
    return dest.parent / UNVERIFIED_DIR / f"{dest.stem}.UNVERIFIED.png"
