"""Database models. Times are UNIX seconds (floats): portable across SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from framehive.protocol import frameranges
from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .db import Model
from .states import CheckState, ClaimState, FrameState, JobState, KeyState, TaskState


def now() -> float:
    return time.time()


class Account(Model):
    """Owner of tokens, jobs, workers (and later points)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # Trusted accounts run the network's own nodes: their frames are not sampled for checks, and they
    # may verify anything (arbitration, claims). Set by an admin only.
    trusted: Mapped[bool] = mapped_column(default=False)
    claims_rejected: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    # Its agents failed other artists' jobs again and again (failure_accounting.py): every agent it has is
    # suspended, and every agent it signs on later is born suspended, until an admin unsuspends one of them.
    suspended: Mapped[bool] = mapped_column(default=False)


class ApiToken(Model):
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


class Worker(Model):
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
    # Adaptive trust (verification/trust.py): consecutive passed checks since the last failure.
    trust: Mapped[int] = mapped_column(Integer, default=0)
    checks_passed: Mapped[int] = mapped_column(Integer, default=0)
    checks_failed: Mapped[int] = mapped_column(Integer, default=0)
    times_caught: Mapped[int] = mapped_column(Integer, default=0)
    # The worker token of its latest connection: agents online and names per token are limited (worker_channel).
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_token.id"), nullable=True, index=True)
    suspended: Mapped[bool] = mapped_column(default=False)
    # Why its owner paused it (by hand or by its schedule: the agent's status message); None while it takes work.
    pause_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)  # messages.MAX_STATUS_REASON
    # What confines its renders, as its latest hello said (messages.Hello.confinement): its owner's word, shown on
    # the dashboard; None when the agent did not say. Nullable: added to existing databases (schema.py).
    confinement: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    account: Mapped[Account] = relationship()

    @property
    def device_class(self) -> str:
        """Workers of one class (same Blender, same device kind) render bit-identical pixels."""
        kind = "CPU" if self.device == "CPU" else f"GPU-{self.device}"
        return f"{self.blender_version}/{kind}"


class Blob(Model):
    """A content-addressed file (scene or frame) in blob storage."""

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)  # scenes may be 2 GiB and more: past 32 bits
    uploader_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    # What the coordinator learned by parsing the file (a scene's frame range and resolution), cached.
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class BlobUpload(Model):
    """An account uploaded this blob (through PUT /blobs): what its storage quota counts (quotas.py), and when it
    last sent it, which the collector's grace period runs from (blob_collection.py). Deleted with the blob."""

    __table_args__ = (UniqueConstraint("account_id", "sha256"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("blob.sha256"), index=True)
    uploaded_at: Mapped[float] = mapped_column(Float, default=now)


class Job(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255), default="")
    scene_sha256: Mapped[str] = mapped_column(ForeignKey("blob.sha256"))
    # The scene as a folder tree: the main .blend's relative path in it, and every other file of the tree as
    # {"path", "sha256", "size"} (sorted by path; blobs are immutable, so the sizes never go stale).
    scene_path: Mapped[str] = mapped_column(Text, default="scene.blend")
    assets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    frames_spec: Mapped[str] = mapped_column(Text)
    chunk: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED, index=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    resolution_x: Mapped[int] = mapped_column(Integer)
    resolution_y: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Why a live job's queued tasks go to nobody (every online agent is blocklisted for it), for its artist to
    # read; None while some online agent may take them (set and cleared by the reaper).
    waiting: Mapped[str | None] = mapped_column(Text, nullable=True)
    policy: Mapped[str] = mapped_column(String(16), default="adaptive")  # adaptive | circle | full
    created_at: Mapped[float] = mapped_column(Float, default=now)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # When the collector released a finished job's files (its scene tree, frames and check crops) after the
    # retention period (blob_collection.py); None while they are kept. Nullable: added to existing databases.
    files_collected_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # What a worker needs to be given the job (coordinator/capabilities.py); all nullable (no requirement). The
    # Blender that saved the scene, as the .blend's header says (500 for 5.0: read by the coordinator's parser, never
    # taken from the artist): older agents are not given it.
    scene_blender: Mapped[int | None] = mapped_column(Integer, nullable=True)
    blender_pin: Mapped[str | None] = mapped_column(String(40), nullable=True)  # "5.0" or "5.0.1": exactly that
    max_workers: Mapped[int | None] = mapped_column(Integer, nullable=True)  # distinct agents rendering at once
    device_kind: Mapped[str | None] = mapped_column(String(8), nullable=True)  # "gpu" | "cpu"

    account: Mapped[Account] = relationship()
    tasks: Mapped[list[Task]] = relationship(back_populates="job", order_by="Task.id")
    frames: Mapped[list[Frame]] = relationship(back_populates="job", order_by="Frame.number")


class Task(Model):
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


class Frame(Model):
    __table_args__ = (UniqueConstraint("job_id", "number"),
                      Index("ix_frame_job_copy_band_0", "job_id", "copy_band_0", "tile_key"),
                      Index("ix_frame_job_copy_band_1", "job_id", "copy_band_1"),
                      Index("ix_frame_job_copy_band_2", "job_id", "copy_band_2"))
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=FrameState.QUEUED)
    blob_sha256: Mapped[str | None] = mapped_column(ForeignKey("blob.sha256"), nullable=True)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id"), nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rendered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # When the frame last became verified (stamped by transitions.move_frame whatever the path; None while it is
    # not): the network's throughput (stats.py). Nullable: frames of a database older than the column have none
    # and count as verified before any window.
    verified_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    # Tier 0: 4x4 grid of per-tile pHashes (hex), for the copy index and flags set at upload.
    tile_hashes: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    tile_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # sha256 of the hashes
    # The near-copy index (tier0.copy_bands, kept in step with tile_hashes by tier0): three bands of one tile's hash;
    # a frame within the copy distance of another shares at least one. None before tier 0 (and on frames hashed
    # before the columns existed: tier0 scans those as before).
    copy_band_0: Mapped[int | None] = mapped_column(Integer, nullable=True)
    copy_band_1: Mapped[int | None] = mapped_column(Integer, nullable=True)
    copy_band_2: Mapped[int | None] = mapped_column(Integer, nullable=True)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # How the frame was accepted: "check" (a verifier re-rendered a region) or "trust" (not sampled).
    verified_by: Mapped[str | None] = mapped_column(String(16), nullable=True)

    job: Mapped[Job] = relationship(back_populates="frames")
    worker: Mapped[Worker | None] = relationship()


class TaskFailure(Model):
    """One failed attempt: the failure list behind retries, blocklists and the log tail shown to users."""

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id"), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))  # render_failed | lease_lost | bad_result | limit
    error: Mapped[str] = mapped_column(Text, default="")
    log_tail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float, default=now)


class JobBlock(Model):
    """Blocklist entry: this worker gets no more tasks of this job."""

    __table_args__ = (UniqueConstraint("job_id", "worker_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id"))
    created_at: Mapped[float] = mapped_column(Float, default=now)


class AccountBlock(Model):
    """Blocklist entry of a whole account: none of its agents (those it makes later too) gets this job's tasks.

    ``reason``: ``failures`` (its agents failed the job repeatedly: counts against it), ``limits`` (they hit
    their resource limits on it: its machines cannot render this scene, no blame) or ``refused`` (an agent refused
    the scene as unsafe and the coordinator's own check does not agree: counts against it; failure_accounting).
    """

    __table_args__ = (UniqueConstraint("job_id", "account_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    reason: Mapped[str] = mapped_column(String(16), default="failures")
    created_at: Mapped[float] = mapped_column(Float, default=now, index=True)


class LimitHit(Model):
    """An agent reported that a task or check of this job exceeded one of its limits (memory, frame_time,
    output_size): when agents of two accounts did, the scene exceeds the workers' limits and the job fails."""

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    kind: Mapped[str] = mapped_column(String(16))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id"), nullable=True)
    check_id: Mapped[int | None] = mapped_column(ForeignKey("check.id"), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class VerificationKey(Model):
    """A secret drawn at split time: which frame of a task is checked, where, and the dice for sampling.

    Never sent to the renderer. ``draw`` is compared with the renderer's check rate when the task's frames
    are committed: the key is used if ``draw < rate`` (adaptive trust decides how often, the key decides
    which frame and region, both fixed before anyone rendered anything). ``kind``: ``region`` (one per task,
    a 1/16 region, at the adaptive rate) or ``spot`` (one per frame, a small region, at the spot rate).
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id"), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    frame: Mapped[int] = mapped_column(Integer)
    region: Mapped[list[int]] = mapped_column(JSON)  # [x, y, w, h], pixels, top-left origin
    draw: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(8), default="region")  # region | spot
    state: Mapped[str] = mapped_column(String(16), default=KeyState.SEALED)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Check(Model):
    """One region re-render by a verifier, and the coordinator's verdict on it."""

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id"), nullable=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("verification_key.id"), nullable=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id"))
    kind: Mapped[str] = mapped_column(String(16))  # verify | spot | arbitration | ringer | audit | claim
    region: Mapped[list[int]] = mapped_column(JSON)  # what is compared
    render_rect: Mapped[list[int]] = mapped_column(JSON)  # what the verifier renders: region + margin
    state: Mapped[str] = mapped_column(String(16), default=CheckState.QUEUED, index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    verifier_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id"), nullable=True)
    lease_expires: Mapped[float | None] = mapped_column(Float, nullable=True)
    # What the verifier knows the check by (messages.Verify.handle): random, drawn anew on every lease, so the
    # verifier never sees the id or attempt, which would tell when (and so why) the check was made. None until
    # the first lease. Nullable: added to existing databases.
    handle: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # Accounts that must not verify this check (the renderer's, and for arbitration the first verifier's).
    excluded_accounts: Mapped[list[int]] = mapped_column(JSON, default=list)
    renderer_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id"), nullable=True)
    renderer_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the frame under test
    result_sha256: Mapped[str | None] = mapped_column(ForeignKey("blob.sha256"), nullable=True)
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)  # strict | cross
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)  # pass | fail
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("check.id"), nullable=True)  # arbitration/audit of
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claim.id"), nullable=True)
    # A pass on a frame whose renderer was later caught is compared again with the honest re-render.
    reexamined: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    frame: Mapped[Frame] = relationship()
    task: Mapped[Task | None] = relationship()
    verifier: Mapped[Worker | None] = relationship(foreign_keys=[verifier_id])
    renderer: Mapped[Worker | None] = relationship(foreign_keys=[renderer_id])


class Claim(Model):
    """An artist disputes delivered frames; trusted nodes re-render them whole and the coordinator decides."""

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    frames_spec: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=ClaimState.OPEN)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LedgerEntry(Model):
    """One movement of points between two books (double entry): ``amount`` leaves ``from_book`` and enters
    ``to_book``. Books: ``account:<id>``, ``escrow:<job id>``, ``network`` (stakes, pays ringers and late
    audits) and ``mint`` (the only source of new points: grants). Balances are sums over entries."""

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    from_book: Mapped[str] = mapped_column(String(40), index=True)
    to_book: Mapped[str] = mapped_column(String(40), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(24))
    memo: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"), nullable=True, index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id"), nullable=True)
    check_id: Mapped[int | None] = mapped_column(ForeignKey("check.id"), nullable=True)
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claim.id"), nullable=True)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id"), nullable=True, index=True)
    frame: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Event(Model):
    """Something that happened on the network, for people to read (the dashboard, ``GET /api/v1/events``).

    ``job``, ``worker`` and ``account`` say whom it concerns (an account sees the events of its jobs, of its
    workers and of itself); ``actor`` names who did it when a person did (an admin action). Written in the
    transaction of the change it describes (coordinator/events.py).
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, default=now, index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    message: Mapped[str] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"), nullable=True, index=True)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id"), nullable=True, index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), nullable=True, index=True)
    actor: Mapped[str | None] = mapped_column(String(120), nullable=True)

    job: Mapped[Job | None] = relationship()
    worker: Mapped[Worker | None] = relationship()
    account: Mapped[Account | None] = relationship()


class DashboardSession(Model):
    """A signed-in dashboard session (coordinator/dashboard/sessions.py). The cookie holds a random key; only
    its sha256 is stored. Signing out deletes the row, so a copy of the cookie stops working at once."""

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_token.id"), index=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
