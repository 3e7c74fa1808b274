"""The coordinator's database migrations (Alembic): ``versions/`` holds one revision per schema change, from
``baseline`` (the schema before migrations existed) on. schema.py runs them at start; a developer adds one with the
command in README.md's "Upgrading"."""

from __future__ import annotations

from pathlib import Path

#: The Alembic script directory (this folder): env.py, script.py.mako and versions/.
LOCATION = Path(__file__).resolve().parent
