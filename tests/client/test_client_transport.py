"""The artist client's connections against a real loopback server whose answers the test scripts: requests share
one kept-alive connection, idempotent requests (GET, PUT of a blob) are tried again after a transient failure
while a POST never is, and a redirect to another host does not carry the token along."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from framehive.addon.client import RETRIES, ApiError, Client, ConnectionFailed

from tests.scripted_http import Answer, scripted_server

TOKEN = "fhu_secret-token"
ME = "/api/v1/me"


def ok(body: object) -> Answer:
    return Answer(200, json.dumps(body).encode())


def test_requests_share_one_kept_alive_connection() -> None:
    with scripted_server(lambda _m, _p, _n: ok({"id": 1})) as server:
        client = Client(server.url, TOKEN)
        for _ in range(5):
            assert client.me() == {"id": 1}
        client.cancel(3)
        assert (len(server.requests), server.connections) == (6, 1)


def test_a_get_is_tried_again_after_transient_failures() -> None:
    failures = [Answer(502, b"bad gateway", {}), Answer(reset=True), Answer(503, b"busy", {})]
    script = lambda _m, _p, n: failures[n] if n < len(failures) else ok({"id": 7})  # noqa: E731
    with scripted_server(script) as server:
        assert Client(server.url, TOKEN).me() == {"id": 7}
        assert server.count("GET", ME) == 4


def test_transient_failures_are_tried_a_bounded_number_of_times() -> None:
    with scripted_server(lambda _m, _p, _n: Answer(504, b"gateway timeout", {"Content-Type": "text/plain"})) as server:
        with pytest.raises(ApiError) as caught:
            Client(server.url, TOKEN).me()
        assert (caught.value.status, caught.value.code) == (504, "server_error")
        assert server.count("GET", ME) == RETRIES + 1


@pytest.mark.parametrize("failure", [Answer(502, b"bad gateway", {}), Answer(reset=True)])
def test_a_post_is_never_sent_twice(failure: Answer) -> None:
    with scripted_server(lambda _m, _p, _n: failure) as server:
        with pytest.raises(ApiError) as caught:
            Client(server.url, TOKEN).cancel(3)
        assert isinstance(caught.value, ConnectionFailed) == failure.reset
        assert server.count("POST", "/api/v1/jobs/3/cancel") == 1


def test_a_client_error_is_not_tried_again() -> None:
    missing = Answer(404, b'{"error": {"code": "not_found", "message": "no"}}')
    with scripted_server(lambda _m, _p, _n: missing) as server:
        with pytest.raises(ApiError) as caught:
            Client(server.url, TOKEN).job(9)
        assert caught.value.code == "not_found" and server.count("GET", "/api/v1/jobs/9") == 1


def test_a_blob_upload_is_sent_again_whole_after_a_503(tmp_path: Path) -> None:
    blob = tmp_path / "scene.blend"
    blob.write_bytes(bytes(range(256)) * 300)
    sha = hashlib.sha256(blob.read_bytes()).hexdigest()

    def script(method: str, _path: str, n: int) -> Answer:
        if method == "POST":  # asked for a presigned upload: this coordinator takes blobs itself (local disk)
            return ok({"url": None})
        return Answer(503, b"busy", {}) if n == 0 else ok({"sha256": sha, "size": 76800})

    progress: list[tuple[int, int]] = []
    with scripted_server(script) as server:
        answer = Client(server.url, TOKEN).upload_blob(blob, sha, lambda sent, total: progress.append((sent, total)))
        puts = [seen.body for seen in server.requests if seen.method == "PUT"]
    assert answer == {"sha256": sha, "size": 76800}
    assert puts == [blob.read_bytes()] * 2  # the retry rewound the stream: every byte, not an empty body
    assert progress[-1] == (76800, 76800)


def test_429_is_sent_again_after_retry_after_even_for_a_post() -> None:
    limited = Answer(429, b'{"error": {"code": "rate_limited", "message": "slow down"}}',
                     {"Content-Type": "application/json", "Retry-After": "1"})
    with scripted_server(lambda _m, _p, n: limited if n == 0 else ok({"id": 3, "state": "cancelled"})) as server:
        assert Client(server.url, TOKEN).cancel(3)["state"] == "cancelled"
        assert server.count("POST", "/api/v1/jobs/3/cancel") == 2


def test_a_redirect_to_another_host_does_not_carry_the_token() -> None:
    with scripted_server(lambda _m, _p, _n: ok({"id": 5})) as elsewhere:
        # "localhost" is another host name than the coordinator's 127.0.0.1, though the same machine.
        target = elsewhere.url.replace("127.0.0.1", "localhost")
        moved = Answer(302, b"", {"Location": f"{target}/api/v1/me"})
        with scripted_server(lambda _m, _p, _n: moved) as coordinator:
            assert Client(coordinator.url, TOKEN).me() == {"id": 5}
            assert coordinator.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert [seen.path for seen in elsewhere.requests] == [ME]
    assert not any("authorization" in (name.lower() for name in seen.headers) for seen in elsewhere.requests)
    assert TOKEN not in repr(elsewhere.requests)


def test_a_put_is_not_redirected(tmp_path: Path) -> None:
    blob = tmp_path / "scene.blend"
    blob.write_bytes(b"x" * 100)
    sha = hashlib.sha256(b"x" * 100).hexdigest()
    with scripted_server(lambda _m, _p, _n: ok({})) as elsewhere:
        moved = Answer(307, b"", {"Location": f"{elsewhere.url}/api/v1/blobs/{sha}"})
        with scripted_server(lambda _m, _p, _n: moved) as coordinator, pytest.raises(ApiError) as caught:
            Client(coordinator.url, TOKEN).upload_blob(blob, sha)
    assert caught.value.status == 307 and elsewhere.requests == []


@pytest.mark.parametrize("coordinator", ["local disk", "before direct uploads", "object store"])
def test_a_coordinator_without_a_store_is_asked_for_a_presigned_upload_once(tmp_path: Path, coordinator: str) -> None:
    """A coordinator's storage is set when it starts: once it answered that blobs come to it (``{"url": null}``, or
    404 from one older than direct uploads), the client PUTs the next blobs straight away; on an object store each
    blob has a presigned PUT of its own."""
    blobs = []
    for n in range(3):
        blob = tmp_path / f"{n}.bin"
        blob.write_bytes(bytes([n]) * 1000)
        blobs.append((blob, hashlib.sha256(blob.read_bytes()).hexdigest()))
    where: dict[str, str] = {}

    def script(method: str, path: str, _n: int) -> Answer:
        sha = path.split("/")[4] if path.startswith("/api/v1/blobs/") else path.rsplit("/", 1)[-1]
        if method == "POST" and path.endswith("/uploads"):
            if coordinator == "local disk":
                return ok({"url": None})
            if coordinator == "before direct uploads":
                return Answer(404, b'{"error": {"code": "not_found", "message": "no such endpoint"}}')
            return Answer(201, json.dumps({"url": f"{where['url']}/store/{sha}", "method": "PUT", "headers": {},
                                           "upload": "handle-1"}).encode())
        return ok({"sha256": sha, "size": 1000})  # a PUT here or to the store, or the confirmation

    with scripted_server(script) as server:
        where["url"] = server.url
        client = Client(server.url, TOKEN)
        for blob, sha in blobs:
            assert client.upload_blob(blob, sha) == {"sha256": sha, "size": 1000}
        asked = [seen.path for seen in server.requests if seen.method == "POST" and seen.path.endswith("/uploads")]
        put = sorted(seen.path for seen in server.requests if seen.method == "PUT")
    shas = [sha for _blob, sha in blobs]
    if coordinator == "object store":
        assert asked == [f"/api/v1/blobs/{sha}/uploads" for sha in shas]
        assert put == sorted(f"/store/{sha}" for sha in shas)
    else:
        assert asked == [f"/api/v1/blobs/{shas[0]}/uploads"]
        assert put == sorted(f"/api/v1/blobs/{sha}" for sha in shas)
