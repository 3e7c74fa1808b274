"""The worker channel's upkeep between messages (issue 16): the token is read again on a timer, not per message,
and last_seen is written at most every FRAMEHIVE_SEEN_INTERVAL (capped at half a lease), against a real coordinator
and a protocol-level agent."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest
import requests
from framehive.addon.client import Client
from framehive.coordinator.config import TOKEN_RECHECK_INTERVAL
from framehive.protocol import messages as m
from websockets.exceptions import ConnectionClosed

from tests.farm import Farm, wait_for
from tests.protocol_worker import ProtocolWorker

# Slack on top of the stated bound for a loaded 2-core machine (a CI run may share it).
SLACK = 5.0


def admin(farm: Farm) -> dict[str, str]:
    return {"Authorization": f"Bearer {farm.token('admin', 'root')}"}


def the_worker(farm: Farm, headers: dict[str, str]) -> dict[str, Any]:
    workers = requests.get(f"{farm.url}/api/v1/workers", headers=headers, timeout=10).json()["workers"]
    assert len(workers) == 1
    return workers[0]


def round_trip(worker: ProtocolWorker) -> None:
    """A heartbeat the coordinator must answer (it names a task the agent does not hold: it is told to stop), so
    the message has been handled, last_seen included, when this returns."""
    worker.send(m.Heartbeat(task_id=10**6))
    assert isinstance(worker.receive(timeout=30), m.Message)


def test_a_silent_agent_is_cut_off_within_the_recheck_interval_of_its_revocation(farm: Farm):
    token = farm.token("worker", "owner")
    worker = ProtocolWorker(farm.url, token, "w")
    headers = admin(farm)
    listing = requests.get(f"{farm.url}/api/v1/admin/tokens?account=owner", headers=headers, timeout=10)
    response = requests.delete(f"{farm.url}/api/v1/admin/tokens/{listing.json()['tokens'][0]['id']}",
                               headers=headers, timeout=10)
    assert response.status_code == 200
    # The agent says nothing: the coordinator's own timer must notice (a per-message check never would).
    reply = worker.receive(timeout=TOKEN_RECHECK_INTERVAL + SLACK)
    assert isinstance(reply, m.Error) and reply.code == "bad_token"
    with pytest.raises(ConnectionClosed):
        worker.receive(timeout=SLACK)
    worker.close()


def test_last_seen_is_not_written_for_every_message(farm: Farm):
    worker = ProtocolWorker(farm.url, farm.token("worker", "owner"), "w")
    headers = admin(farm)
    signed_on = the_worker(farm, headers)["last_seen"]
    for _ in range(3):
        round_trip(worker)
    # Within FRAMEHIVE_SEEN_INTERVAL (15 s, under half the default 30 s lease) of the sign-on: no write.
    assert the_worker(farm, headers)["last_seen"] == signed_on
    worker.close()


LEASE = 5.0


@pytest.mark.coordinator_args("--lease-timeout", str(LEASE), "--heartbeat-interval", "0.5")
def test_a_talking_agent_stays_online_past_two_leases(farm: Farm):
    """The reaper (every second) marks offline a worker whose last_seen is two leases (10 s) old. The 15 s write
    interval is capped at half a lease (2.5 s), so a connected agent that keeps talking stays online and its
    last_seen moves on."""
    # The admin token first: minting it runs a command, which on a loaded machine can outlast a lease of silence
    # (the agent was dropped as silent before it said anything, in a CI run).
    headers = admin(farm)
    token = farm.token("worker", "owner")
    worker = ProtocolWorker(farm.url, token, "w")
    round_trip(worker)
    signed_on = the_worker(farm, headers)["last_seen"]
    until = time.monotonic() + 2.5 * LEASE + 1  # past two leases and a sweep: an unwritten last_seen is caught

    def talked_long_enough() -> bool:
        round_trip(worker)
        assert the_worker(farm, headers)["online"], "a connected, talking agent was marked offline"
        return time.monotonic() > until

    wait_for(talked_long_enough, 2.5 * LEASE + 30, "two and a half leases of talk", interval=0.3)
    assert the_worker(farm, headers)["last_seen"] > signed_on
    worker.close()


@pytest.mark.coordinator_args("--lease-timeout", "6", "--heartbeat-interval", "0.5")
def test_heartbeats_write_nothing_and_the_lease_is_renewed_every_third_of_a_lease(farm: Farm, sample_scene):
    """Every heartbeat was a locked read and a write of the lease: at 1,000 agents, 200 write transactions a second
    (issue 16), queued behind other work, so renewals came late and leases ran out under agents that were fine.
    channel_upkeep renews the leases of agents it hears from once a third of a lease has passed; the lease must never
    run out while the agent speaks."""
    worker = ProtocolWorker(farm.url, farm.token("worker", "owner", trusted=True), "w")
    Client(farm.url, farm.token("user", "artist")).submit(sample_scene, frames="1", chunk=1)
    assign = worker.receive()
    assert isinstance(assign, m.Assign)
    database = sqlite3.connect(f"file:{farm.data_dir / 'framehive.sqlite3'}?mode=ro", uri=True)
    written: set[float] = set()
    heartbeats = 0
    until = time.monotonic() + 2.5 * 6
    while time.monotonic() < until:
        worker.send(m.Heartbeat(task_id=assign.task_id))
        heartbeats += 1
        state, holder, expires = database.execute("SELECT state, worker_id, lease_expires FROM task WHERE id = ?",
                                                  (assign.task_id,)).fetchone()
        assert (state, holder) == ("leased", worker.worker_id)
        assert expires > time.time(), "the lease ran out while its agent kept sending heartbeats"
        written.add(expires)
        time.sleep(0.5)  # the agent's heartbeat period, not synchronisation
    database.close()
    assert heartbeats >= 25
    assert 2 <= len(written) <= 10, f"{len(written)} lease writes for {heartbeats} heartbeats (one each before)"
    worker.close()
