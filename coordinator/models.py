"""Database models. Times are UNIX seconds (floats): portable across SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from protocol import frameranges

from .db import db
from .states import FrameState, JobState, TaskState


def now() -> float:
    return time.time()


class Account(db.Model):
    """Owner of tokens, jobs, workers (and later points)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class ApiToken(db.Model):
    """A bearer token; only the sha256 of the secret is stored."""

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    kind: Mapped[str] = mapped_column(String(16))  # user | worker | admin
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    account: Mapped[Account] = relationship()


class Worker(db.Model):
    """A worker agent, identified by its owner's account and its name."""

    __table_args__ = (UniqueConstraint("account_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    name: Mapped[str] = mapped_column(String(120))
    online: Mapped[bool] = mapped_column(default=False)
    blender_version: Mapped[str] = mapped_column(String(40), default="")
    device: Mapped[str] = mapped_column(String(16), default="CPU")
    devices: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    threads: Mapped[int] = mapped_column(Integer, default=0)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    connected_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)

    account: Mapped[Account] = relationship()


class Blob(db.Model):
    """A content-addressed file (scene or frame) in blob storage."""

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    uploader_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    # What the coordinator learned by parsing the file (a scene's frame range and resolution), cached.
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Job(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255), default="")
    scene_sha256: Mapped[str] = mapped_column(ForeignKey("blob.sha256"))
    frames_spec: Mapped[str] = mapped_column(Text)
    chunk: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED, index=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    resolution_x: Mapped[int] = mapped_column(Integer)
    resolution_y: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    account: Mapped[Account] = relationship()
    tasks: Mapped[list[Task]] = relationship(back_populates="job", order_by="Task.id")
    frames: Mapped[list[Frame]] = relationship(back_populates="job", order_by="Frame.number")


class Task(db.Model):
    """A chunk of a job's frames, leased to one worker at a time."""

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    frames_spec: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=TaskState.QUEUED, index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # bumped on every lease
    failures: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id"), nullable=True)
    lease_expires: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now)

    job: Mapped[Job] = relationship(back_populates="tasks")
    worker: Mapped[Worker | None] = relationship()

    @property
    def frame_numbers(self) -> list[int]:
        return frameranges.parse(self.frames_spec)


class Frame(db.Model):
    __table_args__ = (UniqueConstraint("job_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=FrameState.QUEUED)
    blob_sha256: Mapped[str | None] = mapped_column(ForeignKey("blob.sha256"), nullable=True)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id"), nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rendered_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    job: Mapped[Job] = relationship(back_populates="frames")
    worker: Mapped[Worker | None] = relationship()


class TaskFailure(db.Model):
    """One failed attempt: the failure list behind retries, blocklists and the log tail shown to users."""

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id"), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))  # render_failed | lease_lost | bad_result
    error: Mapped[str] = mapped_column(Text, default="")
    log_tail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float, default=now)


class JobBlock(db.Model):
    """Blocklist entry: this worker gets no more tasks of this job."""

    __table_args__ = (UniqueConstraint("job_id", "worker_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id"))
    created_at: Mapped[float] = mapped_column(Float, default=now)
