"""Agents online and names per worker token (issue 12), against a real coordinator over real WebSockets.

The attack: each hello under a new name is a new worker with no history (200 identities in 6 s), and any
number of them may be online at once. The defaults bound both: 16 names and 4 agents online per token.
"""

from __future__ import annotations

from typing import Any

import requests
from framehive.coordinator import config
from framehive.protocol import messages as m

from tests.farm import Farm, wait_for
from tests.griefer import hello
from tests.live import farm_database


def workers(farm: Farm, admin: str) -> dict[str, dict[str, Any]]:
    response = requests.get(f"{farm.url}/api/v1/workers", headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    return {w["name"]: w for w in response.json()["workers"]}


def sign_on_and_leave(farm: Farm, admin: str, token: str, name: str) -> m.Message:
    """Say hello as ``name``, hang up, and wait until the coordinator has it offline again."""
    ws, answer = hello(farm.url, token, name)
    ws.close()
    if isinstance(answer, m.Welcome):
        wait_for(lambda: not workers(farm, admin)[name]["online"], 10, f"{name} offline")
    return answer


def test_a_token_signs_on_under_at_most_16_names(farm: Farm):
    admin, token = farm.token("admin", "root"), farm.token("worker", "grief")
    for i in range(config.MAX_NAMES_PER_TOKEN):
        assert isinstance(sign_on_and_leave(farm, admin, token, f"name-{i}"), m.Welcome), i
    refused = sign_on_and_leave(farm, admin, token, "one-more")
    assert isinstance(refused, m.Error) and refused.code == "too_many_names", refused
    assert "16 agent names" in refused.message and "--name" in refused.message
    assert isinstance(sign_on_and_leave(farm, admin, token, "name-3"), m.Welcome), "an existing name is fine"
    assert "one-more" not in workers(farm, admin), "a refused name makes no worker"
    other = farm.token("worker", "grief-2", "grief")  # another token of the same account has names of its own
    assert isinstance(sign_on_and_leave(farm, admin, other, "one-more"), m.Welcome)


def test_a_token_has_at_most_4_agents_online(farm: Farm):
    admin, token = farm.token("admin", "root"), farm.token("worker", "grief")
    connections = []
    for i in range(config.MAX_AGENTS_PER_TOKEN):
        ws, answer = hello(farm.url, token, f"box-{i}")
        assert isinstance(answer, m.Welcome), (i, answer)
        connections.append(ws)
    ws, refused = hello(farm.url, token, "box-4")
    ws.close()
    assert isinstance(refused, m.Error) and refused.code == "too_many_agents", refused
    assert "4 agents" in refused.message
    again, answer = hello(farm.url, token, "box-0")  # the same agent reconnecting replaces its old connection
    assert isinstance(answer, m.Welcome)
    connections[0].close()
    connections[0] = again
    connections.pop().close()
    wait_for(lambda: not workers(farm, admin)["box-3"]["online"], 10, "box-3 offline")
    ws, answer = hello(farm.url, token, "box-4")
    assert isinstance(answer, m.Welcome), "one left, so another may come"
    for connection in [*connections, ws]:
        connection.close()


def test_a_real_agent_over_the_limit_says_why_and_stops(farm: Farm):
    token = farm.token("worker", "owner")
    connections = [hello(farm.url, token, f"box-{i}")[0] for i in range(config.MAX_AGENTS_PER_TOKEN)]
    agent = farm.start_worker("box-5", token)
    assert agent.popen.wait(120) != 0
    assert "too_many_agents" in agent.log_text() and "at once" in agent.log_text(), agent.log_text()
    for connection in connections:
        connection.close()


def test_a_new_name_of_a_suspended_account_is_born_suspended(farm: Farm):
    admin, token = farm.token("admin", "root"), farm.token("worker", "grief")
    from framehive.coordinator.db import db
    from framehive.coordinator.models import Account

    with farm_database(farm):
        db.session.query(Account).filter_by(name="grief").one().suspended = True
        db.session.commit()
    ws, answer = hello(farm.url, token, "fresh")
    assert isinstance(answer, m.Welcome)
    assert workers(farm, admin)["fresh"]["suspended"] is True
    ws.close()
