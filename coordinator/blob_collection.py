"""Deleting blobs nothing needs any more, so that storage does not grow without bounds.

Two passes, run by a background thread every FRAMEHIVE_COLLECT_INTERVAL seconds (and callable from tests):

1. **Release** finished jobs (completed, failed, cancelled) that ended more than FRAMEHIVE_JOB_RETENTION ago and
   have no open check (an audit or a claim of a finished job still needs its files): their frames and check
   crops are cut loose (``blob_sha256`` / ``result_sha256`` set to null, states kept), their scene points at an
   empty placeholder blob (``Job.scene_sha256`` cannot be null), and ``files_collected_at`` says when. The job,
   its frames' states, its checks' verdicts and its ledger stay; its pixels are gone (a frame download is 410
   ``collected``, a claim or a requeue 409 ``files_collected``).
2. **Collect** blobs that no unreleased job uses, whose last upload (its BlobUpload rows, or its creation) is
   older than FRAMEHIVE_BLOB_GRACE: an upload never submitted, a scene of released jobs only, frames of released
   jobs, frames replaced by a re-render. A blob any live or retained job uses (its scene, any file of its tree,
   any frame, any check's crop or frame under test) is never collected, however old.

The rows go first (one transaction per batch), then the files: a crash in between leaves a file without a row,
which nothing can reach, never a row without its file.

On PostgreSQL with several coordinators, a submission naming an old unused blob at the very moment the collector
deletes it can lose the race (its scene is protected by a foreign key, an asset file is not): the client uploads
what is missing right before it submits, and a fresh upload is never collected.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field

from flask import Flask, current_app
from sqlalchemy import delete, exists, select, update

from . import events
from .db import db
from .models import Blob, BlobUpload, Check, Frame, Job, now
from .states import CheckState, JobState
from .storage_access import storage

# The empty blob: nobody can upload it (an empty upload is refused), so it stands for a released job's scene.
PLACEHOLDER = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
# Blobs looked at per transaction: short transactions, and a bounded IN list.
BATCH = 500
OPEN_CHECKS = CheckState.OPEN
FILES_COLLECTED = "job_files_collected"


@dataclass
class Collected:
    jobs: list[int] = field(default_factory=list)  # released this pass
    blobs: list[str] = field(default_factory=list)  # deleted this pass
    bytes: int = 0


def collect(at: float | None = None) -> Collected:
    """One pass of both steps. Commits."""
    at = now() if at is None else at
    done = Collected(jobs=release_finished_jobs(at))
    _collect_blobs(at, done)
    storage().sweep_staged()  # direct uploads (object stores) handed out but never confirmed
    return done


def release_finished_jobs(at: float) -> list[int]:
    """Release every finished job past its retention with no open check; returns their ids. Commits."""
    cutoff = at - float(current_app.config["FRAMEHIVE_JOB_RETENTION"])
    open_check = exists().where(Check.job_id == Job.id, Check.state.in_(OPEN_CHECKS))
    due = select(Job).where(Job.state.in_(JobState.FINAL), Job.finished_at < cutoff,
                            Job.files_collected_at.is_(None), ~open_check)
    released = []
    for job in db.session.execute(due).scalars().all():
        _ensure_placeholder()
        db.session.execute(update(Frame).where(Frame.job_id == job.id).values(blob_sha256=None))
        db.session.execute(update(Check).where(Check.job_id == job.id).values(result_sha256=None,
                                                                              renderer_sha256=None))
        job.scene_sha256, job.files_collected_at = PLACEHOLDER, at
        events.record(FILES_COLLECTED, f"job {job.id} ({job.name}): its files were deleted, "
                                       "the retention period after it ended is over", job=job)
        db.session.commit()
        released.append(job.id)
    return released


def _ensure_placeholder() -> None:
    if db.session.get(Blob, PLACEHOLDER) is None:
        storage().put(PLACEHOLDER, io.BytesIO(b""), 0)
        db.session.add(Blob(sha256=PLACEHOLDER, size=0))
        db.session.flush()


def _collect_blobs(at: float, done: Collected) -> None:
    """Delete the unused blobs past their grace period, a batch at a time, in sha256 order. Commits."""
    cutoff = at - float(current_app.config["FRAMEHIVE_BLOB_GRACE"])
    fresh = exists().where(BlobUpload.sha256 == Blob.sha256, BlobUpload.uploaded_at >= cutoff)
    after = ""
    while True:
        batch = db.session.execute(select(Blob.sha256, Blob.size).where(
            Blob.sha256 > after, Blob.sha256 != PLACEHOLDER, Blob.created_at < cutoff, ~fresh)
            .order_by(Blob.sha256).limit(BATCH)).all()
        if not batch:
            db.session.commit()
            return
        after = batch[-1][0]
        sizes = dict(batch)
        # In the batch's own transaction (on SQLite a writer's: no submission can slip in between).
        doomed = sorted(set(sizes) - _in_use(set(sizes)) - _tree_files())
        if doomed:
            db.session.execute(delete(BlobUpload).where(BlobUpload.sha256.in_(doomed)))
            db.session.execute(delete(Blob).where(Blob.sha256.in_(doomed)))
        db.session.commit()
        for sha in doomed:  # the rows are gone: nothing can reach these files any more
            storage().delete(sha)
        done.blobs += doomed
        done.bytes += sum(sizes[sha] for sha in doomed)


def _in_use(shas: set[str]) -> set[str]:
    """Those of ``shas`` that a row points at: a job's scene, a frame, a check's crop or frame under test (a
    released job's rows point at none of them any more)."""
    used: set[str] = set()
    for column in (Job.scene_sha256, Frame.blob_sha256, Check.result_sha256, Check.renderer_sha256):
        used.update(sha for sha in db.session.execute(select(column).where(column.in_(shas)).distinct()).scalars()
                    if sha is not None)
    return used


def _tree_files() -> set[str]:
    """Every file (besides the .blend) of the scene trees of unreleased jobs: a JSON list, not a column to join."""
    files: set[str] = set()
    for assets in db.session.execute(select(Job.assets).where(Job.files_collected_at.is_(None))).scalars():
        files |= {asset["sha256"] for asset in assets or () if isinstance(asset, dict) and "sha256" in asset}
    return files


class Collector:
    """The background thread: a pass every FRAMEHIVE_COLLECT_INTERVAL seconds."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="framehive-collector", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sweep(self) -> Collected:
        with self.app.app_context():
            try:
                done = collect()
                if done.jobs or done.blobs:
                    self.app.logger.info("collector: released %d finished job(s), deleted %d blob(s) (%d bytes)",
                                         len(done.jobs), len(done.blobs), done.bytes)
                return done
            finally:
                db.session.remove()

    def _run(self) -> None:
        interval = float(self.app.config["FRAMEHIVE_COLLECT_INTERVAL"])
        while not self._stop.wait(interval):
            try:
                self.sweep()
            except Exception:  # keep collecting whatever one pass hit; the log says what
                self.app.logger.exception("collector pass failed")


def init_app(app: Flask) -> None:
    collector = Collector(app)
    app.extensions["framehive_collector"] = collector
    if app.config["FRAMEHIVE_START_REAPER"] and app.config["FRAMEHIVE_START_COLLECTOR"]:
        collector.start()

