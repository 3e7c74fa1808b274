"""Chaos: coordinators die mid-job (SIGKILL, nothing said to anyone) and the network carries on.

Two coordinators on one PostgreSQL and one store (a shared folder, or a bucket of an S3-compatible server), run as
the README's "Running a network" says: agents that list both move to the survivor, and the artist's
``framehive submit --wait --out`` gets every frame, each verified and paid once, the ledger conserved; with the
bucket, no scene, frame or check result byte passes through either coordinator. One coordinator on SQLite: killed
and restarted, its jobs resume.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from framehive.addon.client import Client
from sqlalchemy import create_engine, text

from tests.farm import Farm, make_scene, wait_for
from tests.postgres import PostgresServer
from tests.s3 import MotoServer, bytes_through


def _books(db_url: str) -> dict[str, int]:
    """Every book's balance, straight from the ledger's entries (not through a coordinator)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT from_book, to_book, amount FROM ledger_entry")).all()
    finally:
        engine.dispose()
    books: Counter[str] = Counter()
    for source, target, amount in rows:
        books[source] -= amount
        books[target] += amount
    return dict(books)


def _render_payments(db_url: str, job_id: int) -> Counter[int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            frames = conn.execute(text("SELECT frame FROM ledger_entry WHERE reason = 'render' AND job_id = :job"),
                                  {"job": job_id}).scalars().all()
    finally:
        engine.dispose()
    return Counter(frames)


def _assert_conserved(books: dict[str, int]) -> None:
    """Points move only between books: what accounts, escrows and the pool hold is what the mint issued."""
    held = {book: amount for book, amount in books.items() if book != "mint"}
    assert sum(held.values()) == -books.get("mint", 0), books
    assert all(amount >= 0 for amount in held.values()), books


def _kill(farm: Farm) -> None:
    """SIGKILL the coordinator: the process serving requests (gunicorn's worker) and the one started."""
    os.kill(farm.serving_pid(), signal.SIGKILL)
    farm.coordinator.stop(signal.SIGKILL)


def _connected(log: str, farm: Farm) -> bool:
    """The agent's log says it signed on at ``farm``'s coordinator."""
    return f"connected to {farm.url.replace('http://', 'ws://')}/" in log


def _progress(user: Client, job_id: int) -> int:
    return sum(f["state"] in ("rendered", "verified") for f in user.job(job_id)["frame_states"])


@pytest.fixture(params=["file", "s3"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The coordinators' one store: a folder, or a bucket of moto's S3 server (tests/s3.py), the AWS_* environment
    (the coordinators' too) pointing at it."""
    if request.param == "file":
        yield f"file://{tmp_path / 'blobs'}"
        return
    with MotoServer.running() as moto:
        for name, value in moto.environment().items():
            monkeypatch.setenv(name, value)
        yield f"s3://{moto.create_bucket()}/blobs"


def test_agents_move_to_the_other_coordinator_when_theirs_is_killed(postgres: PostgresServer, shared_store: str,
                                                                    tmp_path: Path):
    db_url = postgres.create_database()
    doomed = Farm(tmp_path / "a", coordinator_args=["--db", db_url, "--storage", shared_store])
    survivor = Farm(tmp_path / "b", coordinator_args=["--db", db_url, "--storage", shared_store])
    scene = make_scene(tmp_path / "slow.blend", frames=12, samples=48)
    try:
        doomed.start_coordinator()
        survivor.start_coordinator()
        # Two owners, neither trusted: every frame is checked by the other owner's agent.
        workers = [doomed.start_worker(owner, doomed.token("worker", owner), "--coordinator", survivor.url)
                   for owner in ("owner-1", "owner-2")]
        wait_for(lambda: all(_connected(w.log_text(), doomed) for w in workers), 90,
                 "both agents on the first coordinator")
        token = doomed.token("user", "artist")
        user = Client(survivor.url, token)
        before = _books(db_url)
        _assert_conserved(before)

        # The artist's documented command, at the coordinator that stays up: it waits, then downloads the frames.
        out = tmp_path / "out"
        artist = survivor._spawn("artist", [survivor.python, "-m", "framehive.addon.cli", "submit", str(scene),
                                            "--coordinator", survivor.url, "--token", token, "--frames", "1-12",
                                            "--chunk", "1", "--wait", "--quiet", "--out", str(out)])
        job_id = wait_for(lambda: [job["id"] for job in user.jobs()], 60, "the job to be submitted")[0]
        wait_for(lambda: _progress(user, job_id) >= 3, 180, "a few frames in")
        _kill(doomed)

        wait_for(lambda: all(_connected(w.log_text(), survivor) for w in workers), 60,
                 "both agents on the surviving coordinator")
        assert artist.popen.wait(300) == 0, artist.log_text()
        final = user.job(job_id)

        assert final["state"] == "completed", final
        assert sorted(f["frame"] for f in final["frame_states"]) == list(range(1, 13))
        assert all(f["state"] == "verified" for f in final["frame_states"]), final["frame_states"]
        assert _render_payments(db_url, job_id) == Counter(range(1, 13)), "each frame paid exactly once"
        after = _books(db_url)
        _assert_conserved(after)
        assert after.get("mint") == before.get("mint"), "no points were issued by the failover"
        assert after.get(f"escrow:{job_id}", 0) >= 0
        downloaded = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in out.iterdir()}
        assert downloaded == {f"frame_{f['frame']:04d}.png": f["sha256"] for f in final["frame_states"]}

        logs = [farm.coordinator.log_text() for farm in (doomed, survivor) if farm.coordinator]
        through = [bytes_through(log) for log in logs]
        if shared_store.startswith("s3://"):
            assert through == [[], []], "the scene, frames and check results went to the store and came from it"
            confirmed = re.findall(r'"POST /api/v1/worker/tasks/\d+/frames/\d+/uploads/', "".join(logs))
            assert len(confirmed) >= 12, "every frame was put in the store and confirmed at a coordinator"
        else:  # the same reading of the same logs finds the bytes a coordinator on a folder takes in
            assert any(request.startswith("PUT /api/v1/worker/tasks/") for log in through for request in log), through
    except BaseException:
        print(doomed.logs(), survivor.logs())
        raise
    finally:
        doomed.stop()
        survivor.stop()


def test_jobs_resume_after_the_only_coordinator_is_killed_and_restarted(farm: Farm, tmp_path: Path):
    scene = make_scene(tmp_path / "slow.blend", frames=8, samples=48)
    user = Client(farm.url, farm.token("user", "artist"))
    worker = farm.start_worker("w1", farm.token("worker", "gpu-owner", trusted=True))
    job = user.submit(scene, frames="1-8", chunk=4)
    wait_for(lambda: _progress(user, job["id"]) >= 2, 180, "a few frames in")

    _kill(farm)
    farm.coordinator.log.rename(farm.coordinator.log.with_suffix(".1.log"))
    farm.start_coordinator(int(farm.url.rsplit(":", 1)[1]))  # same port, same SQLite database

    final = user.wait(job["id"], poll=0.2, timeout=240)
    assert final["state"] == "completed", final
    assert all(f["state"] == "verified" for f in final["frame_states"]), final["frame_states"]
    assert worker.log_text().count("connected to") >= 2
    _assert_conserved(_books(f"sqlite:///{farm.data_dir / 'framehive.sqlite3'}"))
