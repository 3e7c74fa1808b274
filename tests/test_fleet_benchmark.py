"""benchmarks/fleet.py still runs: a small fleet against a real coordinator, every frame verified.

A smoke test, not a timed one: it asserts the benchmark's JSON says what happened (every frame verified, every
agent connected, the measures present and plausible), never how fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.farm import REPO

AGENTS = 10
FRAMES = 12


def test_fleet_benchmark_verifies_every_frame(tmp_path: Path) -> None:
    out = tmp_path / "fleet.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.fleet", "--agents", str(AGENTS), "--frames", str(FRAMES),
                          "--timeout", "120", "--json", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["agents_connected"] == AGENTS
    assert result["frames_verified"] == FRAMES == result["frames"]
    assert result["job_state"] == "completed"
    assert result["errors"] == 0 and result["refusals"] == [], result["first_errors"]
    # Verification was on: checks were made by agents of other owners (each agent's first work in a job is
    # checked, later work by spot rate, so with more tasks than agents not every task has a check).
    assert result["checks_done"] >= 1
    assert result["frames_uploaded"] >= FRAMES
    assert result["frames_per_s"] > 0
    latency = result["assign_latency_ms"]
    assert latency["count"] >= result["tasks_done"] + result["checks_done"] > 0
    assert 0 <= latency["p50"] <= latency["p99"]
    # The statement counter saw the coordinator's work: a frame takes several transactions.
    assert result["sql_per_frame"] > 1 and result["sql_per_frame_by_verb"]["SELECT"] > 0
    assert result["coordinator_cpu_ms_per_frame"] > 0
    assert 0 < result["coordinator_rss_mb"] <= result["coordinator_peak_rss_mb"]
    assert result["coordinator_threads_peak"] > AGENTS  # a thread per WebSocket
