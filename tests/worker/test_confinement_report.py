"""The agent's confinement in its hello (issue 11): what it says, what the coordinator accepts, keeps and shows.

The report is a stranger's self-description, so it is checked like any other text it sends (known fields, JSON
types, short printable words). A coordinator started with ``--require-confinement`` refuses a real agent that
runs unconfined (``FRAMEHIVE_LANDLOCK=0``): the agent prints why and stops. The report is only the agent's word:
a client that claims Landlock is let in all the same, which is what the README says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from framehive.coordinator import config
from framehive.protocol import PROTOCOL_VERSION
from framehive.protocol import messages as m
from framehive.worker_agent import confinement
from framehive.worker_agent.connection import confinement_report

from tests.farm import Farm, wait_for

ONLINE = 90


def hello_text(report: Any, name: str = "box") -> str:
    """A hello whose confinement field is ``report`` (any JSON, as a hostile client may send)."""
    hello = m.Hello(protocol=PROTOCOL_VERSION, name=name, agent_version="test", blender_version="5.0.1",
                    device="CPU", devices=[], threads=1)
    return json.dumps({**json.loads(m.encode(hello)), "confinement": report})


def good_report(**changes: Any) -> dict[str, Any]:
    return {**confinement.status(), **changes}


# ------------------------------------------------------------------------------------------- the message


def test_the_agents_own_report_is_a_valid_hello() -> None:
    hello = m.decode(hello_text(confinement_report()))
    assert isinstance(hello, m.Hello) and hello.confinement == confinement.status()
    assert hello.confinement["available"] is True and hello.confinement["abi"] >= 1  # Linux 6.18 here
    assert m.decode(hello_text(None)).confinement is None  # an agent that does not say


@pytest.mark.parametrize(("report", "why"), [
    (good_report(extra="x"), "unknown field"),
    ({f"k{i}": True for i in range(5000)}, "unknown field"),
    (good_report(available="yes"), "wrong type"),
    (good_report(abi=True), "wrong type"),
    (good_report(abi=10**30), "abi"),
    (good_report(abi=-1), "abi"),
    (good_report(scopes=["signal"] * 9), "scopes"),
    (good_report(scopes=[{"nested": "x" * 100_000}]), "scopes"),
    (good_report(reason="x" * 201), "longer than 200"),
    (good_report(reason="fine\n2026-12-05 INFO forged log line"), "control or invisible"),
    (good_report(mechanism="landlock\u202e"), "control or invisible"),
    (good_report(environment="s" * 41), "longer than 40"),
    ({k: v for k, v in confinement.status().items() if k != "available"}, "whether it is available"),
    ([1, 2, 3], "wrong type"),
    ("landlock", "wrong type"),
])
def test_a_hostile_report_is_refused(report: Any, why: str) -> None:
    with pytest.raises(m.MessageError, match=why):
        m.decode(hello_text(report))


def test_a_hostile_kernel_override_value_still_makes_a_valid_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason quotes FRAMEHIVE_LANDLOCK's value: long or with control characters, it is cut and made printable,
    so an agent switched off this way still says hello (and is refused, if at all, for being unconfined)."""
    monkeypatch.setenv(confinement.OVERRIDE_VARIABLE, "off" + " \x1b[31m" * 100)
    monkeypatch.setattr(confinement, "_probe_abi", lambda: (0, f"switched off by {'x' * 300}\x1b"))
    report = confinement_report()
    assert report["available"] is False and len(report["reason"]) == m.MAX_CONFINEMENT_TEXT
    assert m.decode(hello_text(report)).confinement == report


# ------------------------------------------------------------------------------------------- the setting


def test_the_setting_from_the_environment_is_a_switch() -> None:
    settings = config.defaults(Path("/nonexistent"))
    assert settings["FRAMEHIVE_REQUIRE_CONFINEMENT"] is False
    for text, value in (("1", True), ("yes", True), (" ON ", True), ("0", False), ("false", False), ("", False)):
        got = config.from_environment(settings, {"FRAMEHIVE_REQUIRE_CONFINEMENT": text})
        assert got == {"FRAMEHIVE_REQUIRE_CONFINEMENT": value}, text
    with pytest.raises(ValueError, match="FRAMEHIVE_REQUIRE_CONFINEMENT='maybe'"):
        config.from_environment(settings, {"FRAMEHIVE_REQUIRE_CONFINEMENT": "maybe"})


# ------------------------------------------------------------------------------------------- real coordinators


def workers(farm: Farm, admin: str) -> dict[str, dict[str, Any]]:
    response = requests.get(f"{farm.url}/api/v1/workers", headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    return {w["name"]: w for w in response.json()["workers"]}


def raw_hello(farm: Farm, token: str, name: str, report: Any) -> m.Message:
    """Say hello over a real WebSocket with this confinement field, hang up; the coordinator's answer."""
    from websockets.sync.client import connect

    with connect(farm.url.replace("http://", "ws://") + "/api/v1/worker/ws", open_timeout=10,
                 additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send(hello_text(report, name))
        return m.decode(ws.recv(timeout=10))


def test_the_coordinator_keeps_and_shows_each_agents_report(farm: Farm) -> None:
    admin, token = farm.token("admin", "root"), farm.token("worker", "owner")
    farm.start_worker("confined", token)
    row = wait_for(lambda: workers(farm, admin).get("confined", {}).get("online") and workers(farm, admin)["confined"],
                   ONLINE, "the real agent online")
    assert row["confinement"] == confinement.status() and row["confined"] is True
    assert isinstance(raw_hello(farm, token, "old-agent", None), m.Welcome), "not saying is allowed by default"
    unconfined = good_report(available=False, mechanism=None, abi=0, filesystem=False, reason="macOS")
    assert isinstance(raw_hello(farm, token, "mac", unconfined), m.Welcome), "and so is being unconfined"
    shown = workers(farm, admin)
    assert shown["old-agent"]["confinement"] is None and shown["old-agent"]["confined"] is False
    assert shown["mac"]["confinement"]["reason"] == "macOS" and shown["mac"]["confined"] is False
    refused = raw_hello(farm, token, "liar", good_report(reason="x" * 5000))
    assert isinstance(refused, m.Error) and refused.code == "bad_message" and "liar" not in workers(farm, admin)


@pytest.mark.coordinator_args("--require-confinement")
def test_a_coordinator_requiring_confinement_refuses_an_unconfined_agent(farm: Farm,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    admin, token = farm.token("admin", "root"), farm.token("worker", "owner")
    monkeypatch.setenv(confinement.OVERRIDE_VARIABLE, "0")  # this agent's renders run unconfined
    unconfined = farm.start_worker("unconfined", token)
    monkeypatch.delenv(confinement.OVERRIDE_VARIABLE)
    assert unconfined.popen.wait(120) != 0, "it stops: retrying cannot make it confined"
    log = unconfined.log_text()
    assert f"unconfined: this coordinator accepts only agents whose renders are confined, and this agent reports " \
           f"none: switched off by {confinement.OVERRIDE_VARIABLE}=0" in log, log
    assert "Landlock enabled" in log, "it says how to fix it"
    assert log.count("coordinator refused this agent") == 1, "it did not retry"
    assert "unconfined" not in workers(farm, admin), "a refused agent makes no worker"
    assert isinstance(raw_hello(farm, token, "old-agent", None), m.Error), "not saying is not being confined"

    farm.start_worker("confined", token)
    wait_for(lambda: workers(farm, admin).get("confined", {}).get("online"), ONLINE, "the confined agent online")
    # Only the agent's word: a client claiming Landlock is let in. The README says so.
    assert isinstance(raw_hello(farm, token, "claims-landlock", good_report()), m.Welcome)
