"""Alembic's environment: runs the revisions on the connection schema.py hands over (in its transaction, under its
lock). The alembic command uses this folder to write new revision files only, never to touch a database."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the coordinator's migrations run at its start (coordinator/schema.py), not from the alembic "
                       "command, which only writes new revision files here")
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
