"""Additive schema upgrades (coordinator/schema.py) on SQLite and a real PostgreSQL: a database made by an
older coordinator gains the columns the models added, its rows keep their data and get the defaults, and the
coordinator starts on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from framehive.coordinator import create_app, schema
from framehive.coordinator.db import db
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, inspect, text


def old_and_new(metadata_new: MetaData) -> tuple[MetaData, Table]:
    old = MetaData()
    Table("gadget", old, Column("id", Integer, primary_key=True), Column("name", String(20)))
    new = Table("gadget", metadata_new, Column("id", Integer, primary_key=True), Column("name", String(20)),
                Column("kind", String(8), default="region", nullable=False),
                Column("note", String(40), nullable=True, index=True),
                Column("count", Integer, default=3, nullable=False),
                Column("odd", String(8), default="it's", nullable=True))
    return old, new


def test_missing_columns_are_added_with_their_defaults_and_indexes(database_url: str) -> None:
    engine = create_engine(database_url)
    old, _ = old_and_new(MetaData())
    old.create_all(engine)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO gadget (id, name) VALUES (1, 'before')"))
    new_metadata = MetaData()
    old_and_new(new_metadata)
    assert sorted(schema.upgrade(engine, new_metadata)) == ["gadget.count", "gadget.kind", "gadget.note",
                                                            "gadget.odd"]
    with engine.connect() as connection:
        row = connection.execute(text("SELECT id, name, kind, note, count, odd FROM gadget")).one()
    assert tuple(row) == (1, "before", "region", None, 3, "it's")
    assert any(ix["column_names"] == ["note"] for ix in inspect(engine).get_indexes("gadget"))
    assert schema.upgrade(engine, new_metadata) == [], "a second start has nothing to add"
    engine.dispose()


def test_a_not_null_column_without_a_constant_default_stops_the_start(database_url: str) -> None:
    engine = create_engine(database_url)
    old, _ = old_and_new(MetaData())
    old.create_all(engine)
    new = MetaData()
    Table("gadget", new, Column("id", Integer, primary_key=True), Column("name", String(20)),
          Column("owner", Integer, nullable=False))
    with pytest.raises(schema.SchemaError, match="gadget.owner is NOT NULL without a constant default"):
        schema.upgrade(engine, new)
    assert "owner" not in {c["name"] for c in inspect(engine).get_columns("gadget")}
    engine.dispose()


def test_a_coordinator_starts_on_a_database_from_before_spot_keys(database_url: str, tmp_path: Path) -> None:
    config = {"TESTING": True, "FRAMEHIVE_START_REAPER": False, "SQLALCHEMY_DATABASE_URI": database_url}
    app = create_app(config, data_dir=tmp_path / "first")
    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("ALTER TABLE verification_key DROP COLUMN kind"))
        db.session.remove()
        db.engine.dispose()
    again = create_app(config, data_dir=tmp_path / "second")
    with again.app_context():
        assert "kind" in {c["name"] for c in inspect(db.engine).get_columns("verification_key")}
        db.session.remove()
        db.engine.dispose()
