"""Additive schema upgrades: columns the models have and an existing database lacks are added at start.

``create_all`` creates missing tables but never touches an existing one, so a coordinator upgraded in place
would fail on the first query that names a new column. Framehive's schema only ever grows by columns that
are nullable or have a constant default, and those can be added with ``ALTER TABLE … ADD COLUMN`` on SQLite
and PostgreSQL alike (existing rows get the default). Anything else (a renamed or retyped column, a new
NOT NULL column without a constant default) needs a hand-written migration (so do foreign-key constraints:
an added column gets its type, default and index, not its REFERENCES clause), and the coordinator refuses to
start with a message that says which column, rather than failing later on some request.

Several coordinators sharing one PostgreSQL may start at once: each ``ADD COLUMN`` runs in its own
transaction and a column that another coordinator added meanwhile is not an error.
"""

from __future__ import annotations

import logging

from sqlalchemy import Column, MetaData, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.schema import ScalarElementColumnDefault

log = logging.getLogger(__name__)


class SchemaError(RuntimeError):
    """The database needs a migration this module cannot do."""


def upgrade(engine: Engine, metadata: MetaData) -> list[str]:
    """Add every missing column of every existing table; returns ``table.column`` for each added."""
    added = []
    inspector = inspect(engine)
    existing_tables = set(inspector.get_table_names())
    for table in metadata.sorted_tables:
        if table.name not in existing_tables:
            continue  # create_all makes it whole
        present = {c["name"] for c in inspector.get_columns(table.name)}
        new = [column for column in table.columns if column.name not in present]
        for column in new:
            _add(engine, table.name, column)
            added.append(f"{table.name}.{column.name}")
        for index in table.indexes:
            if any(column.name in index.columns for column in new):
                index.create(engine, checkfirst=True)
    for name in added:
        log.warning("database upgraded: added column %s", name)
    return added


def _add(engine: Engine, table: str, column: Column) -> None:
    preparer = engine.dialect.identifier_preparer
    ddl = f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(column.name)} " \
          f"{column.type.compile(dialect=engine.dialect)}"
    default = _constant_default(column)
    if default is not None:
        ddl += f" DEFAULT {default} NOT NULL" if not column.nullable else f" DEFAULT {default}"
    elif not column.nullable:
        raise SchemaError(f"column {table}.{column.name} is NOT NULL without a constant default: the database "
                          "needs a migration by hand (see coordinator/schema.py)")
    try:
        with engine.begin() as connection:
            connection.execute(text(ddl))
    except DBAPIError as error:
        if column.name in {c["name"] for c in inspect(engine).get_columns(table)}:
            return  # another coordinator added it first
        raise SchemaError(f"could not add column {table}.{column.name}: {error.orig}") from error


def _constant_default(column: Column) -> str | None:
    """The column's default as an SQL literal, if it is a constant (a string, number or boolean)."""
    default = column.default
    if not isinstance(default, ScalarElementColumnDefault):
        return None
    value = default.arg
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return None
