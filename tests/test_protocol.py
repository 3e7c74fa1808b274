"""The wire messages: round trips and strict validation of what arrives."""

from __future__ import annotations

import json

import pytest
from framehive.protocol import messages as m

HANDLE = "Zq3-_9xYc0aBdEfGhIjKlM"


def test_every_message_round_trips():
    samples = [
        m.Hello(protocol=1, name="w", agent_version="0.1", blender_version="5.0.1", device="CPU",
                devices=[{"backend": "CPU", "name": "cpu"}], threads=4),
        m.Heartbeat(), m.Heartbeat(task_id=3), m.Progress(task_id=1, attempt=2, frame=7),
        m.TaskDone(task_id=1, attempt=1), m.TaskFailed(task_id=1, attempt=1, error="boom", log_tail="x"),
        m.Handback(task_id=1, attempt=1), m.Welcome(worker_id=1, heartbeat_interval=5, lease_timeout=30.0),
        m.Assign(task_id=1, attempt=1, job_id=2, frames=[1, 2], scene={"sha256": "a"}, settings={},
                 upload_url="/x/{frame}"),
        m.Cancel(task_id=1), m.Cancel(handle=HANDLE, reason="r"), m.Error(code="c", message="msg"),
        m.CheckDone(handle=HANDLE), m.CheckFailed(handle=HANDLE, error="e"), m.Heartbeat(handle=HANDLE),
        m.Verify(handle=HANDLE, job_id=2, frame=3, rect=[0, 0, 8, 8], scene={"sha256": "a"}, settings={},
                 upload_url="/u"),
        m.Status(paused=True, reason="outside its schedule"), m.Status(paused=False),
    ]
    assert {type(s) for s in samples} == set(m.MESSAGE_TYPES.values())
    for sample in samples:
        assert m.decode(m.encode(sample)) == sample


@pytest.mark.parametrize("text, reason", [
    ("not json", "not JSON"),
    ("[1]", "JSON object"),
    ('{"type": "nope"}', "unknown message type"),
    ('{"task_id": 1}', "unknown message type"),
    ('{"type": "progress", "task_id": 1, "attempt": 1}', "missing field 'frame'"),
    ('{"type": "progress", "task_id": "1", "attempt": 1, "frame": 2}', "wrong type"),
    ('{"type": "progress", "task_id": true, "attempt": 1, "frame": 2}', "wrong type"),
    ('{"type": "assign", "task_id": 1, "attempt": 1, "job_id": 1, "frames": [1, "2"], "scene": {}, '
     '"settings": {}, "upload_url": "u"}', "wrong type"),
])
def test_bad_messages_are_rejected_with_a_reason(text, reason):  # type: ignore[no-untyped-def]
    with pytest.raises(m.MessageError, match=reason):
        m.decode(text)


def test_fields_of_a_newer_peer_are_dropped_not_refused():
    """A newer agent's hello (or a newer coordinator's order) may carry fields this version does not know: an older
    coordinator sharing the network during a rolling upgrade still talks to it (it refused such a hello before)."""
    hello = m.Hello(protocol=2, name="box", agent_version="0.1.0", blender_version="5.0.1", device="CPU", devices=[],
                    threads=2)
    payload = json.loads(m.encode(hello))
    newer = m.decode(json.dumps({**payload, "gpu_temperature": 71, "features": ["resume"]}))
    assert newer == m.decode(m.encode(hello))
    beat = m.decode('{"type": "heartbeat", "task_id": null, "extra": 1}')
    assert beat == m.Heartbeat(task_id=None)


def test_oversized_message_is_rejected():
    with pytest.raises(m.MessageError, match="too large"):
        m.decode('{"type": "error", "code": "x", "message": "' + "a" * m.MAX_MESSAGE_BYTES + '"}')


def test_orders_carrying_long_file_lists_fit_the_workers_limit_only():
    """An assign lists every file of its scene: the worker accepts orders up to MAX_ORDER_BYTES, while the
    coordinator keeps refusing worker messages above MAX_MESSAGE_BYTES."""
    assets = [{"path": f"textures/t{i:05d}.png", "sha256": "a" * 64, "size": 1, "url": "/api/v1/blobs/" + "a" * 64}
              for i in range(5000)]
    order = m.Assign(task_id=1, attempt=1, job_id=2, frames=[1], settings={}, upload_url="/u/{frame}",
                     scene={"sha256": "b" * 64, "size": 9, "url": "/x", "path": "shots/s.blend", "assets": assets})
    text = m.encode(order)
    assert m.MAX_MESSAGE_BYTES < len(text) < m.MAX_ORDER_BYTES
    assert m.decode(text, limit=m.MAX_ORDER_BYTES) == order
    with pytest.raises(m.MessageError, match="too large"):
        m.decode(text)
