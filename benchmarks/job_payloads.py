"""Bytes per poll of one big job's detail (issue 16, point 5): the whole job, as every poll sent it before, against
a conditional poll (If-None-Match: its ETag, 304 while nothing changed) and a ``since=`` poll (only the blocks of
rows that changed), for a 10,000-frame job while it renders and when it is idle. Also the dashboard job page's poll
(``data/jobs/<id>``): with a cell per frame (as before), with its grid as runs of frames of one state, and with
``?known=`` the version the page shows.

One coordinator app in this process on a SQLite file (Flask's test client: bytes do not depend on the transport);
the job is submitted through the API with a real .blend of that many frames (scripts/make_scene.py). "Rendering" is
the farm moved on between two polls by the coordinator's own state moves (transitions.py) on its database:
``--workers`` agents hold the lowest queued tasks, as dispatch hands them out, and each round every one of them has
one frame come in (rendered) and its frame of the round before accepted (verified); a task whose frames are all in
is done and its agent takes the next. Bytes are the response's status line, headers and body, as HTTP/1.1 sends them
(no compression). Times are the coordinator's, per poll, median, on this machine.

    .venv/bin/python -m benchmarks.job_payloads --frames 10000 --rounds 20
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framehive.coordinator import create_app, ledger
from framehive.coordinator.auth import create_token
from framehive.coordinator.dashboard import job_detail
from framehive.coordinator.db import db
from framehive.coordinator.models import Account, Frame, Task
from framehive.coordinator.states import FrameState, TaskState
from framehive.coordinator.transitions import accepted, move_task, rendered
from sqlalchemy import select

from tests.farm import make_scene


@dataclass
class Series:
    sizes: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    statuses: set[int] = field(default_factory=set)

    def row(self, name: str) -> str:
        return (f"| {name} | {statistics.median(self.sizes):,.0f} | {max(self.sizes):,} | "
                f"{statistics.median(self.seconds) * 1000:.0f} | {', '.join(map(str, sorted(self.statuses)))} |")


def wire_bytes(response: Any) -> int:
    """Status line, headers and body as HTTP/1.1 sends them."""
    head = len(f"HTTP/1.1 {response.status}\r\n") + sum(len(k) + len(v) + 4 for k, v in response.headers.items())
    return head + 2 + len(response.get_data())


def timed(series: Series, call: Any, *args: Any, **kwargs: Any) -> Any:
    start = time.perf_counter()
    response = call(*args, **kwargs)
    series.seconds.append(time.perf_counter() - start)
    series.sizes.append(wire_bytes(response))
    series.statuses.add(response.status_code)
    return response


class Farm:
    """The agents of the simulation: each holds a task and has one frame come in per round."""

    def __init__(self, job_id: int, workers: int, sha: str) -> None:
        self.job_id, self.workers, self.sha = job_id, workers, sha
        self.held: list[int] = []
        self.last_rendered: dict[int, int] = {}  # task -> its frame that came in last round

    def step(self) -> None:
        for task_id, frame_id in list(self.last_rendered.items()):
            accepted(db.session.get(Frame, frame_id), "trust")
            del self.last_rendered[task_id]
        for task_id in list(self.held):
            task = db.session.get(Task, task_id)
            waiting = db.session.execute(select(Frame).filter_by(task_id=task_id, state=FrameState.QUEUED)
                                         .order_by(Frame.number).limit(1)).scalar_one_or_none()
            if waiting is None:
                move_task(task, TaskState.DONE)
                self.held.remove(task_id)
                continue
            rendered(waiting, self.sha, None, 1)
            self.last_rendered[task_id] = waiting.id
        free = self.workers - len(self.held)
        if free:
            self.held += list(db.session.execute(
                select(Task.id).filter_by(job_id=self.job_id, state=TaskState.QUEUED).order_by(Task.id).limit(free))
                .scalars())
            for task_id in self.held:
                task = db.session.get(Task, task_id)
                if task.state == TaskState.QUEUED:
                    move_task(task, TaskState.LEASED)
        db.session.commit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--workers", type=int, default=8, help="agents rendering at once")
    parser.add_argument("--rounds", type=int, default=20, help="polls of each kind, idle and while rendering")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="framehive-payloads-"))
    scene = make_scene(root / "long.blend", frames=args.frames)
    app = create_app({"FRAMEHIVE_START_REAPER": False, "FRAMEHIVE_START_COLLECTOR": False},
                     data_dir=root / "coordinator")
    with app.app_context():
        token = create_token("user", "artist")
        artist = db.session.execute(select(Account).filter_by(name="artist")).scalar_one()
        ledger.grant(artist.id, 10**9, "the benchmark's job")
        db.session.commit()
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    data = scene.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert client.put(f"/api/v1/blobs/{sha}", data=data, headers=auth).status_code in (200, 201)
    made = client.post("/api/v1/jobs", json={"scene": sha, "frames": f"1-{args.frames}", "chunk": args.chunk},
                       headers=auth)
    assert made.status_code == 201, made.get_json()
    job_id = made.get_json()["id"]
    path = f"/api/v1/jobs/{job_id}"
    client.get("/dashboard/login")  # the dashboard's session, signed in as its login form does
    with client.session_transaction("/dashboard/login") as session:
        csrf = session["csrf"]
    signed_in = client.post("/dashboard/login", data={"token": token, "csrf_token": csrf})
    assert signed_in.status_code == 303, signed_in.status_code
    dash_path = f"/dashboard/data/jobs/{job_id}"

    def run(advance: Any) -> dict[str, Series]:
        out = {name: Series() for name in ("full", "if-none-match", "since", "dashboard, a cell per frame (before)",
                                           "dashboard full", "dashboard known")}
        etag = client.get(path, headers=auth).headers["ETag"]
        cursor = client.get(path, headers=auth).get_json()["cursor"]
        known = dashboard(client, dash_path, None).get_json()["version"]
        for _ in range(args.rounds):
            advance()
            timed(out["full"], client.get, path, headers=auth)
            answer = timed(out["if-none-match"], client.get, path, headers={**auth, "If-None-Match": etag})
            etag = answer.headers["ETag"]
            answer = timed(out["since"], client.get, path, headers=auth, query_string={"since": cursor})
            cursor = answer.get_json()["cursor"]
            grid_frames, job_detail.GRID_FRAMES = job_detail.GRID_FRAMES, args.frames  # the grid as it was
            timed(out["dashboard, a cell per frame (before)"], dashboard, client, dash_path, None)
            job_detail.GRID_FRAMES = grid_frames
            timed(out["dashboard full"], dashboard, client, dash_path, None)
            answer = timed(out["dashboard known"], dashboard, client, dash_path, known)
            known = answer.get_json()["version"]
        return out

    with app.app_context():
        idle = run(lambda: None)
        farm = Farm(job_id, args.workers, sha)
        busy = run(farm.step)
        counts = client.get(path, headers=auth).get_json()["counts"]

    print(f"{args.frames:,}-frame job in chunks of {args.chunk} ({-(-args.frames // args.chunk):,} tasks), "
          f"{args.rounds} polls of each kind; rendering: {args.workers} agents, a frame in and one accepted per "
          f"agent per poll (frames at the end: {counts})\n")
    print("| poll | bytes (median) | bytes (max) | ms (median) | HTTP |\n|---|---:|---:|---:|---|")
    for label, results in (("idle", idle), ("rendering", busy)):
        for name, series in results.items():
            print(series.row(f"{label}: {name}"))
    return 0


def dashboard(client: Any, path: str, known: str | None) -> Any:
    response = client.get(path, query_string={"known": known} if known else None)
    assert response.status_code == 200, (response.status_code, response.get_data()[:200])
    return response


if __name__ == "__main__":
    sys.exit(main())
