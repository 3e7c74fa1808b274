"""Work slots (coordinator/work_slots.py): a bound on the threads doing the coordinator's work at once, which a slow
stranger must not be able to take from everybody; nor may a slow stranger hold the database.

With one slot, a client that sends a blob's headers and then trickles (or holds back) its body must not stop the
coordinator from answering anyone else: bodies are read with the slot given back. Real coordinator, real sockets.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from framehive.addon.client import Client
from framehive.coordinator.work_slots import WorkSlots
from framehive.protocol import messages as m

from tests.farm import Farm
from tests.protocol_worker import ProtocolWorker, png

ANSWER_WITHIN = 20.0  # a hang, not a speed: the held upload would keep the slot for its read timeout or forever


@pytest.fixture
def one_slot_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Farm]:
    monkeypatch.setenv("FRAMEHIVE_WORK_SLOTS", "1")
    farm = Farm(tmp_path / "farm")
    farm.start_coordinator()
    yield farm
    farm.stop()


def test_a_body_held_back_does_not_hold_the_only_slot(one_slot_farm: Farm) -> None:
    farm = one_slot_farm
    artist = farm.token("user", "artist")
    body = b"x" * 100_000
    target = urlsplit(farm.url)
    held = socket.create_connection((target.hostname, target.port), timeout=ANSWER_WITHIN)
    try:
        held.sendall((f"PUT /api/v1/blobs/{hashlib.sha256(body).hexdigest()} HTTP/1.1\r\n"
                      f"Host: {target.netloc}\r\nAuthorization: Bearer {artist}\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:10])  # then nothing more
        headers = {"Authorization": f"Bearer {artist}"}
        # The upload's view is reading its body now, or about to: either way the next request must be answered.
        for _ in range(3):
            answer = requests.get(f"{farm.url}/api/v1/jobs", headers=headers, timeout=ANSWER_WITHIN)
            assert answer.status_code == 200
        worker = ProtocolWorker(farm.url, farm.token("worker", "owner"), "w")
        worker.send(m.Heartbeat(task_id=10**6))  # a lease it does not hold: it is told to stop, so it is answered
        assert isinstance(worker.receive(timeout=ANSWER_WITHIN), m.Message)
        worker.close()
        held.sendall(body[10:])  # the upload still completes once its body comes
        status_line = held.recv(4096).split(b"\r\n", 1)[0]
        assert status_line.split()[1] == b"201", status_line
    finally:
        held.close()


def test_slots_are_per_thread_and_reentrant() -> None:
    slots = WorkSlots(1)
    with slots.held(), slots.held():  # nested: counted, not taken twice
        pass
    taken = threading.Event()
    go = threading.Event()

    def other() -> None:
        with slots.held():
            taken.set()
            go.wait(10)

    thread = threading.Thread(target=other)
    with slots.held():
        thread.start()
        assert not taken.wait(0.2)  # the only slot is this thread's
        with slots.released():  # given back while waiting on the network: the other thread gets it
            assert taken.wait(10)
            go.set()
            thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(ValueError):
        WorkSlots(0)


def test_a_duplicate_frame_whose_body_is_held_back_holds_no_database_lock(farm: Farm, sample_scene: Path) -> None:
    """A duplicate frame upload is answered after its body is drained. The drain used to run inside the upload's
    first transaction, which on SQLite holds the one write lock: a worker that re-sent a frame and held back the
    body stopped every write of the coordinator (after SQLite's busy timeout, 15 s, they failed: HTTP 500)."""
    worker = ProtocolWorker(farm.url, farm.token("worker", "owner", trusted=True), "w")
    artist = Client(farm.url, farm.token("user", "artist"))
    artist.submit(sample_scene, frames="1-2", chunk=2)
    assign = worker.receive()
    assert isinstance(assign, m.Assign)
    frame = png()
    assert worker.upload(assign, 1, data=frame).status_code == 201
    target = urlsplit(farm.url)
    held = socket.create_connection((target.hostname, target.port), timeout=ANSWER_WITHIN)
    try:
        held.sendall((f"PUT {assign.upload_url.replace('{frame}', '1')} HTTP/1.1\r\nHost: {target.netloc}\r\n"
                      f"Authorization: Bearer {worker.token}\r\nX-Framehive-Worker: {worker.worker_id}\r\n"
                      f"X-Content-SHA256: {hashlib.sha256(frame).hexdigest()}\r\n"
                      f"Content-Length: {len(frame)}\r\n\r\n").encode() + frame[:10])  # then nothing more
        # Writes go on meanwhile: a job submitted (its transaction needs the write lock), the other frame taken.
        artist.submit(sample_scene, frames="3-4", chunk=2)
        assert worker.upload(assign, 2, data=png(colour=(0, 90, 200))).status_code == 201
        held.sendall(frame[10:])
        status_line = held.recv(4096).split(b"\r\n", 1)[0]
        assert status_line.split()[1] == b"200", status_line  # answered as the duplicate it is
    finally:
        held.close()
        worker.close()


def test_every_slot_and_background_thread_has_a_database_connection_kept_for_it(tmp_path: Path) -> None:
    """With SQLAlchemy's default pool (5 kept, 10 more opened and closed again as needed), threads holding a slot
    waited for a connection, 4 % of the coordinator's CPU at 1,000 agents (issue 16)."""
    from framehive.coordinator import BACKGROUND_THREADS, create_app
    from framehive.coordinator.db import db

    app = create_app({"FRAMEHIVE_START_REAPER": False, "FRAMEHIVE_WORK_SLOTS": 3}, data_dir=tmp_path)
    wanted = 3 + BACKGROUND_THREADS
    with app.app_context():
        pool = db.engine.pool
        held = [db.engine.connect() for _ in range(wanted)]
        try:
            assert pool.overflow() <= 0  # type: ignore[attr-defined]  # none is an extra, closed when given back
        finally:
            for connection in held:
                connection.close()
        assert pool.checkedin() == wanted  # type: ignore[attr-defined]  # all kept for the next
        db.engine.dispose()
