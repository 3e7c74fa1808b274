"""Idle-to-assigned latency across coordinators sharing one PostgreSQL (coordinator/wakeups.py).

Two real coordinator processes (A and B) on one real PostgreSQL, two protocol-speaking idle agents: one connected
to A, one to B. Each run submits a one-frame job through A while only one of the two agents is free to take it
(the other is paused with a ``status`` message), and times from just before the submission's HTTP call to the
``assign`` reaching that agent. "same" is the agent on A (A's own dispatcher kicks at commit); "cross" is the agent
on B (B learns of the job only through LISTEN/NOTIFY; its sweep is set far beyond the run). The scene is uploaded
once beforehand, so a submission is one ``blobs/missing`` query and one ``POST /jobs``. Runs alternate between the
two cases. Each job is cancelled after its assign, through the coordinator of the agent that took it.

    .venv/bin/python -m benchmarks.wake --runs 40
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from framehive.addon.client import Client
from framehive.protocol import messages as m

from tests.coordinator_pair import CoordinatorPair
from tests.farm import make_scene, wait_for
from tests.postgres import PostgresServer
from tests.protocol_worker import ProtocolWorker

SWEEP = 600  # seconds between the coordinators' sweeps: far beyond any run, so only a wake-up can assign
ASSIGN_TIMEOUT = 30.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def drain(agent: ProtocolWorker) -> None:
    """Read whatever the coordinator still sends this agent (a cancel), heartbeating, until it is quiet."""
    while True:
        try:
            agent.receive_alive(timeout=0.3)
        except TimeoutError:
            return


def one_run(user: Client, scene: Path, taker: ProtocolWorker, other: ProtocolWorker) -> tuple[float, float]:
    """Seconds from the start of the submission to the assign, and the submission's own HTTP time."""
    other.send(m.Status(paused=True))
    taker.send(m.Status(paused=False))
    drain(other)
    drain(taker)
    start = time.perf_counter()
    job = user.submit(scene, frames="1", chunk=1)
    submitted = time.perf_counter()
    order = taker.receive_alive(timeout=ASSIGN_TIMEOUT)
    assigned = time.perf_counter()
    assert isinstance(order, m.Assign) and order.job_id == job["id"], order
    # Through the taker's own coordinator: a cancel through the other one frees the lease in the database, but
    # the taker's coordinator still counts the agent busy (it is told nothing) and offers it no more work.
    Client(taker.base_url, user.token).cancel(job["id"])
    return assigned - start, submitted - start


def summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"median_ms": round(statistics.median(ms), 1), "p95_ms": round(percentile(ms, 0.95), 1),
            "min_ms": round(min(ms), 1), "max_ms": round(max(ms), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40, help="runs per case (same, cross)")
    parser.add_argument("--json", action="store_true", help="print the samples as JSON too")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="framehive-wake-"))
    os.environ["FRAMEHIVE_REAPER_INTERVAL"] = str(SWEEP)
    postgres = PostgresServer(Path(tempfile.mkdtemp(prefix="framehive-wake-pg-")))  # its own dir: chowned to postgres
    postgres.start()
    pair = None
    try:
        scene = make_scene(root / "scene.blend", frames=1)
        pair = CoordinatorPair.start(postgres, root / "pair")
        wait_for(lambda: len(pair.listening()) == 2, 30, "both coordinators to LISTEN")
        user = Client(pair.a.url, pair.tokens["user"])
        on_a = ProtocolWorker(pair.a.url, pair.tokens["worker"], "idle-on-a")
        on_b = ProtocolWorker(pair.b.url, pair.tokens["worker"], "idle-on-b")
        one_run(user, scene, on_a, on_b)  # warm-up: connections, the scene upload, caches
        samples: dict[str, list[float]] = {"same": [], "cross": []}
        submit_times: list[float] = []
        for _ in range(args.runs):
            for case, taker, other in (("same", on_a, on_b), ("cross", on_b, on_a)):
                latency, submit = one_run(user, scene, taker, other)
                samples[case].append(latency)
                submit_times.append(submit)
        result = {"runs": args.runs, "load": os.getloadavg(), "submit_http": summary(submit_times),
                  **{case: summary(values) for case, values in samples.items()}}
        print(json.dumps(result, indent=2))
        if args.json:
            print(json.dumps({case: [round(v * 1000, 2) for v in values] for case, values in samples.items()}))
        on_a.close()
        on_b.close()
    except BaseException:
        if pair is not None:
            print(pair.logs(), file=sys.stderr)
        raise
    finally:
        if pair is not None:
            pair.stop()
        postgres.stop()
        shutil.rmtree(postgres.root, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
