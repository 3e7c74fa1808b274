"""Strangers' text in the coordinator's log: a claim reason with a newline forged a log line of its own; an agent
could name itself with one. Against a real coordinator, its log file is read back."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from framehive.addon.client import Client
from framehive.coordinator import logsafe
from framehive.protocol import PROTOCOL_VERSION
from framehive.protocol import messages as m
from websockets.sync.client import connect

from tests.farm import Farm, wait_for
from tests.protocol_worker import ProtocolWorker

FORGED = "2026-01-01 00:00:00,000 WARNING coordinator: worker 1 (alice) suspended after 2 offences"


def hello(name: str, **fields: object) -> m.Hello:
    values: dict = {"protocol": PROTOCOL_VERSION, "name": name, "agent_version": "test", "blender_version": "5.0.1",
                    "device": "CPU", "devices": [{"backend": "CPU", "name": "test"}], "threads": 1, **fields}
    return m.Hello(**values)


def forged_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith(FORGED)]


def test_a_claim_reason_cannot_forge_a_log_line_and_is_cut(farm: Farm, sample_scene: Path):
    user = Client(farm.url, farm.token("user", "artist"))
    job = user.submit(sample_scene, frames="1-2", chunk=2)
    worker = ProtocolWorker(farm.url, farm.token("worker", "farm", trusted=True), "w")
    assign = worker.receive()
    assert isinstance(assign, m.Assign)
    for frame in assign.frames:
        assert worker.upload(assign, frame).status_code == 201
    worker.send(m.TaskDone(task_id=assign.task_id, attempt=assign.attempt))
    assert user.wait(job["id"], poll=0.1, timeout=30)["state"] == "completed"
    reason = "flicker\n" + FORGED + "\x1b[2J" + "x" * 1500
    user.claim(job["id"], "1", reason)
    coordinator = farm.coordinator
    assert coordinator is not None
    log = wait_for(lambda: "claim 1 on job" in coordinator.log_text() and coordinator.log_text(), 30,
                   "the claim in the log")
    assert forged_lines(log) == []
    line = next(line for line in log.splitlines() if "claim 1 on job" in line)
    assert "flicker\\n" in line and "\x1b" not in log  # escaped, however the call site quotes it
    assert len(line) < 600, "a 1500-character reason is cut"
    worker.close()


@pytest.mark.parametrize("name", ["gpu\n" + FORGED, "gpu\x1b[31m", "\u202egpu", "g" * 121, ""])
def test_an_agent_name_with_control_characters_or_too_long_is_refused(farm: Farm, name: str):
    token = farm.token("worker", "owner")
    url = farm.url.replace("http://", "ws://") + "/api/v1/worker/ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as ws:
        ws.send(m.encode(hello(name)))
        reply = m.decode(ws.recv(timeout=10))
    assert isinstance(reply, m.Error) and reply.code == "bad_message", reply
    log = farm.coordinator.log_text()  # type: ignore[union-attr]
    assert forged_lines(log) == [] and "connected" not in log


@pytest.mark.parametrize("fields", [{"blender_version": "5" * 41}, {"device": "CPU\n"},
                                    {"devices": [{"backend": "CPU", "name": "n\r"}]},
                                    {"devices": [{"backend": "CPU"}] * 33}, {"roles": ["render"] * 5},
                                    {"threads": -1}])
def test_a_hello_holds_only_short_printable_text(fields: dict):
    with pytest.raises(m.MessageError):
        m.decode(m.encode(hello("gpu-box", **fields)))
    assert m.decode(m.encode(hello("gpu-box.example.org"))).name == "gpu-box.example.org"


def test_any_coordinator_log_line_is_one_line(caplog: pytest.LogCaptureFixture):
    """Whatever the call site: arguments, f-strings, mappings; a traceback stays the handler's."""
    logger = logging.getLogger("framehive-test-logsafe")
    logsafe.protect(logger)
    logsafe.protect(logger)  # once is enough
    assert len(logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("worker %s said %d", "a\nb", 3)
        logger.info(f"job name {'x' * 300}\u2028end")
        logger.info("%(who)s", {"who": "c\rd"})
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == "worker a\\nb said 3"
    assert messages[1] == "job name " + "x" * 300 + "\\u2028end"  # escaped; an f-string is not cut
    assert messages[2] == "c\\rd"
    assert logsafe.clean("y" * 250) == "y" * 200 + "…(50 more characters)"
    assert not re.search(r"[\x00-\x1f]", "".join(messages))
