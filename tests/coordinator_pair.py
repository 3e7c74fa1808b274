"""Two real coordinator processes sharing one real PostgreSQL database and one blob store, with tokens minted in
that database: for the wake-up tests and benchmarks/wake.py. The processes inherit this process's environment
(set FRAMEHIVE_* settings there before :meth:`CoordinatorPair.start`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from framehive.coordinator import wakeups

from tests.farm import Farm
from tests.live import mint_tokens
from tests.postgres import PostgresServer


@dataclass
class CoordinatorPair:
    a: Farm
    b: Farm
    database_url: str
    tokens: dict[str, str]  # "user" (an artist), "worker" (a trusted GPU owner)

    @classmethod
    def start(cls, postgres: PostgresServer, root: Path) -> CoordinatorPair:
        url = postgres.create_database()
        args = ["--db", url, "--storage", f"file://{root / 'blobs'}"]
        a, b = Farm(root / "a", coordinator_args=args), Farm(root / "b", coordinator_args=args)
        try:
            a.start_coordinator()
            b.start_coordinator()
            tokens = mint_tokens(a, {"SQLALCHEMY_DATABASE_URI": url}, user=("user", "artist"),
                                 worker=("worker", "gpu-owner"))
        except BaseException:
            a.stop()
            b.stop()
            raise
        return cls(a, b, url, tokens)

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()

    @classmethod
    @contextlib.contextmanager
    def running(cls, postgres: PostgresServer, root: Path) -> Iterator[CoordinatorPair]:
        """A started pair for a fixture's body: both logs printed if the body fails, both processes stopped after."""
        pair = cls.start(postgres, root)
        try:
            yield pair
        except BaseException:
            print(pair.logs())
            raise
        finally:
            pair.stop()

    def logs(self) -> str:
        return self.a.logs() + "\n" + self.b.logs()

    def listeners(self) -> dict[int, str]:
        """The wake-up listeners' database sessions: backend pid -> the last statement each ran."""
        with psycopg.connect(wakeups.libpq_url(self.database_url), autocommit=True) as conn:
            rows = conn.execute("SELECT pid, query FROM pg_stat_activity WHERE application_name = %s",
                                (wakeups.APPLICATION_NAME,)).fetchall()
        return {pid: query for pid, query in rows}

    def listening(self) -> set[int]:
        """The listeners' sessions that have run LISTEN (it is their first statement: a fresh session shows none)."""
        return {pid for pid, query in self.listeners().items() if query}

    def kill_listeners(self) -> set[int]:
        """End every listener's session from the server's side (pg_terminate_backend); returns their pids."""
        pids = set(self.listeners())
        with psycopg.connect(wakeups.libpq_url(self.database_url), autocommit=True) as conn:
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return pids
