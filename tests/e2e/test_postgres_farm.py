"""The pipeline on PostgreSQL, including two coordinators sharing one database and one blob store."""

from __future__ import annotations

from pathlib import Path

from framehive.addon.client import Client

from tests.farm import Farm, wait_for
from tests.postgres import PostgresServer


def test_two_coordinators_share_one_postgres(postgres: PostgresServer, sample_scene: Path, tmp_path: Path):
    url = postgres.create_database()
    blobs = f"file://{tmp_path / 'blobs'}"
    first = Farm(tmp_path / "a", coordinator_args=["--db", url, "--storage", blobs])
    second = Farm(tmp_path / "b", coordinator_args=["--db", url, "--storage", blobs])
    try:
        first.start_coordinator()
        second.start_coordinator()
        token = first.token("worker", "gpu-owner", trusted=True)  # one database: a token made on one works on both
        first.start_worker("on-a", token)
        second.start_worker("on-b", token)
        owner = Client(second.url, token)
        wait_for(lambda: sum(w["online"] for w in owner.workers()) == 2, 90, "a worker on each coordinator")

        user = Client(first.url, first.token("user", "artist"))
        job = user.submit(sample_scene, frames="1-12", chunk=1)
        final = Client(second.url, user.token).wait(job["id"], poll=0.2, timeout=240)

        assert final["state"] == "completed", final
        assert sorted(f["frame"] for f in final["frame_states"]) == list(range(1, 13))
        assert {f["worker"] for f in final["frame_states"]} == {"on-a", "on-b"}, \
            "the coordinator without the submit found the work through the shared database"
        assert len(user.download_job(job["id"], tmp_path / "out")) == 12
    except BaseException:
        print(first.logs(), second.logs())
        raise
    finally:
        first.stop()
        second.stop()
