"""The GPU owner stays in control, with a real coordinator, real agents and real Blender renders:

- ``framehive-worker pause`` / ``resume`` on a running agent: paused, it shows so on the coordinator and gets no
  work; resumed, it renders; after the frames are verified it prints what it earned, and ``framehive balance``
  works with its worker token; its token was never on its command line;
- ``--schedule``: an agent started outside its window shows as paused and gets no work (even work queued before
  it connected), then takes work when the window opens (its clock is injected: no waiting for wall time).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

from framehive.addon.client import Client
from framehive.worker_agent.cli import _task_runner, build_parser, serve

from tests.farm import REPO, Farm, wait_for

ONLINE = 90
RENDER = 240


def worker_command(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "framehive.worker_agent.cli", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})}, check=True)


def worker_row(admin: Client, name: str) -> dict | None:
    return next((w for w in admin.workers() if w["name"] == name), None)


def leased_tasks(user: Client, job_id: int) -> list[dict]:
    return [t for t in user.job(job_id)["tasks"] if t["state"] == "leased"]


def test_pause_and_resume_a_running_agent_then_its_earnings(farm: Farm, sample_scene: Path) -> None:
    user = Client(farm.url, farm.token("user", "artist"))
    admin = Client(farm.url, farm.token("admin", "root"))
    token = farm.token("worker", "owner", trusted=True)  # trusted: its frames are verified without checks
    agent = farm.start_worker("w1", token)
    cache = farm.root / "cache-w1"
    wait_for(lambda: (worker_row(admin, "w1") or {}).get("online"), ONLINE, "the agent online")
    cmdline = Path(f"/proc/{agent.popen.pid}/cmdline").read_bytes()
    assert token.encode() not in cmdline, "the token is in the agent's argv, where ps shows it"

    out = worker_command("pause", "--cache-dir", str(cache), "--reason", "playing a game")
    assert "paused" in out.stdout
    row = wait_for(lambda: (r := worker_row(admin, "w1")) and r["paused"] and r, 30, "the agent shown paused")
    assert row["pause_reason"] == "playing a game"

    job = user.submit(sample_scene, frames="1-3")  # the dispatcher runs within this request
    assert leased_tasks(user, job["id"]) == [] and user.job(job["id"])["counts"].get("queued") == 3
    assert worker_row(admin, "w1")["current_task"] is None

    worker_command("resume", "--cache-dir", str(cache))
    final = user.wait(job["id"], poll=0.2, timeout=RENDER)
    assert final["state"] == "completed", final
    assert {f["worker"] for f in final["frame_states"]} == {"w1"}
    assert not worker_row(admin, "w1")["paused"]

    earned = wait_for(lambda: re.search(r"earned (\d+) points \(job (\d+), frames 1-3 verified\); balance (\d+)",
                                        agent.log_text()), 60, "the agent to print its earnings")
    balance = Client(farm.url, token).balance()
    assert int(earned[2]) == job["id"] and int(earned[3]) == balance["balance"] and int(earned[1]) > 0
    assert "paused: playing a game" in agent.log_text() and "resumed" in agent.log_text()

    shown = subprocess.run([sys.executable, "-m", "framehive.addon.cli", "balance"], cwd=REPO, capture_output=True,
                           text=True,
                           timeout=60, env={**os.environ, "FRAMEHIVE_COORDINATOR": farm.url, "FRAMEHIVE_TOKEN": token})
    assert shown.returncode == 0, shown.stderr
    assert f"owner: {balance['balance']} points" in shown.stdout and f"w1: earned {earned[1]}" in shown.stdout


class Clock:
    """Local wall-clock time the test moves by hand."""

    def __init__(self, hour: int, minute: int = 0) -> None:
        self.now = datetime(2025, 6, 1, hour, minute)

    def __call__(self) -> datetime:
        return self.now


def test_an_agent_outside_its_schedule_is_paused_then_works_when_the_window_opens(
        farm: Farm, sample_scene: Path, tmp_path: Path) -> None:
    user = Client(farm.url, farm.token("user", "artist"))
    admin = Client(farm.url, farm.token("admin", "root"))
    job = user.submit(sample_scene, frames="1-2")  # queued before the agent connects: pushed at its hello
    token_file = tmp_path / "token"
    token_file.write_text(farm.token("worker", "night-owner", trusted=True) + "\n")
    token_file.chmod(0o600)
    args = build_parser().parse_args([
        "--coordinator", farm.url, "--token-file", str(token_file), "--name", "night", "--threads", "1",
        "--cache-dir", str(tmp_path / "cache"), "--schedule", "22:00-07:00"])
    clock = Clock(12)  # noon: outside the window
    started: dict[str, object] = {}

    def on_start(agent, runner) -> None:  # type: ignore[no-untyped-def]
        agent.control.clock = clock
        started.update(agent=agent, loop=asyncio.get_running_loop())

    exit_codes: list[int] = []
    thread = threading.Thread(target=lambda: exit_codes.append(serve(args, "test", _task_runner, on_start)))
    thread.start()
    try:
        row = wait_for(lambda: (r := worker_row(admin, "night")) and r["online"] and r["paused"] and r, ONLINE,
                       "the agent online and paused")
        assert row["pause_reason"] == "outside its schedule 22:00-07:00 (next window opens at 22:00)"
        # If the order pushed at its hello beat its status, the agent gave it back (no failure counted).
        wait_for(lambda: not leased_tasks(user, job["id"]), 30, "no task leased to the paused agent")
        detail = user.job(job["id"])
        assert detail["counts"].get("queued") == 2 and detail["failures"] == [], detail

        clock.now = datetime(2025, 6, 1, 22, 30)  # the window opens
        final = user.wait(job["id"], poll=0.2, timeout=RENDER)
        assert final["state"] == "completed" and {f["worker"] for f in final["frame_states"]} == {"night"}
        assert not worker_row(admin, "night")["paused"]
    finally:
        if started:
            started["loop"].call_soon_threadsafe(started["agent"].stop)  # type: ignore[attr-defined]
        thread.join(60)
    assert exit_codes == [0]
