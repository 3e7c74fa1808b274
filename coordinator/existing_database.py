"""Whether a coordinator database already exists, before anything would create it, and how to name it in output.

The token commands create nothing by mistake: a wrong --data-dir or --db would otherwise make a fresh database
and print a token that the running coordinator, on its own database, refuses.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

# A table every coordinator database has from its first start.
MARKER_TABLE = "api_token"


def display(url: str) -> str:
    """The URL with its password hidden (it goes to logs and terminals)."""
    return make_url(url).render_as_string(hide_password=True)


def exists(url: str) -> bool:
    """Whether ``url`` names a coordinator database: for SQLite, a file that exists (opening one creates it);
    elsewhere, a database we can reach that holds the coordinator's tables."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        return database not in ("", ":memory:") and Path(database).is_file()
    engine = create_engine(parsed)
    try:
        with engine.connect() as connection:
            return inspect(connection).has_table(MARKER_TABLE)
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()
