"""The reads every verified frame makes that scan its whole job (issue 16): what they cost as a job grows.

A passed check and the frame it verifies read the job's escrow balance (a sum over the job's ledger entries, twice:
the check's pay and the frame's), its render reserve (a count over the job's frames not yet paid for) and whether
the job is complete (a count over its tasks not done). Each reads rows in proportion to the job's size, so a job of
F frames costs O(F^2) rows in all. This measures each read, median of ``--repeat``, on a job half done (half its
frames verified and paid for), on a SQLite file with the coordinator's schema, and again with composite indexes
that would let each read only the rows it counts (``--indexes``: both, side by side in one run).

    .venv/bin/python -m benchmarks.job_scans --frames 1000 10000 --indexes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from framehive.coordinator import create_app, payments
from framehive.coordinator.db import db
from framehive.coordinator.ledger import account_book, balance, escrow_book
from framehive.coordinator.models import Account, Blob, Frame, Job, LedgerEntry, Task
from framehive.coordinator.states import FrameState, JobState, TaskState
from sqlalchemy import func, insert, select, text

#: What each index would serve: the render reserve, the open-task count, the escrow balance's two sums.
INDEXES = ("CREATE INDEX bench_frame_job_state ON frame (job_id, state)",
           "CREATE INDEX bench_task_job_state ON task (job_id, state)",
           "CREATE INDEX bench_ledger_from_amount ON ledger_entry (from_book, amount)",
           "CREATE INDEX bench_ledger_to_amount ON ledger_entry (to_book, amount)")


def half_done_job(frames: int) -> Job:
    """A running job of ``frames`` one-frame tasks: the first half done and verified, each paid a render and a
    check from the escrow (two ledger entries a frame, as the fleet's jobs have), the rest queued."""
    artist = Account(name="artist")
    db.session.add(artist)
    db.session.add(Blob(sha256="0" * 64, size=1))
    db.session.flush()
    job = Job(account_id=artist.id, name="big", scene_sha256="0" * 64, frames_spec=f"1-{frames}", chunk=1,
              priority=0, state=JobState.RUNNING, resolution_x=64, resolution_y=36)
    db.session.add(job)
    db.session.flush()
    done = frames // 2
    db.session.execute(insert(Task), [{"job_id": job.id, "frames_spec": str(n),
                                       "state": TaskState.DONE if n <= done else TaskState.QUEUED}
                                      for n in range(1, frames + 1)])
    tasks = db.session.execute(select(Task.id).where(Task.job_id == job.id).order_by(Task.id)).scalars().all()
    db.session.execute(insert(Frame), [{"job_id": job.id, "task_id": task_id, "number": n, "flags": [],
                                        "state": FrameState.VERIFIED if n <= done else FrameState.QUEUED}
                                       for n, task_id in enumerate(tasks, start=1)])
    escrow, artist_book = escrow_book(job.id), account_book(artist.id)
    entries = [{"from_book": artist_book, "to_book": escrow, "amount": payments.job_price(frames), "reason": "escrow",
                "job_id": job.id}]
    entries += [{"from_book": escrow, "to_book": artist_book, "amount": 1, "reason": reason, "job_id": job.id}
                for _ in range(done) for reason in ("render", "check")]
    db.session.execute(insert(LedgerEntry), entries)
    db.session.commit()
    return job


def median_ms(read: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        read()
        times.append(time.perf_counter() - started)
    db.session.commit()
    return round(1000 * statistics.median(times), 3)


def measure(frames: int, indexes: bool, repeat: int, directory: Path) -> dict[str, Any]:
    path = directory / f"scan-{frames}-{'indexed' if indexes else 'plain'}.sqlite3"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "FRAMEHIVE_DATA_DIR": str(directory)})
    with app.app_context():
        job = half_done_job(frames)
        if indexes:
            for ddl in INDEXES:
                db.session.execute(text(ddl))
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        escrow = escrow_book(job.id)

        def open_tasks() -> int:
            return db.session.execute(select(func.count()).select_from(Task).where(
                Task.job_id == job.id, Task.state != TaskState.DONE)).scalar_one()

        result = {"frames": frames, "indexes": indexes,
                  "render_reserve_ms": median_ms(lambda: payments.render_reserve(job), repeat),
                  "escrow_balance_ms": median_ms(lambda: balance(escrow), repeat),
                  "open_tasks_ms": median_ms(open_tasks, repeat)}
        # A verified frame reads the balance twice (the check's pay, the frame's), the others once each.
        result["per_frame_ms"] = round(result["render_reserve_ms"] + 2 * result["escrow_balance_ms"]
                                       + result["open_tasks_ms"], 3)
        db.session.remove()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--indexes", action="store_true", help="also measure with the composite indexes")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="framehive-scans-") as directory:
        for frames in args.frames:
            for indexes in ((False, True) if args.indexes else (False,)):
                result = measure(frames, indexes, args.repeat, Path(directory))
                results.append(result)
                print(json.dumps(result), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
