"""The worker WebSocket and frame uploads against a real coordinator, with protocol-level test workers."""

from __future__ import annotations

import hashlib

import pytest
import requests
from framehive.addon.client import Client
from framehive.protocol import messages as m
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.farm import Farm, wait_for
from tests.protocol_worker import ProtocolWorker, error_of, png


def ws_url(farm: Farm) -> str:
    return farm.url.replace("http://", "ws://") + "/api/v1/worker/ws"


@pytest.mark.parametrize("kind, status", [(None, 401), ("bad", 401), ("user", 403)])
def test_channel_refuses_callers_without_a_worker_token(farm: Farm, kind, status):  # type: ignore[no-untyped-def]
    headers = {}
    if kind == "bad":
        headers["Authorization"] = "Bearer nope"
    elif kind == "user":
        headers["Authorization"] = f"Bearer {farm.token('user', 'artist')}"
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(farm), additional_headers=headers, open_timeout=10)
    assert info.value.response.status_code == status


def test_first_message_must_be_hello(farm: Farm):
    token = farm.token("worker", "owner", trusted=True)
    with connect(ws_url(farm), additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send(m.encode(m.Heartbeat()))
        reply = m.decode(ws.recv(timeout=10))
    assert isinstance(reply, m.Error) and reply.code == "hello_expected"


def submit(farm: Farm, scene, frames: str, chunk: int) -> tuple[Client, dict]:  # type: ignore[no-untyped-def]
    user = Client(farm.url, farm.token("user", "artist"))
    return user, user.submit(scene, frames=frames, chunk=chunk)


@pytest.mark.coordinator_args("--lease-timeout", "2", "--heartbeat-interval", "0.5")
def test_silent_worker_loses_its_lease_to_another(farm: Farm, sample_scene):  # type: ignore[no-untyped-def]
    token = farm.token("worker", "owner", trusted=True)
    user, job = submit(farm, sample_scene, "1-2", 2)  # queued first: the worker gets it as it connects
    silent = ProtocolWorker(farm.url, token, "silent")
    first = silent.receive()
    assert isinstance(first, m.Assign) and first.frames == [1, 2]
    # The silent worker sends nothing more; a second worker connects and gets the task after the lease.
    other = ProtocolWorker(farm.url, token, "other")
    second = other.receive_alive(timeout=30)
    assert isinstance(second, m.Assign) and second.task_id == first.task_id and second.attempt == 2
    # The silent worker's late upload is refused; the new holder's is accepted.
    assert silent.upload(first, 1).status_code in (409, 403)
    assert other.upload(second, 1).status_code == 201
    assert other.upload(second, 2).status_code == 201
    other.send(m.TaskDone(task_id=second.task_id, attempt=second.attempt))
    final = user.wait(job["id"], poll=0.1, timeout=30)
    assert final["state"] == "completed"
    assert {f["worker"] for f in final["frame_states"]} == {"other"}
    assert any(f["reason"] == "lease_lost" for f in final["failures"])
    other.close()


def test_duplicate_and_late_results_are_harmless(farm: Farm, sample_scene):  # type: ignore[no-untyped-def]
    worker = ProtocolWorker(farm.url, farm.token("worker", "owner", trusted=True), "w")
    user, job = submit(farm, sample_scene, "1-2", 2)
    assign = worker.receive()
    assert isinstance(assign, m.Assign)
    assert worker.upload(assign, 1).status_code == 201
    duplicate = worker.upload(assign, 1, data=png(colour=(1, 2, 3)))
    assert duplicate.status_code == 200 and duplicate.json()["accepted"] is False
    assert worker.upload(assign, 2).status_code == 201
    worker.send(m.TaskDone(task_id=assign.task_id, attempt=assign.attempt))
    assert user.wait(job["id"], poll=0.1, timeout=30)["state"] == "completed"
    worker.send(m.TaskDone(task_id=assign.task_id, attempt=assign.attempt))  # a late duplicate report
    worker.send(m.TaskFailed(task_id=assign.task_id, attempt=assign.attempt, error="late"))
    worker.send(m.Heartbeat())
    final = user.job(job["id"])
    assert final["state"] == "completed" and final["failures"] == []
    frame = next(f for f in final["frame_states"] if f["frame"] == 1)
    assert frame["sha256"] == hashlib.sha256(png()).hexdigest(), "the first upload stays"
    worker.close()


def test_bad_frame_uploads_are_refused(farm: Farm, sample_scene):  # type: ignore[no-untyped-def]
    worker = ProtocolWorker(farm.url, farm.token("worker", "owner", trusted=True), "w")
    user, job = submit(farm, sample_scene, "1-2", 2)
    assign = worker.receive()
    assert error_of(worker.upload(assign, 1, sha="0" * 64)) == "hash_mismatch"
    assert error_of(worker.upload(assign, 1, data=png(32, 18))) == "wrong_resolution"
    assert error_of(worker.upload(assign, 1, data=b"GIF89a not a png")) == "bad_frame"
    truncated = png()[:60]
    assert error_of(worker.upload(assign, 1, data=truncated)) == "bad_frame"
    assert error_of(worker.upload(assign, 7)) == "bad_frame", "frame 7 is not part of the task"
    assert worker.upload(assign, 1, attempt=5).status_code == 409
    stranger = farm.token("worker", "stranger")
    response = requests.put(farm.url + assign.upload_url.replace("{frame}", "1"), data=png(), timeout=10,
                            headers={"Authorization": f"Bearer {stranger}", "X-Framehive-Worker": str(worker.worker_id),
                                     "X-Content-SHA256": hashlib.sha256(png()).hexdigest()})
    assert response.status_code == 403
    assert all(f["state"] != "rendered" for f in user.job(job["id"])["frame_states"])
    worker.close()


def test_scene_download_only_for_the_lease_holder(farm: Farm, sample_scene):  # type: ignore[no-untyped-def]
    token = farm.token("worker", "owner", trusted=True)
    stranger = farm.token("worker", "stranger")
    sha = hashlib.sha256(sample_scene.read_bytes()).hexdigest()
    user, job = submit(farm, sample_scene, "1-2", 2)

    def get(tok: str) -> int:
        return requests.get(f"{farm.url}/api/v1/blobs/{sha}", headers={"Authorization": f"Bearer {tok}"},
                            timeout=10).status_code

    assert get(token) == 403, "no lease yet"
    worker = ProtocolWorker(farm.url, token, "w")
    assert isinstance(worker.receive(), m.Assign)
    assert get(token) == 200
    assert get(stranger) == 403
    user.cancel(job["id"])
    reply = worker.receive()
    assert isinstance(reply, m.Cancel)
    wait_for(lambda: get(token) == 403, 10, "the scene to be off limits after cancel")
    worker.close()


def test_revoking_a_worker_token_cuts_off_its_connected_agent(farm: Farm):
    from framehive.coordinator.cli import main as coordinator_cli

    token = farm.token("worker", "owner")
    worker = ProtocolWorker(farm.url, token, "w")
    admin = {"Authorization": f"Bearer {farm.token('admin', 'root')}"}
    listing = requests.get(f"{farm.url}/api/v1/admin/tokens?account=owner", headers=admin, timeout=10).json()["tokens"]
    assert coordinator_cli(["token", "revoke", str(listing[0]["id"]), "--data-dir", str(farm.data_dir)]) == 0
    reply = worker.receive_alive(timeout=20)
    assert isinstance(reply, m.Error) and reply.code == "bad_token"
    worker.close()
