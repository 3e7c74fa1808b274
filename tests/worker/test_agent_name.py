"""A --name the coordinator's hello would refuse (too long, control or invisible characters, empty) is refused by
the agent itself, with the reason, before it probes Blender or connects anywhere; the limits are the protocol's
(framehive.protocol.messages.check_agent_name), not a copy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from framehive.protocol import messages

from tests.farm import REPO

BAD_NAMES = {
    "too long": "n" * (messages.HELLO_TEXT_LIMITS["name"] + 1),
    "newline": "box-1\n2026-12-05 INFO [framehive] forged log line",
    "escape": "box\x1b[2J",
    "invisible": "box\u200b",
    "empty": "",
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_a_bad_name_is_refused_before_connecting(tmp_path: Path, name: str) -> None:
    with socket.socket() as listener:  # a "coordinator" that notes whether anyone came
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        done = subprocess.run(
            [sys.executable, "-m", "framehive.worker_agent.cli", "--coordinator", url, "--name", name,
             "--cache-dir", str(tmp_path / "cache"), "--threads", "1"],
            cwd=REPO, env={**os.environ, "FRAMEHIVE_TOKEN": "fhw_test"}, capture_output=True, text=True, timeout=60)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert done.returncode == 2, done.stderr
    assert "argument --name: the name" in done.stderr, done.stderr
    assert any(why in done.stderr for why in ("longer than 120", "control or invisible", "is empty")), done.stderr
    assert "Blender" not in done.stderr, "refused before Blender was looked for"


def test_the_longest_printable_name_is_accepted() -> None:
    from framehive.worker_agent.cli import build_parser

    name = "ä" * messages.HELLO_TEXT_LIMITS["name"]
    assert build_parser().parse_args(["--name", name]).name == name
    hello = messages.Hello(protocol=1, name=name, agent_version="1", blender_version="5.0.1", device="CPU",
                           devices=[], threads=1)
    hello.check()  # and the coordinator's check takes it
