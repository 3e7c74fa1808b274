"""The database schema at start: Alembic's revisions (coordinator/migrations/) bring the database to this
coordinator's head, and a database at a revision this coordinator does not know (made by a newer one) is refused.

A fresh database and one made before migrations existed go through the baseline revision (it makes what is
missing; migrations/pre_alembic.py). Several coordinators sharing one PostgreSQL may start at once: the upgrade
runs under a PostgreSQL advisory lock, so one migrates and the others then find the database at head. On SQLite
the upgrade is one BEGIN IMMEDIATE transaction (db.configure_engine), which serialises starts the same way.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from .migrations import LOCATION, pre_alembic

log = logging.getLogger(__name__)

#: The PostgreSQL advisory lock key held while one coordinator migrates (an arbitrary constant: "FHIV").
ADVISORY_LOCK_KEY = 0x46484956


class SchemaError(RuntimeError):
    """The database cannot be brought to this coordinator's schema; the message is one line for the admin."""


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the coordinator's migrations, running on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(LOCATION))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts(location: Path) -> ScriptDirectory:
    """The revisions, read once per process (each app start would otherwise load them again)."""
    return ScriptDirectory(str(location))


def head() -> str:
    """The newest revision this coordinator knows."""
    heads = _scripts(LOCATION).get_heads()
    if len(heads) != 1:
        raise SchemaError(f"coordinator/migrations has {len(heads)} heads ({', '.join(sorted(heads))}): merge them")
    return heads[0]


def current(connection: Connection) -> tuple[str, ...]:
    """The revisions the database is stamped with (none for a fresh database or one made before migrations)."""
    return MigrationContext.configure(connection).get_current_heads()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to head; returns (its revision before, head). SchemaError if the database is newer than
    this coordinator or cannot be migrated."""
    target = head()
    scripts = _scripts(LOCATION)
    known = {script.revision for script in scripts.walk_revisions()}
    with engine.connect() as connection, _exclusive(connection), connection.begin():
        before = current(connection)
        unknown = [revision for revision in before if revision not in known]
        if unknown:
            raise SchemaError(f"the database is at revision {', '.join(unknown)}, which this coordinator (schema "
                              f"revision {target}) does not know: it was made by a newer coordinator; run that "
                              "one, or restore a backup from before it")
        was = before[0] if before else None
        if was != target:
            try:
                _run_to_head(scripts, connection)
            except pre_alembic.MissingColumnError as error:
                raise SchemaError(str(error)) from error
            log.log(logging.WARNING if was else logging.INFO, "database schema upgraded from revision %s to %s",
                    was or "(none)", target)
    return was, target


def _run_to_head(scripts: ScriptDirectory, connection: Connection) -> None:
    """What ``alembic upgrade head`` does, with the revisions already read."""

    def steps(revision: Any, _context: MigrationContext) -> Any:
        return scripts._upgrade_revs("head", revision)

    with EnvironmentContext(alembic_config(connection), scripts, fn=steps, destination_rev="head"):
        scripts.run_env()


@contextmanager
def _exclusive(connection: Connection) -> Iterator[None]:
    """Hold the migration lock on PostgreSQL for the block (a session lock: it outlives the transactions in it)."""
    if connection.dialect.name != "postgresql":
        yield
        return
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    connection.commit()
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
        connection.commit()
