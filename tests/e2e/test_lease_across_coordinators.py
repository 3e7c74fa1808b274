"""A lease an agent held on a coordinator that died (SIGKILL) is not the agent's failure.

Two coordinators on one PostgreSQL. An agent takes a task on A; A is killed; the agent signs on at B under its
name, as a real agent does when its coordinator goes away (worker_agent/connection.py moves to the next URL), and
its hello names the task it dropped (protocol/session.py: a hello after a lost connection). B hands that lease
back without a failure (leases.release_worker) and offers the task again. Leases a hello does not name, or names
with another attempt, are still counted as lost: an agent that lies gains nothing a handback would not give it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from framehive.addon.client import Client
from framehive.protocol import PROTOCOL_VERSION
from framehive.protocol import messages as m
from websockets.sync.client import ClientConnection, connect

from tests.coordinator_pair import CoordinatorPair
from tests.farm import Farm, wait_for
from tests.postgres import PostgresServer
from tests.protocol_worker import ProtocolWorker


@pytest.fixture
def pair(postgres: PostgresServer, tmp_path: Path) -> Iterator[CoordinatorPair]:
    with CoordinatorPair.running(postgres, tmp_path) as pair:
        yield pair


@contextlib.contextmanager
def sign_on(base_url: str, token: str, name: str, dropped: m.Assign | None) -> Iterator[ClientConnection]:
    """Connect as agent ``name`` with a hello naming ``dropped`` (task id and attempt), as a real agent's next
    hello does after its connection was lost; yields the connection once welcomed."""
    with connect(base_url.replace("http://", "ws://") + "/api/v1/worker/ws",
                 additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as ws:
        ws.send(m.encode(m.Hello(protocol=PROTOCOL_VERSION, name=name, agent_version="test",
                                 blender_version="5.0.1",
                                 device="CPU", devices=[{"backend": "CPU", "name": "test"}], threads=1,
                                 dropped_task_id=dropped.task_id if dropped else None,
                                 dropped_attempt=dropped.attempt if dropped else None)))
        welcome = m.decode(ws.recv(timeout=30))
        assert isinstance(welcome, m.Welcome), welcome
        yield ws


def test_a_lease_on_a_killed_coordinator_is_not_counted_as_the_agents_failure(pair: CoordinatorPair,
                                                                               sample_scene: Path) -> None:
    user = Client(pair.b.url, pair.tokens["user"])
    job = user.submit(sample_scene, frames="1", chunk=1)
    on_a = ProtocolWorker(pair.a.url, pair.tokens["worker"], "mover")
    order = on_a.receive_alive(timeout=30)
    assert isinstance(order, m.Assign) and order.job_id == job["id"], order

    os.kill(pair.a.serving_pid(), signal.SIGKILL)  # A dies without a word to anyone
    pair.a.coordinator.stop(signal.SIGKILL)
    on_a.close()
    with sign_on(pair.b.url, pair.tokens["worker"], "mover", dropped=order) as on_b:  # the same agent, on B
        # B settles the agent's old lease while it signs it on, before its welcome: it is settled by now.
        detail = user.job(job["id"])
        task = detail["tasks"][0]
        assert detail["failures"] == [] and task["failures"] == 0, \
            f"the coordinator's death was counted as the agent's failure: {detail['failures']}"
        again = m.decode(on_b.recv(timeout=30))  # handed back to the queue, so B offers it again
        assert isinstance(again, m.Assign) and (again.task_id, again.attempt) == (order.task_id, order.attempt + 1), \
            again


@pytest.mark.parametrize("named", ["held", "another attempt", "nothing"])
def test_only_the_lease_a_hello_names_goes_back_without_a_failure(farm: Farm, sample_scene: Path,
                                                                  named: str) -> None:
    """The agent signs on again while its first connection still holds the lease (the coordinator has not read
    its end): the hello decides, and only the lease the worker holds, at that attempt, escapes the count."""
    token = farm.token("worker", "owner", trusted=True)
    user = Client(farm.url, farm.token("user", "artist"))
    job = user.submit(sample_scene, frames="1", chunk=1)
    first = ProtocolWorker(farm.url, token, "twice")
    order = first.receive_alive(timeout=30)
    assert isinstance(order, m.Assign) and order.job_id == job["id"], order
    claim = {"held": order, "nothing": None,
             "another attempt": dataclasses.replace(order, attempt=order.attempt + 1)}[named]
    try:
        with sign_on(farm.url, token, "twice", dropped=claim):
            failures = user.job(job["id"])["tasks"][0]["failures"]
        assert failures == (0 if named == "held" else 1), f"hello naming {named}: {failures} failure(s)"
    finally:
        first.close()


def test_a_connection_ending_on_a_leaves_the_agents_session_on_b_alone(pair: CoordinatorPair,
                                                                        sample_scene: Path) -> None:
    """The agent moved to B while A, alive, still had its old connection (a network cut A had not noticed): when A
    reads that connection's end, it must not take back the lease B gave the agent since, nor mark it offline."""
    user = Client(pair.b.url, pair.tokens["user"])
    job = user.submit(sample_scene, frames="1", chunk=1)
    on_a = ProtocolWorker(pair.a.url, pair.tokens["worker"], "mover")
    order = on_a.receive_alive(timeout=30)
    assert isinstance(order, m.Assign) and order.job_id == job["id"], order
    with sign_on(pair.b.url, pair.tokens["worker"], "mover", dropped=order) as on_b:
        again = m.decode(on_b.recv(timeout=30))
        assert isinstance(again, m.Assign) and again.task_id == order.task_id, again
        on_a.close()
        wait_for(lambda: "worker mover disconnected" in pair.a.logs(), 30, "A to read the old connection's end")
        task = user.job(job["id"])["tasks"][0]
        assert (task["failures"], task["state"], task["attempts"]) == (0, "leased", again.attempt), task
