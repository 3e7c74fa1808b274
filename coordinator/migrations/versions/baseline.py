"""Baseline: the schema of the last coordinator before migrations (its models.py), frozen here.

A fresh database gets every table. A database that coordinator (or an older one) made gets the tables it lacks and
the columns its tables lack (pre_alembic.py), then is stamped. Later revisions change the schema from here on; this
file is never edited, whatever models.py becomes.

Revision ID: baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from framehive.coordinator.migrations import pre_alembic

revision = "baseline"
down_revision = None
branch_labels = None
depends_on = None


def tables() -> sa.MetaData:
    """The baseline's tables, as models.py declared them (constant defaults kept: pre_alembic.py adds columns with
    them; defaults computed in Python do not touch the schema)."""
    metadata = sa.MetaData()
    sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=120), nullable=False, unique=True),
        sa.Column("trusted", sa.Boolean(), nullable=False, default=False),
        sa.Column("claims_rejected", sa.Integer(), nullable=False, default=0),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("suspended", sa.Boolean(), nullable=False, default=False),
    )

    sa.Table(
        "api_token",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
    )

    sa.Table(
        "blob",
        metadata,
        sa.Column("sha256", sa.String(length=64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("uploader_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("info", sa.JSON(), nullable=True),
    )

    sa.Table(
        "blob_upload",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=False, index=True),
        sa.Column("sha256", sa.String(length=64), sa.ForeignKey("blob.sha256"), nullable=False, index=True),
        sa.Column("uploaded_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("account_id", "sha256"),
    )

    sa.Table(
        "dashboard_session",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("token_id", sa.Integer(), sa.ForeignKey("api_token.id"), nullable=False, index=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False, index=True),
    )

    sa.Table(
        "job",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False, default=""),
        sa.Column("scene_sha256", sa.String(length=64), sa.ForeignKey("blob.sha256"), nullable=False),
        sa.Column("scene_path", sa.Text(), nullable=False, default="scene.blend"),
        sa.Column("assets", sa.JSON(), nullable=False),
        sa.Column("frames_spec", sa.Text(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False, default="queued", index=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("resolution_x", sa.Integer(), nullable=False),
        sa.Column("resolution_y", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("waiting", sa.Text(), nullable=True),
        sa.Column("policy", sa.String(length=16), nullable=False, default="adaptive"),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("files_collected_at", sa.Float(), nullable=True),
        sa.Column("scene_blender", sa.Integer(), nullable=True),
        sa.Column("blender_pin", sa.String(length=40), nullable=True),
        sa.Column("max_workers", sa.Integer(), nullable=True),
        sa.Column("device_kind", sa.String(length=8), nullable=True),
    )

    sa.Table(
        "worker",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False, default=False),
        sa.Column("blender_version", sa.String(length=40), nullable=False, default=""),
        sa.Column("device", sa.String(length=16), nullable=False, default="CPU"),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=False, default=0),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("connected_at", sa.Float(), nullable=True),
        sa.Column("last_seen", sa.Float(), nullable=True),
        sa.Column("trust", sa.Integer(), nullable=False, default=0),
        sa.Column("checks_passed", sa.Integer(), nullable=False, default=0),
        sa.Column("checks_failed", sa.Integer(), nullable=False, default=0),
        sa.Column("times_caught", sa.Integer(), nullable=False, default=0),
        sa.Column("token_id", sa.Integer(), sa.ForeignKey("api_token.id"), nullable=True, index=True),
        sa.Column("suspended", sa.Boolean(), nullable=False, default=False),
        sa.Column("pause_reason", sa.String(length=200), nullable=True),
        sa.Column("confinement", sa.JSON(), nullable=True),
        sa.UniqueConstraint("account_id", "name"),
    )

    sa.Table(
        "account_block",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False, index=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=False, index=True),
        sa.Column("reason", sa.String(length=16), nullable=False, default="failures"),
        sa.Column("created_at", sa.Float(), nullable=False, index=True),
        sa.UniqueConstraint("job_id", "account_id"),
    )

    sa.Table(
        "claim",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False, index=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=False),
        sa.Column("frames_spec", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False, default="open"),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("decided_at", sa.Float(), nullable=True),
    )

    sa.Table(
        "event",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", sa.Float(), nullable=False, index=True),
        sa.Column("kind", sa.String(length=32), nullable=False, index=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=True, index=True),
        sa.Column("worker_id", sa.Integer(), sa.ForeignKey("worker.id"), nullable=True, index=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=True, index=True),
        sa.Column("actor", sa.String(length=120), nullable=True),
    )

    sa.Table(
        "job_block",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False, index=True),
        sa.Column("worker_id", sa.Integer(), sa.ForeignKey("worker.id"), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("job_id", "worker_id"),
    )

    sa.Table(
        "task",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False, index=True),
        sa.Column("frames_spec", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False, default="queued", index=True),
        sa.Column("attempt", sa.Integer(), nullable=False, default=0),
        sa.Column("failures", sa.Integer(), nullable=False, default=0),
        sa.Column("worker_id", sa.Integer(), sa.ForeignKey("worker.id"), nullable=True),
        sa.Column("lease_expires", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )

    sa.Table(
        "frame",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False, index=True),
        sa.Column("task_id", sa.Integer(), sa.ForeignKey("task.id"), nullable=False, index=True),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False, default="queued"),
        sa.Column("blob_sha256", sa.String(length=64), sa.ForeignKey("blob.sha256"), nullable=True),
        sa.Column("worker_id", sa.Integer(), sa.ForeignKey("worker.id"), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("rendered_at", sa.Float(), nullable=True),
        sa.Column("verified_at", sa.Float(), nullable=True, index=True),
        sa.Column("tile_hashes", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("tile_key", sa.String(length=64), nullable=True, index=True),
        sa.Column("copy_band_0", sa.Integer(), nullable=True),
        sa.Column("copy_band_1", sa.Integer(), nullable=True),
        sa.Column("copy_band_2", sa.Integer(), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("verified_by", sa.String(length=16), nullable=True),
        sa.UniqueConstraint("job_id", "number"),
        sa.Index("ix_frame_job_copy_band_1", "job_id", "copy_band_1"),
        sa.Index("ix_frame_job_copy_band_2", "job_id", "copy_band_2"),
        sa.Index("ix_frame_job_copy_band_0", "job_id", "copy_band_0", "tile_key"),
    )

    sa.Table(
        "task_failure",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task_id", sa.Integer(), sa.ForeignKey("task.id"), nullable=False, index=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False, index=True),
        sa.Column("worker_id", sa.Integer(), sa.ForeignKey("worker.id"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=False, default=""),
        sa.Column("log_tail", sa.Text(), nullable=False, default=""),
        sa.Column("created_at", sa.Float(), nullable=False),
    )

    sa.Table(
        "verification_key",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task_id", sa.Integer(), sa.ForeignKey("task.id"), nullable=False, index=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False, index=True),
        sa.Column("frame", sa.Integer(), nullable=False),
        sa.Column("region", sa.JSON(), nullable=False),
        sa.Column("draw", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False, default="region"),
        sa.Column("state", sa.String(length=16), nullable=False, default="sealed"),
        sa.Column("created_at", sa.Float(), nullable=False),
    )

    sa.Table(
        "check",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False, index=True),
        sa.Column("task_id", sa.Integer(), sa.ForeignKey("task.id"), nullable=True),
        sa.Column("key_id", sa.Integer(), sa.ForeignKey("verification_key.id"), nullable=True),
        sa.Column("frame_id", sa.Integer(), sa.ForeignKey("frame.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("region", sa.JSON(), nullable=False),
        sa.Column("render_rect", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False, default="queued", index=True),
        sa.Column("attempt", sa.Integer(), nullable=False, default=0),
        sa.Column("verifier_id", sa.Integer(), sa.ForeignKey("worker.id"), nullable=True),
        sa.Column("lease_expires", sa.Float(), nullable=True),
        sa.Column("handle", sa.String(length=64), nullable=True, index=True),
        sa.Column("excluded_accounts", sa.JSON(), nullable=False),
        sa.Column("renderer_id", sa.Integer(), sa.ForeignKey("worker.id"), nullable=True),
        sa.Column("renderer_sha256", sa.String(length=64), nullable=True),
        sa.Column("result_sha256", sa.String(length=64), sa.ForeignKey("blob.sha256"), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("check.id"), nullable=True),
        sa.Column("claim_id", sa.Integer(), sa.ForeignKey("claim.id"), nullable=True),
        sa.Column("reexamined", sa.Boolean(), nullable=False, default=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("decided_at", sa.Float(), nullable=True),
    )

    sa.Table(
        "ledger_entry",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("from_book", sa.String(length=40), nullable=False, index=True),
        sa.Column("to_book", sa.String(length=40), nullable=False, index=True),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("memo", sa.Text(), nullable=False, default=""),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=True, index=True),
        sa.Column("task_id", sa.Integer(), sa.ForeignKey("task.id"), nullable=True),
        sa.Column("check_id", sa.Integer(), sa.ForeignKey("check.id"), nullable=True),
        sa.Column("claim_id", sa.Integer(), sa.ForeignKey("claim.id"), nullable=True),
        sa.Column("worker_id", sa.Integer(), sa.ForeignKey("worker.id"), nullable=True, index=True),
        sa.Column("frame", sa.Integer(), nullable=True),
    )

    sa.Table(
        "limit_hit",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False, index=True),
        sa.Column("worker_id", sa.Integer(), sa.ForeignKey("worker.id"), nullable=False),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("task_id", sa.Integer(), sa.ForeignKey("task.id"), nullable=True),
        sa.Column("check_id", sa.Integer(), sa.ForeignKey("check.id"), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )

    return metadata


def upgrade() -> None:
    connection = op.get_bind()
    metadata = tables()
    metadata.create_all(connection, checkfirst=True)
    pre_alembic.add_missing_columns(connection, metadata)


def downgrade() -> None:
    raise NotImplementedError("the coordinator only upgrades")
