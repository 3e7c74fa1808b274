"""Bringing a database made before migrations existed up to the baseline revision.

Before Alembic, the coordinator made its tables with ``create_all`` and, on an upgrade in place, added the columns
the models had gained (nullable or with a constant default, with ``ALTER TABLE … ADD COLUMN`` on SQLite and
PostgreSQL alike). Such a database holds every baseline table or some of them, each with the baseline's columns or
fewer. The baseline revision makes the missing tables and adds the missing columns here; a missing column that is
NOT NULL without a constant default cannot be added and stops the start (SchemaError, naming the column).
"""

from __future__ import annotations

import logging

from sqlalchemy import Column, MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.schema import ScalarElementColumnDefault

log = logging.getLogger(__name__)


class MissingColumnError(RuntimeError):
    """A column the baseline has and an old database lacks cannot be added by ALTER TABLE … ADD COLUMN."""


def add_missing_columns(connection: Connection, metadata: MetaData) -> list[str]:
    """Add every column of ``metadata`` that an existing table lacks; returns ``table.column`` for each added."""
    added = []
    inspector = inspect(connection)
    existing_tables = set(inspector.get_table_names())
    for table in metadata.sorted_tables:
        if table.name not in existing_tables:
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        new = [column for column in table.columns if column.name not in present]
        for column in new:
            connection.execute(text(_add_column_ddl(connection, table.name, column)))
            added.append(f"{table.name}.{column.name}")
        for index in table.indexes:
            if any(column.name in index.columns for column in new):
                index.create(connection, checkfirst=True)
    for name in added:
        log.warning("database upgraded: added column %s", name)
    return added


def _add_column_ddl(connection: Connection, table: str, column: Column) -> str:
    preparer = connection.dialect.identifier_preparer
    ddl = f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(column.name)} " \
          f"{column.type.compile(dialect=connection.dialect)}"
    default = _constant_default(column)
    if default is not None:
        return ddl + (f" DEFAULT {default}" if column.nullable else f" DEFAULT {default} NOT NULL")
    if not column.nullable:
        raise MissingColumnError(f"column {table}.{column.name} is NOT NULL without a constant default: the "
                                 "database needs a migration by hand (see coordinator/migrations/pre_alembic.py)")
    return ddl


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
