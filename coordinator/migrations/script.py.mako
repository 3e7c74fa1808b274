"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Created: ${create_date}
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass  # e.g. op.add_column(\"job\", sa.Column(\"priority\", sa.Integer(), nullable=True))"}


def downgrade() -> None:
    ${downgrades if downgrades else "raise NotImplementedError(\"the coordinator only upgrades\")"}
