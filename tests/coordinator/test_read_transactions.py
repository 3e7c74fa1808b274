"""Read-only transactions on SQLite (issue 16): the token lookup of every authenticated request runs in
db.reading(), so it neither takes nor waits for SQLite's one write lock while another writer holds it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from framehive.coordinator.auth import require
from framehive.coordinator.db import db, reading

from tests.farm import wait_for

HOLD = 10.0  # how long the test may hold the write lock: far under the 15 s busy timeout


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: PostgreSQL has no database-wide write lock."""
    return f"sqlite:///{tmp_path / 'framehive.sqlite3'}"


def held_write_lock(database_url: str) -> sqlite3.Connection:
    """Another writer: a connection of its own in the middle of a write transaction."""
    other = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE account SET trusted = trusted")
    return other


def test_an_authenticated_request_is_not_held_up_by_a_writer(app, tokens, database_url):  # type: ignore[no-untyped-def]
    @app.get("/probe")
    @require("user")
    def probe() -> str:  # no database work of its own: only require's token lookup
        return "ok"

    other = held_write_lock(database_url)
    answers: list[int] = []
    caller = threading.Thread(target=lambda: answers.append(
        app.test_client().get("/probe", headers={"Authorization": f"Bearer {tokens['user']}"}).status_code))
    caller.start()
    try:
        wait_for(lambda: answers, HOLD, "the request to be answered while another connection holds the write lock")
    finally:
        other.rollback()
        other.close()
        caller.join()
    assert answers == [200]


def test_a_write_outside_reading_still_waits_for_the_lock(app, tokens, database_url):  # type: ignore[no-untyped-def]
    """reading() is the exception: an ordinary transaction still begins IMMEDIATE and queues for the lock."""
    other = held_write_lock(database_url)
    began = threading.Event()
    done = threading.Event()

    def write() -> None:
        with app.app_context():
            began.set()
            db.session.execute(db.text("SELECT 1"))  # BEGIN IMMEDIATE: waits here for the lock
            db.session.commit()
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert began.wait(HOLD)
        with app.app_context(), reading():  # meanwhile a reader goes through
            assert db.session.execute(db.text("SELECT count(*) FROM api_token")).scalar_one() == 4
            db.session.commit()
        assert not done.is_set(), "the ordinary transaction began while another writer held the lock"
    finally:
        other.rollback()
        other.close()
        writer.join()
    assert done.is_set()
