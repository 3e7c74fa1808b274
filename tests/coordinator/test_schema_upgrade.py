"""Schema migrations at start (coordinator/schema.py, coordinator/migrations/) on SQLite and a real PostgreSQL: a
fresh database gets head and matches the models; a database of an older schema (made before migrations, or one
revision behind) is upgraded with its rows kept; one made by a newer coordinator is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from framehive.coordinator import create_app, schema
from framehive.coordinator.db import configure_engine, db
from framehive.coordinator.migrations import pre_alembic
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, inspect, text
from sqlalchemy.engine import Engine

# Pairs of connections opening a fresh SQLite file at once: one pair in nine failed without the retry.
PAIRS = 200
CONFIG = {"TESTING": True, "FRAMEHIVE_START_REAPER": False, "FRAMEHIVE_START_COLLECTOR": False}


def engine_for(url: str) -> Engine:
    engine = create_engine(url)
    configure_engine(engine)
    return engine


def stamped(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as connection:
        return schema.current(connection)


def at_once(action: Callable[[Engine], object], engines: list[Engine], timeout: float) -> list[object]:
    """``action`` on every engine, each in its own thread, released together by a barrier: what each returned, or
    the exception it raised (in the order they finished)."""
    gate = threading.Barrier(len(engines))
    results: list[object] = []

    def run(engine: Engine) -> None:
        gate.wait()
        try:
            results.append(action(engine))
        except Exception as error:  # noqa: BLE001 — the test reports what each raised
            results.append(error)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results


def test_a_fresh_database_gets_head_and_matches_the_models(database_url: str) -> None:
    engine = engine_for(database_url)
    assert schema.upgrade(engine) == (None, schema.head())
    assert stamped(engine) == (schema.head(),)
    with engine.connect() as connection:
        # models.py and the revisions agree: a change to the models without a revision shows here
        assert compare_metadata(MigrationContext.configure(connection), db.metadata) == []
    assert schema.upgrade(engine) == (schema.head(), schema.head()), "a second start has nothing to do"
    engine.dispose()


def test_a_database_made_before_migrations_is_upgraded_at_start(database_url: str, tmp_path: Path) -> None:
    """Today's database without the alembic_version table, lacking a column added in place (verification_key.kind)
    and a whole table: the start adds both, keeps the rows, and stamps head."""
    config = {**CONFIG, "SQLALCHEMY_DATABASE_URI": database_url}
    app = create_app(config, data_dir=tmp_path / "first")
    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("ALTER TABLE verification_key DROP COLUMN kind"))
            connection.execute(text("DROP TABLE ledger_entry"))
            connection.execute(text("DROP TABLE alembic_version"))
            connection.execute(text("INSERT INTO account (id, name, trusted, claims_rejected, created_at, suspended) "
                                    "VALUES (7, 'kept', FALSE, 0, 1.0, FALSE)"))
        db.session.remove()
        db.engine.dispose()
    again = create_app(config, data_dir=tmp_path / "second")
    with again.app_context():
        inspector = inspect(db.engine)
        assert "kind" in {c["name"] for c in inspector.get_columns("verification_key")}
        assert inspector.has_table("ledger_entry")
        assert stamped(db.engine) == (schema.head(),)
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM account WHERE id = 7")).scalar_one() == "kept"
        db.session.remove()
        db.engine.dispose()


NEXT_REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = "test_next"
down_revision = "{down}"


def upgrade() -> None:
    op.add_column("account", sa.Column("nickname", sa.String(40), nullable=False, server_default="none"))
'''


@pytest.fixture
def next_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A copy of coordinator/migrations with one more revision after head, in use for the test."""
    location = tmp_path / "migrations"
    shutil.copytree(schema.LOCATION, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "test_next.py").write_text(NEXT_REVISION.format(down=schema.head()))
    monkeypatch.setattr(schema, "LOCATION", location)
    return "test_next"


def test_a_database_one_revision_behind_is_upgraded_at_start(database_url: str, tmp_path: Path,
                                                             next_revision: str) -> None:
    engine = engine_for(database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
    with pytest.MonkeyPatch.context() as before:
        before.setattr(schema, "LOCATION", Path(schema.__file__).parent / "migrations")
        previous = schema.upgrade(engine)[1]
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO account (id, name, trusted, claims_rejected, created_at, suspended) "
                                "VALUES (1, 'old', FALSE, 0, 1.0, FALSE)"))
    assert schema.upgrade(engine) == (previous, next_revision)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name, nickname FROM account")).one() == ("old", "none")
    engine.dispose()


def stamp_unknown(url: str) -> None:
    engine = engine_for(url)
    schema.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    engine.dispose()


def test_a_database_newer_than_the_coordinator_is_refused(database_url: str, tmp_path: Path) -> None:
    stamp_unknown(database_url)
    with pytest.raises(schema.SchemaError) as refused:
        create_app({**CONFIG, "SQLALCHEMY_DATABASE_URI": database_url}, data_dir=tmp_path)
    message = str(refused.value)
    assert "from_the_future" in message and f"revision {schema.head()}" in message and "\n" not in message
    engine = engine_for(database_url)
    assert stamped(engine) == ("from_the_future",), "the refused database is left as it was"
    engine.dispose()


def test_the_command_says_so_in_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'framehive.sqlite3'}"
    stamp_unknown(url)
    done = subprocess.run([str(Path(sys.executable).parent / "framehive-coordinator"), "token", "list", "--db", url,
                           "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("framehive-coordinator: error:")]
    assert len(errors) == 1 and "from_the_future" in errors[0] and schema.head() in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_the_production_server_refuses_it_in_one_line_too(tmp_path: Path) -> None:
    """gunicorn builds the app in its worker: a refusal there was the worker's traceback and exit status 3."""
    url = f"sqlite:///{tmp_path / 'framehive.sqlite3'}"
    stamp_unknown(url)
    done = subprocess.run([str(Path(sys.executable).parent / "framehive-coordinator"), "serve", "--server",
                           "gunicorn", "--port", "0", "--db", url, "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("framehive-coordinator: error:")]
    assert len(errors) == 1 and "from_the_future" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_two_coordinators_starting_at_once(database_url: str) -> None:
    """One migrates, the other then finds the database at head (without the advisory lock, two starts on
    PostgreSQL were still waiting for each other after the 120 s deadline)."""
    engines = [engine_for(database_url) for _ in range(2)]
    results = at_once(schema.upgrade, engines, 120)
    assert sorted(results, key=str) == sorted([(None, schema.head()), (schema.head(), schema.head())], key=str)
    assert stamped(engines[0]) == (schema.head(),)
    for engine in engines:
        engine.dispose()


def test_two_connections_opening_a_fresh_sqlite_file_at_once_both_open_it_in_wal(tmp_path: Path) -> None:
    """Switching a fresh file to WAL answered one of two connections "database is locked" at once, busy timeout or
    not (22 of 200 pairs before db._switch_to_wal; test_two_coordinators_starting_at_once failed so in CI)."""
    def journal_mode(engine: Engine) -> object:
        with engine.connect() as connection:
            return connection.exec_driver_sql("PRAGMA journal_mode").scalar()

    failures: list[object] = []
    for attempt in range(PAIRS):
        url = f"sqlite:///{tmp_path / f'fresh-{attempt}.sqlite3'}"
        engines = [engine_for(url) for _ in range(2)]
        failures += [mode for mode in at_once(journal_mode, engines, 60) if mode != "wal"]
        for engine in engines:
            engine.dispose()
    assert failures == []


def old_and_new(metadata_new: MetaData) -> tuple[MetaData, Table]:
    old = MetaData()
    Table("gadget", old, Column("id", Integer, primary_key=True), Column("name", String(20)))
    new = Table("gadget", metadata_new, Column("id", Integer, primary_key=True), Column("name", String(20)),
                Column("kind", String(8), default="region", nullable=False),
                Column("note", String(40), nullable=True, index=True),
                Column("count", Integer, default=3, nullable=False),
                Column("odd", String(8), default="it's", nullable=True))
    return old, new


def test_pre_migration_columns_are_added_with_their_defaults_and_indexes(database_url: str) -> None:
    engine = create_engine(database_url)
    old, _ = old_and_new(MetaData())
    old.create_all(engine)
    new_metadata = MetaData()
    old_and_new(new_metadata)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO gadget (id, name) VALUES (1, 'before')"))
        assert sorted(pre_alembic.add_missing_columns(connection, new_metadata)) == [
            "gadget.count", "gadget.kind", "gadget.note", "gadget.odd"]
    with engine.connect() as connection:
        row = connection.execute(text("SELECT id, name, kind, note, count, odd FROM gadget")).one()
    assert tuple(row) == (1, "before", "region", None, 3, "it's")
    assert any(ix["column_names"] == ["note"] for ix in inspect(engine).get_indexes("gadget"))
    with engine.begin() as connection:
        assert pre_alembic.add_missing_columns(connection, new_metadata) == [], "nothing left to add"
    engine.dispose()


def test_a_pre_migration_not_null_column_without_a_constant_default_stops_the_start(database_url: str) -> None:
    engine = create_engine(database_url)
    old, _ = old_and_new(MetaData())
    old.create_all(engine)
    new = MetaData()
    Table("gadget", new, Column("id", Integer, primary_key=True), Column("name", String(20)),
          Column("owner", Integer, nullable=False))
    with engine.begin() as connection, pytest.raises(pre_alembic.MissingColumnError,
                                                     match="gadget.owner is NOT NULL without a constant default"):
        pre_alembic.add_missing_columns(connection, new)
    assert "owner" not in {c["name"] for c in inspect(engine).get_columns("gadget")}
    engine.dispose()
