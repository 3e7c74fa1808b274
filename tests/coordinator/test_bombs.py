"""Bombs against a real coordinator: small on the wire, huge once unpacked. Each is refused with a clear error
before it is unpacked, and the coordinator's peak memory (its own process, measured in /proc) barely moves."""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
import zlib
from pathlib import Path

import pytest
import requests
from framehive.addon.client import Client
from framehive.protocol import messages as m
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.farm import Farm
from tests.proc_stats import MIB, peak_rss, reset_peak_rss
from tests.protocol_worker import ProtocolWorker, error_of, png

# What a refused bomb may still cost the coordinator: reading the request and answering it, never the unpacked
# size (the PNG below is 500 MB of pixels, the WebSocket message 300 MiB).
MEMORY_BOUND = 64 * MIB


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def zero_png(width: int, height: int) -> bytes:
    """A valid all-black 8-bit RGB PNG: about 500 KB for 13000x13000, whose pixels take 507 MB."""
    row = bytes(1 + 3 * width)  # filter byte 0, then black pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def png_bomb() -> bytes:
    return zero_png(13000, 13000)


def coordinator_pid(farm: Farm) -> int:
    assert farm.coordinator is not None
    return farm.serving_pid()


def test_a_frame_far_bigger_than_the_job_is_refused_from_its_header(farm: Farm, sample_scene: Path,
                                                                    png_bomb: bytes):
    user = Client(farm.url, farm.token("user", "artist"))
    user.submit(sample_scene, frames="1-2", chunk=2)
    worker = ProtocolWorker(farm.url, farm.token("worker", "owner", trusted=True), "w")
    assign = worker.receive()
    assert isinstance(assign, m.Assign)
    pid = coordinator_pid(farm)
    reset_peak_rss(pid)
    before = peak_rss(pid)
    response = worker.upload(assign, 1, data=png_bomb)
    grown = peak_rss(pid) - before
    assert grown < MEMORY_BOUND, f"the coordinator's peak memory grew by {grown / MIB:.0f} MiB"
    assert response.status_code == 400 and error_of(response) == "wrong_resolution", response.text
    assert "13000x13000" in response.json()["error"]["message"]
    assert worker.upload(assign, 1).status_code == 201  # the job's own size still goes through
    worker.close()


def test_a_deflated_websocket_message_is_not_inflated(farm: Farm):
    """300 MiB of text deflates to about 300 KB; the coordinator neither negotiates compression nor buffers more
    than one message's limit before closing the connection."""
    token = farm.token("worker", "owner", trusted=True)
    pid = coordinator_pid(farm)
    reset_peak_rss(pid)
    before = peak_rss(pid)
    url = farm.url.replace("http://", "ws://") + "/api/v1/worker/ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, compression="deflate",
                 open_timeout=10, close_timeout=10) as ws:
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions")
        with contextlib.suppress(ConnectionClosed, OSError):  # closed while sending or after
            ws.send("a" * (300 * MIB))
            ws.recv(timeout=30)
    grown = peak_rss(pid) - before
    assert grown < MEMORY_BOUND, f"the coordinator's peak memory grew by {grown / MIB:.0f} MiB"
    assert negotiated is None
    # Closed as too big (1009); while the client is still sending, the close may reach it as a reset (1006).
    assert ws.close_code in (1009, 1006)
    # The coordinator still serves others.
    assert requests.get(f"{farm.url}/api/v1/health", timeout=10).status_code == 200


def _post(farm: Farm, token: str, path: str, body: bytes) -> requests.Response:
    return requests.post(f"{farm.url}{path}", data=body, timeout=30, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def test_deeply_nested_json_is_a_clear_400(farm: Farm):
    token = farm.token("user", "artist")
    for path in ("/api/v1/jobs", "/api/v1/blobs/missing"):
        response = _post(farm, token, path, b"[" * 50_000)  # past the recursion limit, within FRAMEHIVE_MAX_JSON_VALUES
        assert response.status_code == 400 and error_of(response) == "too_deep", response.text
        response = _post(farm, token, path, b'{"sha256": ' + b"[" * 40 + b"]" * 40 + b"}")
        assert response.status_code == 400 and error_of(response) == "too_deep", response.text
    # Nesting inside strings is just text.
    response = _post(farm, token, "/api/v1/blobs/missing", json.dumps({"sha256": ["[" * 1000]}).encode())
    assert response.status_code == 400 and error_of(response) == "bad_hash", response.text


def test_a_json_body_over_the_limit_is_a_413_before_it_is_read(farm: Farm):
    token = farm.token("user", "artist")
    sha = hashlib.sha256(b"x").hexdigest()
    big = json.dumps({"sha256": [sha] * 200_000}).encode()  # 13 MB
    response = _post(farm, token, "/api/v1/blobs/missing", big)
    assert response.status_code == 413 and error_of(response) == "too_large", response.text
    small = _post(farm, token, "/api/v1/blobs/missing", json.dumps({"sha256": [sha]}).encode())
    assert small.status_code == 200 and small.json() == {"missing": [sha]}


def test_frames_of_the_right_size_still_decode(farm: Farm, sample_scene: Path):
    """The header check lets honest frames through (and a lying header is caught by the decoder)."""
    user = Client(farm.url, farm.token("user", "artist"))
    user.submit(sample_scene, frames="1-2", chunk=2)
    worker = ProtocolWorker(farm.url, farm.token("worker", "owner", trusted=True), "w")
    assign = worker.receive()
    assert isinstance(assign, m.Assign)
    small = png(32, 18)
    response = worker.upload(assign, 1, data=small)
    assert response.status_code == 400 and error_of(response) == "wrong_resolution"
    lying = bytearray(png(64, 36))
    lying[41:49] = b"\x00" * 8  # the header is right, the pixel data below it is corrupt
    response = worker.upload(assign, 1, data=bytes(lying))
    assert response.status_code == 400 and error_of(response) == "bad_frame"
    assert worker.upload(assign, 1).status_code == 201
    worker.close()
