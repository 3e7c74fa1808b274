"""Follow submitted jobs while Blender is open: poll, bring verified frames home, remember across restarts.

No ``bpy`` here. The add-on computes where each frame goes (``scene.render.frame_path``) on Blender's main
thread when it submits, and hands the watcher plain paths. The watcher polls from one background thread and
posts :class:`JobStatus` snapshots to a queue; a Blender timer drains the queue and redraws the panel (Blender
data must only be touched from the main thread). ``poll_once`` does one round synchronously, for scripts,
headless runs and tests; ``wake`` asks the background thread for a round now without blocking the caller.

Followed jobs are kept in a small JSON file, so polling resumes after Blender restarts; a job leaves the file
once it is over, no claim on it is open, and every verified frame is on disk. Frames come home as with
``framehive download`` (addon/frames_home.py): a frame already on disk with the sha256 the job lists is not
downloaded again, any other file at its path is replaced, so a frame the coordinator replaces (its renderer was
caught cheating later, or a claim on it was confirmed, and it was rendered again) comes again, and so does one the
artist deleted or changed. Each frame home is remembered with its sha256 and its file's stamp (size, modification
time, inode): the file is read again only when its stamp changed. Filing a claim on a job that was already
forgotten follows it again (the add-on's Claim operator does): frames already home are checked by hash, so only
replaced ones come. :meth:`JobWatcher.wait` polls as ``framehive wait`` does (addon/job_polling.py).

Frames no check has accepted yet are downloaded only when the artist asks (``fetch_unverified``), next to where
the verified frame goes but never there: ``<folder>/unverified/<name>.UNVERIFIED.png``, bytes marked by the
coordinator. Once the frame is verified and downloaded to its path, the unverified copy is deleted.

Once a job is over, its claims are listed before the job itself is read, each round: a claim decided after
the listing still shows as open (and the job is followed one more round), one decided before it shows its
replacement frames in the job. So the watcher never forgets a job between a claim's decision and the
download of the frames it replaced.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .client import RECONNECT_GRACE, ApiError, Client, ConnectionFailed, unverified_path
from .frames_home import DiskHashes, Stamp, bring_home, frames_in
from .job_polling import Round, poll_until_over
from .refusals import token_refusal
from .vocabulary import ClaimState, FrameState, JobState

log = logging.getLogger("framehive.addon")

PREFERENCES_HINT = "change it in the add-on's preferences"  # where the watcher's token comes from
POLL_INTERVAL = 2.0  # seconds between polls of a running job: a job page is small, frames take longer


@dataclass
class Followed:
    """A job being followed: where its frames go, and the coordinator it runs on."""

    job_id: int
    base_url: str
    frame_paths: dict[int, str]  # frame number → absolute file path
    downloaded: dict[int, str] = field(default_factory=dict)  # frame number → sha256 of the file written
    unverified: bool = False  # the artist asked for frames no check has accepted yet, marked as such
    # frame number → sha256 of the rendered frame (as the job lists it) whose unverified copy is on disk
    unverified_copies: dict[int, str] = field(default_factory=dict)
    # frame number → the stamp (size, mtime in ns, inode) of its file when it was found home with its sha256: while
    # the file keeps it, a restarted watcher need not read the frame again (frames_home.DiskHashes)
    stamps: dict[int, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class JobStatus:
    """What the panel shows of one job.

    After a failed poll the numbers are the last ones the coordinator gave (``state`` is "unknown" if it never
    answered) and ``error`` says what went wrong.
    """

    job_id: int
    state: str
    total: int  # frames in the job
    verified: int
    rendered: int  # rendered, waiting for verification
    failed: int
    downloaded: int  # frames on disk at their path
    eta_seconds: float | None
    output_dir: str
    error: str = ""
    pending: int = 0  # verified frames with a path that are not on disk yet
    retrying: bool = False  # the error may pass by itself (coordinator unreachable, overloaded): polling goes on
    dropped: bool = False  # the coordinator has no such job for this token: no longer followed
    open_claims: int = 0  # claims on the job not decided yet: the frames they dispute may still be replaced
    waiting: str = ""  # why the coordinator says the job waits (no verifier of another owner online, ...)
    unverified: int = 0  # unverified copies on disk (``<folder>/unverified/``), when the artist asked for them

    @property
    def finished(self) -> bool:
        """The job is over, no claim on it is open, and every verified frame that has a path is on disk."""
        return self.state in JobState.FINAL and self.pending == 0 and self.open_claims == 0

    @property
    def fraction(self) -> float:
        return self.verified / self.total if self.total else 0.0


class JobWatcher:
    """Polls followed jobs; downloads each verified frame once, to its path."""

    def __init__(self, state_file: Path, client_for: Callable[[str], Client | None],
                 interval: float = POLL_INTERVAL, reconnect_grace: float = RECONNECT_GRACE) -> None:
        """``client_for(base_url)`` gives a client for that coordinator, or None if the add-on's preferences
        now point elsewhere (the job is then left alone, not forgotten). :meth:`wait` tolerates an
        unreachable coordinator for ``reconnect_grace`` seconds (a restart must not end a long wait)."""
        self.state_file = Path(state_file)
        self.client_for = client_for
        self.interval = interval
        self.reconnect_grace = reconnect_grace
        self.statuses: queue.Queue[JobStatus] = queue.Queue()
        self._jobs: dict[int, Followed] = {}
        self._last: dict[int, dict[str, Any]] = {}  # job → what the coordinator last said (kept across failures)
        self._latest: dict[int, JobStatus] = {}  # job → its last status, also once it is no longer followed
        self._started_at: dict[int, tuple[float, int]] = {}  # job → (first seen, verified then): for the ETA
        self._lock = threading.Lock()  # guards _jobs and the state file
        self._round = threading.Lock()  # one polling round at a time: two would download the same frames
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._hashes = DiskHashes()  # the frames' sha256, read once per version of each file
        self._load()

    # ------------------------------------------------------------------ following

    def follow(self, job_id: int, base_url: str, frame_paths: dict[int, str]) -> None:
        """Follow a job (again): its verified frames go to ``frame_paths`` (frame → path)."""
        paths = {int(frame): str(path) for frame, path in frame_paths.items()}
        with self._lock:
            old = self._jobs.get(job_id)
            downloaded = {} if old is None or old.base_url != base_url else {
                frame: sha for frame, sha in old.downloaded.items() if old.frame_paths.get(frame) == paths.get(frame)}
            stamps = {frame: stamp for frame, stamp in (old.stamps if old else {}).items() if frame in downloaded}
            self._jobs[job_id] = Followed(job_id, base_url, paths, downloaded, stamps=stamps)
            self._save()
        self._wake.set()

    def fetch_unverified(self, job_id: int, wanted: bool = True) -> None:
        """Also download (or stop downloading) the job's frames that no check has accepted yet, marked as such."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            job.unverified = wanted
            self._save()
        self._wake.set()

    def forget(self, job_id: int, only: Followed | None = None) -> None:
        """Stop following a job; with ``only``, unless it was followed anew since ``only`` was read (by a
        claim filed from the main thread while a polling round found the job finished)."""
        with self._lock:
            if only is not None and self._jobs.get(job_id) is not only:
                return
            self._jobs.pop(job_id, None)
            self._save()
        self._last.pop(job_id, None)
        self._started_at.pop(job_id, None)

    def followed(self) -> list[int]:
        with self._lock:
            return sorted(self._jobs)

    # ------------------------------------------------------------------ polling

    def poll_once(self) -> list[JobStatus]:
        """Poll every followed job once, download new verified frames, post and return the statuses.

        Blocks while another round (the background thread's) is under way; from Blender's main thread call
        :meth:`wake` instead.
        """
        with self._round:
            with self._lock:
                jobs = list(self._jobs.values())
            statuses = [self._poll(job) for job in jobs]
        for status in statuses:
            self._latest[status.job_id] = status
            self.statuses.put(status)
        return statuses

    def wake(self) -> None:
        """Have the background thread poll now (e.g. right after cancelling a job); returns at once."""
        self._wake.set()

    def wait(self, job_id: int, timeout: float | None = None) -> JobStatus:
        """Poll until the job is over and its verified frames are home (headless runs and scripts).

        Returns early with the status when polling cannot get further: the job was dropped (the coordinator
        does not know it), an error that will not pass by itself (a refused token, a frame that cannot be
        written, the preferences point at another coordinator), or the coordinator stayed unreachable for
        ``reconnect_grace`` seconds. Raises KeyError for a job that is not followed, TimeoutError after
        ``timeout`` seconds.
        """
        if job_id not in self.followed():
            raise KeyError(f"job {job_id} is not followed")

        def one_round() -> JobStatus:
            status = next((s for s in self.poll_once() if s.job_id == job_id), None) or self._latest.get(job_id)
            if status is None:  # forgotten (by another thread) before it was ever polled
                raise KeyError(f"job {job_id} is no longer followed")
            return status

        def judge(status: JobStatus) -> Round:
            if status.finished or status.dropped or job_id not in self.followed():
                return Round.OVER
            if not status.error:
                return Round.GOING
            return Round.FAILING if status.retrying else Round.OVER

        return poll_until_over(one_round, judge, interval=self.interval, grace=self.reconnect_grace,
                               timeout=timeout, what=f"job {job_id}")

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="framehive-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def drain(self) -> list[JobStatus]:
        """Statuses posted since the last drain (called from Blender's main thread by a timer)."""
        out = []
        while True:
            try:
                out.append(self.statuses.get_nowait())
            except queue.Empty:
                return out

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the round: a wake during the round triggers the next one at once
            try:
                self.poll_once()
            except Exception:  # a bug must not kill the watcher silently: log and go on polling
                log.exception("polling Framehive jobs failed")
            self._wake.wait(self.interval)

    def _poll(self, job: Followed) -> JobStatus:
        client = self.client_for(job.base_url)
        if client is None:
            return self._status(job, f"the add-on now points at another coordinator than {job.base_url}; "
                                     f"job {job.job_id} is left alone until it points there again")
        try:
            data = self._observe(client, job.job_id)
        except ConnectionFailed as exc:
            return self._status(job, f"coordinator unreachable, retrying: {exc.message}", retrying=True)
        except ApiError as exc:
            return self._refused(job, exc)
        self._last[job.job_id] = data
        error, retrying = self._download(client, job, data["home_bound"])
        if job.unverified and not error:
            error, retrying = self._download_unverified(client, job, data["awaiting_checks"])
        status = self._status(job, error, retrying=retrying)
        if status.finished:
            self.forget(job.job_id, only=job)
        return status

    def _observe(self, client: Client, job_id: int) -> dict[str, Any]:
        """What the panel and the downloads need of the job; once it is over, with its open claims, listed
        before the job is read (see the module's docstring)."""
        open_claims = None
        if self._last.get(job_id, {}).get("state") in JobState.FINAL:
            open_claims = _open_claims(client.claims(job_id))
        data = client.job(job_id)
        if data.get("state") in JobState.FINAL and open_claims is None:  # over since the last round
            open_claims = _open_claims(client.claims(job_id))
            data = client.job(job_id)
        observed = {key: data.get(key) for key in ("state", "total", "counts", "frame_states", "waiting")}
        observed["open_claims"] = open_claims or 0
        observed["home_bound"] = frames_in(data)  # the frames that come home, as `framehive download` reads them
        observed["awaiting_checks"] = frames_in(data, {FrameState.RENDERED})
        return observed

    def _refused(self, job: Followed, exc: ApiError) -> JobStatus:
        """The coordinator answered the job's poll with an error."""
        if exc.status == 404:  # not on this coordinator for this account (deleted, or never was): give up
            self.forget(job.job_id, only=job)
            return self._status(job, f"job {job.job_id} is not on {job.base_url} for this token "
                                     f"({exc.message}); no longer following it", dropped=True)
        # 401 or 403 (a worker token in the preferences): fixable there, so the job is kept
        refused = token_refusal(exc, "see jobs", hint=PREFERENCES_HINT)
        if refused is not None:
            return self._status(job, refused)
        return self._status(job, str(exc), retrying=exc.status == 0 or exc.status == 429 or exc.status >= 500)

    def _download(self, client: Client, job: Followed, verified: dict[int, str]) -> tuple[str, bool]:
        """Bring the verified frames that have a path home (frames_home.bring_home: one already on disk with the
        job's sha256 is not fetched again); returns the first error ('' if none) and whether it may pass by
        itself. A frame that fails does not hold back the others."""
        targets = {frame: (Path(job.frame_paths[frame]), sha256) for frame, sha256 in verified.items()
                   if frame in job.frame_paths}
        result = bring_home(client, job.job_id, targets, hashes=self._hashes, keep_going=True)
        with self._lock:
            changed = False
            for frame in result.home:
                path, sha256 = targets[frame]
                stamp = self._hashes.stamp(path)
                record = list(stamp) if stamp is not None else []
                if job.downloaded.get(frame) != sha256 or job.stamps.get(frame, []) != record:
                    job.downloaded[frame], job.stamps[frame] = sha256, record
                    changed = True
                changed = job.unverified_copies.pop(frame, None) is not None or changed
            for frame in result.missing:  # not at its path (any more): pending again
                changed = job.downloaded.pop(frame, None) is not None or changed
                job.stamps.pop(frame, None)
            if changed and self._jobs.get(job.job_id) is job:
                self._save()
        return result.error, result.retrying

    def _download_unverified(self, client: Client, job: Followed, rendered: dict[int, str]) -> tuple[str, bool]:
        """Fetch the rendered frames awaiting checks that have a path, once per rendered version, to their
        unverified path; returns the first error ('' if none) and whether it may pass by itself."""
        for frame, sha256 in sorted(rendered.items()):
            path = job.frame_paths.get(frame)
            if path is None or job.unverified_copies.get(frame) == sha256:
                continue
            try:
                client.download_unverified_frame(job.job_id, frame, unverified_path(Path(path)))
            except ConnectionFailed as exc:
                return f"unverified frame {frame}: {exc.message}", True
            except ApiError as exc:  # verified, or rendered again, since the poll: the next round sees it
                if exc.status not in (404, 409):
                    return f"unverified frame {frame}: {exc}", True
                continue
            except OSError as exc:
                return f"unverified frame {frame} -> {unverified_path(Path(path))}: {exc}", False
            with self._lock:
                job.unverified_copies[frame] = sha256
                if self._jobs.get(job.job_id) is job:
                    self._save()
        return "", False

    def _status(self, job: Followed, error: str = "", retrying: bool = False, dropped: bool = False) -> JobStatus:
        data = self._last.get(job.job_id, {})
        counts: dict[str, Any] = data["counts"] if isinstance(data.get("counts"), dict) else {}
        verified: dict[int, str] = data.get("home_bound") or {}
        total = data.get("total")
        if not isinstance(total, int):
            total = len(data["frame_states"]) if isinstance(data.get("frame_states"), list) else len(job.frame_paths)
        n_verified = _count(counts, FrameState.VERIFIED)
        eta = None
        if data and not dropped:
            started = self._started_at.setdefault(job.job_id, (time.monotonic(), n_verified))
            eta = _eta(started, n_verified, total)
        pending = sum(1 for frame, sha in verified.items()
                      if frame in job.frame_paths and job.downloaded.get(frame) != sha)
        first = min(job.frame_paths) if job.frame_paths else None
        return JobStatus(
            job_id=job.job_id, state=str(data.get("state") or "unknown"), total=total, verified=n_verified,
            rendered=_count(counts, FrameState.RENDERED), failed=_count(counts, FrameState.FAILED),
            downloaded=len(job.downloaded), eta_seconds=eta,
            output_dir=os.path.dirname(job.frame_paths[first]) if first is not None else "",
            error=error, pending=pending, retrying=retrying, dropped=dropped,
            open_claims=_count(data, "open_claims"),
            waiting=data["waiting"] if isinstance(data.get("waiting"), str) else "",
            unverified=len(job.unverified_copies))

    # ------------------------------------------------------------------ persistence

    def _load(self) -> None:
        """Read the followed jobs; an unreadable file or entry is skipped (and overwritten by the next save)."""
        try:
            raw = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.state_file, exc)
            return
        items = raw.get("jobs") if isinstance(raw, dict) else None
        for item in items if isinstance(items, list) else []:
            try:
                downloaded, copies = item.get("downloaded"), item.get("unverified_copies")
                job = Followed(int(item["job_id"]), str(item["base_url"]),
                               {int(k): str(v) for k, v in item["frame_paths"].items()},
                               {int(k): str(v) for k, v in downloaded.items()} if isinstance(downloaded, dict)
                               else {}, item.get("unverified") is True,
                               {int(k): str(v) for k, v in copies.items()} if isinstance(copies, dict) else {})
                stamps = item.get("stamps")
                for frame, value in stamps.items() if isinstance(stamps, dict) else ():
                    stamp = _stamp(value)
                    if stamp is not None and int(frame) in job.downloaded and int(frame) in job.frame_paths:
                        job.stamps[int(frame)] = list(stamp)
                        self._hashes.remember(Path(job.frame_paths[int(frame)]), stamp, job.downloaded[int(frame)])
            except (KeyError, TypeError, ValueError, AttributeError):
                log.warning("ignoring a malformed job entry in %s", self.state_file)
                continue
            self._jobs[job.job_id] = job

    def _save(self) -> None:
        """Atomically (write, then rename): a crash never leaves half a file. Call with the lock held.

        A failure is logged, not raised: following goes on in memory, and the next save tries again.
        """
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"jobs": [asdict(job) for job in self._jobs.values()]}), encoding="utf-8")
            os.replace(tmp, self.state_file)
        except OSError as exc:
            log.warning("cannot save the followed jobs to %s: %s", self.state_file, exc)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def _stamp(value: object) -> Stamp | None:
    """A file's stamp as the state file keeps it (a list of three integers); None for anything else."""
    if not isinstance(value, list) or len(value) != 3:
        return None
    if not all(isinstance(part, int) and not isinstance(part, bool) for part in value):
        return None
    return value[0], value[1], value[2]


def _open_claims(claims: list[dict[str, Any]]) -> int:
    """Claims not decided yet (a state this client does not know counts as open: better one more poll)."""
    return sum(1 for claim in claims if claim.get("state") not in ClaimState.DECIDED)


def _count(counts: dict[str, Any], state: str) -> int:
    value = counts.get(state, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _eta(started: tuple[float, int], verified: int, total: int, now: float | None = None) -> float | None:
    """Seconds left at the rate frames were verified since the job was first seen; None until known."""
    since, verified_then = started
    done = verified - verified_then
    elapsed = (time.monotonic() if now is None else now) - since
    if done <= 0 or elapsed <= 0 or verified >= total:
        return None
    return (total - verified) * elapsed / done
