"""Coordinators on one PostgreSQL wake each other (coordinator/wakeups.py): a job submitted through coordinator A
reaches an idle agent on coordinator B long before B's sweep would have found it, also after B's listening
session was killed; a job cancelled through A stops its agent on B at once; and notifications leave only with the
transaction that made the change."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from framehive.addon.client import Client
from framehive.coordinator import create_app, wakeups
from framehive.coordinator.db import db
from framehive.protocol import messages as m

from tests.coordinator_pair import CoordinatorPair
from tests.farm import wait_for
from tests.postgres import PostgresServer
from tests.protocol_worker import ProtocolWorker

SWEEP = 120  # seconds between the coordinators' sweeps: longer than any test here runs
PROMPT = 15  # seconds: an agent must be offered the job within this, far below SWEEP


@pytest.fixture(scope="module")
def pair(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoordinatorPair]:
    with contextlib.ExitStack() as running:
        with pytest.MonkeyPatch.context() as env:  # the processes take the setting at start
            env.setenv("FRAMEHIVE_REAPER_INTERVAL", str(SWEEP))
            pair = running.enter_context(CoordinatorPair.running(postgres, tmp_path_factory.mktemp("pair")))
        wait_for(lambda: len(pair.listening()) == 2, 30, "both coordinators to LISTEN")
        yield pair


def offered_through_a(pair: CoordinatorPair, scene: Path, agent_name: str) -> None:
    """Submit a one-frame job through A while an agent idles on B: B must offer it to the agent within PROMPT."""
    agent = ProtocolWorker(pair.b.url, pair.tokens["worker"], agent_name)
    user = Client(pair.a.url, pair.tokens["user"])
    job = user.submit(scene, frames="1", chunk=1)
    try:
        order = agent.receive_alive(timeout=PROMPT)
        assert isinstance(order, m.Assign) and order.job_id == job["id"], order
    except TimeoutError:
        raise AssertionError(f"job {job['id']} submitted through A was not offered on B within {PROMPT} s "
                             f"(the sweep runs every {SWEEP} s)\n{pair.logs()}") from None
    finally:
        user.cancel(job["id"])  # nothing left queued for the next test's agent
        agent.close()


def test_a_job_submitted_through_a_reaches_an_idle_agent_on_b_at_once(pair: CoordinatorPair, sample_scene: Path):
    offered_through_a(pair, sample_scene, "on-b")


def test_the_listener_reconnects_after_its_session_is_killed(pair: CoordinatorPair, sample_scene: Path):
    killed = pair.kill_listeners()
    assert len(killed) == 2
    wait_for(lambda: len(pair.listening() - killed) == 2, PROMPT, "both listeners to LISTEN again")
    offered_through_a(pair, sample_scene, "on-b-again")


def test_a_notification_leaves_only_with_its_transaction(postgres: PostgresServer, tmp_path: Path):
    url = postgres.create_database()
    app = create_app({"FRAMEHIVE_START_REAPER": False, "SQLALCHEMY_DATABASE_URI": url}, data_dir=tmp_path)
    heard: list[str] = []
    with psycopg.connect(wakeups.libpq_url(url), autocommit=True) as listener, \
            psycopg.connect(wakeups.libpq_url(url), autocommit=True) as other, app.app_context():
        listener.execute(f"LISTEN {wakeups.CHANNEL}")

        def hear(payload: str) -> bool:
            heard.extend(n.payload for n in listener.notifies(timeout=0.2))
            return payload in heard

        wakeups.announce("rolled back")
        db.session.rollback()
        wakeups.announce("pending")
        other.execute("SELECT pg_notify(%s, 'marker')", (wakeups.CHANNEL,))
        wait_for(lambda: hear("marker"), 10, "the marker")
        assert heard == ["marker"], "an announcement left before its transaction committed"
        db.session.commit()
        wait_for(lambda: hear("pending"), 10, "the committed announcement")
        assert heard == ["marker", "pending"], "a rolled-back announcement was delivered"
        db.session.remove()
        db.engine.dispose()


def test_sqlite_coordinators_do_not_listen(tmp_path: Path):
    app = create_app({"FRAMEHIVE_START_REAPER": False,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'framehive.sqlite3'}"}, data_dir=tmp_path)
    assert app.extensions["framehive_reaper"].listener is None
    with app.app_context():
        wakeups.announce("nobody")  # one process: nothing is sent, nothing fails
        db.session.commit()
        db.session.remove()


def test_a_job_cancelled_through_a_stops_the_agent_on_b(pair: CoordinatorPair, sample_scene: Path):
    agent = ProtocolWorker(pair.b.url, pair.tokens["worker"], "cancelled-on-b")
    user = Client(pair.a.url, pair.tokens["user"])
    try:
        job = user.submit(sample_scene, frames="1", chunk=1)
        order = agent.receive_alive(timeout=PROMPT)
        assert isinstance(order, m.Assign) and order.job_id == job["id"], order
        user.cancel(job["id"])
        try:
            told = agent.receive_alive(timeout=PROMPT)
        except TimeoutError:
            raise AssertionError(f"the agent on B was not told of the cancel within {PROMPT} s") from None
        assert isinstance(told, m.Cancel) and told.task_id == order.task_id, told
    finally:
        agent.close()
