"""The SQLAlchemy handle and per-dialect connection setup."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

# The base class of the models (models.py). At run time it is db.Model, which Flask-SQLAlchemy builds from Base's
# bases, Base's namespace (its registry and metadata) and its own mixins (table names from class names, bind keys);
# mypy cannot take a base class from an instance attribute (python/mypy#8603), so it checks the models as subclasses
# of Base, the declarative base db.Model is made from.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model

# SQLite waits this long (ms) for another writer instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 15_000


#: The row lock taken before changing a row: FOR NO KEY UPDATE on PostgreSQL. It excludes other writers and lockers
#: of the row but not the KEY SHARE locks that foreign key checks take on it (a transaction inserting or updating a
#: row that references a job holds one on the job's row): FOR UPDATE conflicted with those, so two transactions
#: that each referenced a job and then locked it waited for each other ("deadlock detected", issue 16).
ROW_LOCK: dict[str, Any] = {"key_share": True}


def lock_row(model: Any, ident: int) -> None:
    """Hold the row of ``model`` with id ``ident`` until the transaction ends (db.ROW_LOCK; nothing on SQLite, whose
    BEGIN IMMEDIATE transactions are serial already). Unlike lock(), nothing is loaded into the session."""
    if db.engine.dialect.name != "sqlite":
        db.session.execute(select(model.id).where(model.id == ident).with_for_update(**ROW_LOCK))


def lock(instance: Any) -> None:
    """Reload ``instance`` from its row and hold that row until the transaction ends (FOR NO KEY UPDATE on
    PostgreSQL, where another coordinator may be changing it; SQLite's BEGIN IMMEDIATE transactions are serial
    already)."""
    db.session.refresh(instance, with_for_update=ROW_LOCK)


# Set by reading(): transactions begun meanwhile only read (see configure_engine).
_READ_ONLY: ContextVar[bool] = ContextVar("framehive_read_only", default=False)


@contextlib.contextmanager
def reading() -> Iterator[None]:
    """A block whose transactions only read, and end (commit or roll back) inside it: on SQLite they begin
    DEFERRED, so they neither take nor wait for the write lock (WAL: a reader sees the last commit while a writer
    works). A write inside would fail with "database is locked" when another writer holds the lock, not wait.
    Other databases are unchanged."""
    token = _READ_ONLY.set(True)
    try:
        yield
    finally:
        _READ_ONLY.reset(token)


def configure_engine(engine: Engine) -> None:
    """SQLite: WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE (BEGIN inside reading()).

    BEGIN IMMEDIATE takes the write lock when a transaction starts, so a read-then-write transaction never
    fails half-way with SQLITE_BUSY (the busy timeout does not help a deferred transaction that must upgrade).
    A transaction known to only read (reading()) needs no write lock, so it begins deferred: under load it
    otherwise queued behind every writer for SQLite's one write lock (issue 16's profile: 24 % of the samples).
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        # The busy timeout first: switching a fresh database to WAL needs its lock, and without a busy handler a
        # second process starting at once (gunicorn's workers, two coordinators) failed at once: database is locked.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN" if _READ_ONLY.get() else "BEGIN IMMEDIATE")


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """PRAGMA journal_mode=WAL, tried again while SQLite answers "database is locked", for as long as the busy
    timeout. Even with the busy handler set, two connections opening a fresh file at once saw that answer at
    once (one start in nine, measured with two threads; a CI run's two coordinators starting at once failed so)."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
