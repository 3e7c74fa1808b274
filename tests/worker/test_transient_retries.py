"""The agent's frame upload is tried again after transient failures (502, 503, a reset connection) against a
real loopback server that fails the first attempts, and never after a 4xx."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from framehive.worker_agent import coordinator_urls as urls
from framehive.worker_agent.uploads import UploadError, upload_frame

from tests.scripted_http import Answer, scripted_server

PATH = urls.upload_template(3, 1).replace("{frame}", "1")


def _frame(tmp_path: Path) -> Path:
    frame = tmp_path / "frame.png"
    frame.write_bytes(b"\x89PNG frame bytes" * 100)
    return frame


def test_a_frame_upload_survives_transient_failures(tmp_path: Path) -> None:
    failures = [Answer(502, b"", {}), Answer(reset=True), Answer(503, b"", {})]
    puts: list[str] = []

    def script(method: str, _path: str, _n: int) -> Answer:
        if method == "POST":  # asked for a presigned upload: this coordinator takes frames itself (local disk)
            return Answer(200, b'{"url": null}')
        puts.append(method)
        return failures[len(puts) - 1] if len(puts) <= len(failures) else Answer(200, b'{"accepted": true}')

    with scripted_server(script) as server:
        assert upload_frame(requests.Session(), server.url, PATH, 7, _frame(tmp_path)) is True
        bodies = [seen.body for seen in server.requests if seen.method == "PUT"]
    assert bodies == [_frame(tmp_path).read_bytes()] * 4


def test_a_refused_frame_upload_is_not_tried_again(tmp_path: Path) -> None:
    with scripted_server(lambda _m, _p, _n: Answer(400, b'{"error": "bad"}')) as server:
        with pytest.raises(UploadError):
            upload_frame(requests.Session(), server.url, PATH, 7, _frame(tmp_path))
        assert len(server.requests) == 1
