"""channel_upkeep does the worker channel's upkeep for every connection at once (issue 16): token re-checks,
last_seen and lease renewals.

Each connection's thread read its token every FRAMEHIVE_TOKEN_RECHECK_INTERVAL and wrote its last_seen every
FRAMEHIVE_SEEN_INTERVAL: a statement per agent and interval, 200 reads and 67 writes a second at 1,000 agents with no
work going on (benchmarks/fleet.py). These tests count the statements of one round over many connections, on a real
database; tests/coordinator/test_channel_upkeep.py drives the same rules through a real coordinator and agent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from framehive.coordinator import channel_upkeep, leases
from framehive.coordinator.auth import issue_token, revoke_token
from framehive.coordinator.db import db
from framehive.coordinator.dispatch import Connection, Work, dispatcher
from framehive.coordinator.models import ApiToken, Job, Task, Worker, now
from sqlalchemy import event, select

AGENTS = 30


@contextmanager
def counted() -> Iterator[list[str]]:
    statements: list[str] = []

    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0].upper())

    event.listen(db.engine, "before_cursor_execute", _count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", _count)


def connect_agents(count: int) -> list[Connection]:
    """``count`` agents, each of its own token, registered as connected (no socket: the upkeep sends nothing)."""
    connections = []
    for n in range(count):
        _secret, listing = issue_token("worker", f"agent-{n}", f"owner-{n}")
        worker = Worker(account_id=db.session.get_one(ApiToken, listing["id"]).account_id, name=f"w{n}",
                        online=True, last_seen=now() - 100)
        db.session.add(worker)
        db.session.commit()
        conn = Connection(worker_id=worker.id, name=worker.name, ws=None, token_id=listing["id"])
        dispatcher().register(conn)
        connections.append(conn)
    return connections


def test_one_read_rechecks_every_connected_token(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        connections = connect_agents(AGENTS)
        revoke_token(connections[3].token_id)
        expired = db.session.get_one(ApiToken, connections[7].token_id)
        expired.expires_at = now() - 1
        db.session.commit()
        upkeep = channel_upkeep.upkeep()
        with counted() as statements:
            upkeep.recheck_tokens(dispatcher().connections())
        assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == ["SELECT"]  # one per connection before
        assert {c.name for c in connections if c.token_lost} == {"w3", "w7"}


def test_one_write_covers_every_agent_heard_since_the_last(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        connections = connect_agents(AGENTS)
        before = {w.id: w.last_seen for w in db.session.execute(db.select(Worker)).scalars()}
        db.session.commit()
        for conn in connections[:10]:
            conn.heard = 1.0
        upkeep = channel_upkeep.upkeep()
        with counted() as statements:
            upkeep.write_seen(dispatcher().connections())
        assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == ["UPDATE"]  # ten before
        after = {w.id: w.last_seen for w in db.session.execute(db.select(Worker)).scalars()}
        moved = {c.name for c in connections if after[c.worker_id] != before[c.worker_id]}
        assert moved == {f"w{n}" for n in range(10)}
        with counted() as statements:  # nobody heard since: nothing written
            upkeep.write_seen(dispatcher().connections())
        assert statements == []
        connections[12].heard = 2.0
        with counted() as statements:
            upkeep.write_seen(dispatcher().connections())
        assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == ["UPDATE"]


def test_one_write_renews_the_leases_of_every_agent_that_is_heard(app, api, scene_sha) -> None:  # type: ignore[no-untyped-def]
    """Heartbeats for an agent's own lease write nothing (worker_channel); the upkeep renews the leases of the agents
    it hears (or whose message waits for a work slot), a third of a lease after they were given or renewed."""
    job = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-6", "chunk": 1}).get_json()
    with app.app_context():
        account_id = db.session.get_one(Job, job["id"]).account_id
        connections = []
        for n in range(6):
            worker = Worker(account_id=account_id, name=f"w{n}", online=True, blender_version="5.0.1")
            db.session.add(worker)
            db.session.commit()
            task = leases.claim_task(worker.id)
            assert task is not None
            conn = Connection(worker_id=worker.id, name=worker.name, ws=None, heard=time.monotonic(),
                              current=Work("task", task.id, task.attempt), lease_written=time.monotonic() - 11)
            dispatcher().register(conn)
            connections.append(conn)
        connections[4].heard = time.monotonic() - 31  # silent for a lease: its connection is about to be dropped
        connections[5].heard, connections[5].handling = time.monotonic() - 31, True  # its message waits for a slot
        connections[3].lease_written = time.monotonic()  # just given: not due
        lost = db.session.get_one(Task, connections[2].current.id)  # type: ignore[union-attr]
        lost.attempt += 1  # the lease changed meanwhile (taken back and given again): not this agent's any more
        db.session.commit()
        before = {t.id: t.lease_expires for t in db.session.execute(select(Task)).scalars()}
        db.session.commit()
        with counted() as statements:
            channel_upkeep.upkeep().renew_leases(dispatcher().connections(), 30.0)
        # SQLite: one UPDATE for all; PostgreSQL: one per lease (no two row locks held at once)
        updates = 1 if db.engine.dialect.name == "sqlite" else 4  # w0, w1, w2 (no row: lost) and w5
        assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == ["UPDATE"] * updates
        after = {t.id: t.lease_expires for t in db.session.execute(select(Task)).scalars()}
        renewed = {c.name for c in connections if after[c.current.id] != before[c.current.id]}  # type: ignore[union-attr]
        assert renewed == {"w0", "w1", "w5"}
