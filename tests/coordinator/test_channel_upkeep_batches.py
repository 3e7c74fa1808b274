"""channel_upkeep does the worker channel's upkeep for every connection at once (issue 16).

Each connection's thread read its token every FRAMEHIVE_TOKEN_RECHECK_INTERVAL and wrote its last_seen every
FRAMEHIVE_SEEN_INTERVAL: a statement per agent and interval, 200 reads and 67 writes a second at 1,000 agents with no
work going on (benchmarks/fleet.py). These tests count the statements of one round over many connections, on a real
database; tests/coordinator/test_channel_upkeep.py drives the same rules through a real coordinator and agent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from framehive.coordinator import channel_upkeep
from framehive.coordinator.auth import issue_token, revoke_token
from framehive.coordinator.db import db
from framehive.coordinator.dispatch import Connection, dispatcher
from framehive.coordinator.models import ApiToken, Worker, now
from sqlalchemy import event

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
