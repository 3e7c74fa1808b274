"""S3-compatible storage against a real moto server, a real coordinator and a real worker agent rendering with
Blender.

Before: ``--storage`` took only ``file://``, so every byte sat on the coordinator's disk and passed through it.
Now ``--storage s3://bucket/prefix`` keeps the scene and the frames in the bucket, and a frame or scene download is
a redirect to a short-lived presigned URL of the store. The store sits behind a recording proxy here, so the test
sees every request that reaches it: no bearer token of Framehive ever does.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from framehive.addon.client import Client
from framehive.protocol import messages as m
from PIL import Image

from tests.farm import Farm
from tests.live import mint_tokens
from tests.protocol_worker import ProtocolWorker, png
from tests.s3 import MotoServer

RENDER_TIMEOUT = 150
PREFIX = "fh/blobs"


class RecordingProxy(ThreadingHTTPServer):
    """A loopback HTTP proxy in front of the store that keeps every request's method, path and headers."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream_port = upstream_port
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    server: RecordingProxy

    def _forward(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=30)
        upstream.request(self.command, self.path, body=body, headers=dict(self.headers))  # Host kept: signatures
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _forward

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer.running() as server:
        yield server


@pytest.fixture
def store(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, RecordingProxy]]:
    """A fresh bucket; the AWS_* environment (the coordinator's too) points boto3 at the recording proxy."""
    proxy = RecordingProxy(moto.port)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    for name, value in {**moto.environment(), "AWS_ENDPOINT_URL": proxy.url}.items():
        monkeypatch.setenv(name, value)
    yield moto.create_bucket(), proxy
    proxy.shutdown()
    proxy.server_close()


@pytest.fixture
def s3_farm(tmp_path: Path, store: tuple[str, RecordingProxy]) -> Iterator[Farm]:
    farm = Farm(tmp_path / "farm", coordinator_args=["--storage", f"s3://{store[0]}/{PREFIX}"])
    farm.start_coordinator()
    yield farm
    farm.stop()


def keys(moto: MotoServer, bucket: str) -> set[str]:
    listed = moto.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return {entry["Key"] for entry in listed}


def key(sha: str) -> str:
    return f"{PREFIX}/{sha[:2]}/{sha[2:]}"


def test_a_job_renders_on_s3_and_frames_are_redirects_to_the_store(
        s3_farm: Farm, store: tuple[str, RecordingProxy], moto: MotoServer, tmp_path: Path,
        sample_scene: Path) -> None:
    bucket, proxy = store
    # Two owners, neither trusted: one renders the task, the other's agent checks it (a new renderer's every task).
    tokens = mint_tokens(s3_farm, trusted_workers=False, alice=("user", "alice"), owner=("worker", "owner"),
                         other=("worker", "other"))
    alice = Client(s3_farm.url, tokens["alice"])
    job = alice.submit(sample_scene, frames="1-2", chunk=2)
    s3_farm.start_worker("box", tokens["owner"])
    s3_farm.start_worker("other-box", tokens["other"])
    done = alice.wait(job["id"], poll=0.2, timeout=RENDER_TIMEOUT)
    assert done["state"] == "completed", (done, s3_farm.logs())
    # An audit (a later second look, drawn at random) may still wait when the job completes; every other check has
    # passed, and nothing decided has failed.
    assert done["checks"] and all(c["verdict"] == "pass" for c in done["checks"] if c["kind"] != "audit"), done
    assert all(c["verdict"] in ("pass", None) for c in done["checks"]), done["checks"]

    frames = [entry["sha256"] for entry in done["frame_states"]]
    stored = keys(moto, bucket)
    assert {key(job["scene"]), *map(key, frames)} <= stored, stored
    local = s3_farm.data_dir / "blobs"
    assert not any(path.is_file() for sha in [job["scene"], *frames] for path in local.rglob(sha[2:])), \
        "no byte of the scene or the frames is kept on the coordinator's disk"

    answer = requests.get(f"{s3_farm.url}/api/v1/jobs/{job['id']}/frames/1", allow_redirects=False, timeout=30,
                          headers={"Authorization": f"Bearer {tokens['alice']}"})
    assert answer.status_code == 307 and answer.headers["Location"].startswith(f"{proxy.url}/{bucket}/{key(frames[0])}")
    direct = requests.get(answer.headers["Location"], timeout=30)  # the URL alone is the credential
    assert direct.headers["Content-Type"] == "image/png" and hashlib.sha256(direct.content).hexdigest() == frames[0]
    got = alice.download_frame(job["id"], 1, tmp_path / "frame1.png", expected_sha256=frames[0])
    assert hashlib.sha256(got.read_bytes()).hexdigest() == frames[0]

    staged = [path for method, path, _ in proxy.seen if method == "PUT" and "/incoming/" in path]
    assert all(any(f"/incoming/{sha}-" in path for path in staged) for sha in [job["scene"], *frames]), \
        "the artist's scene and the worker's frames went straight to the store (presigned PUTs)"
    assert [path for method, path, _ in proxy.seen if method == "PUT" and "/incoming/" in path
            and all(f"/incoming/{sha}-" not in path for sha in [job["scene"], *frames])], \
        "the verifier's region render went straight to the store too"
    assert s3_farm.coordinator is not None
    assert "PUT /api/v1/worker/checks/" not in s3_farm.coordinator.log_text(), "no check byte came to the coordinator"
    assert "PUT /api/v1/worker/tasks/" not in s3_farm.coordinator.log_text(), "no frame byte came to the coordinator"
    presigned = [path for method, path, _ in proxy.seen if method == "GET" and "X-Amz-Signature=" in path]
    assert any(key(job["scene"]) in path for path in presigned), "the worker fetched the scene from the store"
    assert any(key(frames[0]) in path for path in presigned), "the artist fetched the frame from the store"
    leaked = [(method, path) for method, path, headers in proxy.seen
              if any(token in value for value in headers.values() for token in tokens.values())]
    assert leaked == [], "a Framehive token reached the store"


# Direct uploads: the bytes go to the store under a presigned PUT, the coordinator confirms them after.
# moto's server stores whatever body comes under a presigned URL (it checks neither the signed checksum nor the
# length), like a store without checksum support: only the coordinator's confirmation stands between junk and a blob.

def begin(url: str, token: str, sha: str, size: int, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(url, json={"size": size}, timeout=30,
                         headers={"Authorization": f"Bearer {token}", **(headers or {})})


def test_a_wrong_body_under_a_presigned_url_is_refused_at_confirmation(
        s3_farm: Farm, store: tuple[str, RecordingProxy], moto: MotoServer) -> None:
    bucket, _proxy = store
    alice = mint_tokens(s3_farm, alice=("user", "alice"))["alice"]
    data, junk = os.urandom(5000), os.urandom(5000)
    sha = hashlib.sha256(data).hexdigest()
    blobs = f"{s3_farm.url}/api/v1/blobs/{sha}/uploads"
    handed = begin(blobs, alice, sha, len(data))
    assert handed.status_code == 201, handed.text
    direct = handed.json()
    assert "X-Amz-Signature=" in direct["url"] and "/incoming/" in direct["url"] and key(sha) not in direct["url"]
    assert direct["headers"]["x-amz-checksum-sha256"] == base64.b64encode(bytes.fromhex(sha)).decode()
    put = requests.put(direct["url"], data=junk, headers=direct["headers"], timeout=30)
    assert put.status_code == 200, "moto took the wrong body (a store that checks would refuse it here)"

    confirmed = begin(f"{blobs}/{direct['upload']}", alice, sha, len(data))
    assert (confirmed.status_code, confirmed.json()["error"]["code"]) == (400, "hash_mismatch"), confirmed.text
    assert Client(s3_farm.url, alice).missing_blobs([sha]) == [sha], "the junk did not become the blob"
    assert not any("/incoming/" in name or name == key(sha) for name in keys(moto, bucket)), keys(moto, bucket)

    again = begin(blobs, alice, sha, len(data)).json()  # the honest upload still works
    assert requests.put(again["url"], data=data, headers=again["headers"], timeout=30).status_code == 200
    stored = begin(f"{blobs}/{again['upload']}", alice, sha, len(data))
    assert stored.status_code == 201 and stored.json() == {"sha256": sha, "size": len(data), "existed": False}
    assert moto.client().get_object(Bucket=bucket, Key=key(sha))["Body"].read() == data
    assert not any("/incoming/" in name for name in keys(moto, bucket)), "the staged copy is gone"


def test_a_presigned_put_cannot_overwrite_another_accounts_blob(
        s3_farm: Farm, store: tuple[str, RecordingProxy], moto: MotoServer, tmp_path: Path) -> None:
    bucket, _proxy = store
    tokens = mint_tokens(s3_farm, alice=("user", "alice"), mallory=("user", "mallory"))
    data = os.urandom(3000)
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "blob").write_bytes(data)
    assert Client(s3_farm.url, tokens["alice"]).upload_blob(tmp_path / "blob", sha)["size"] == len(data)
    direct = begin(f"{s3_farm.url}/api/v1/blobs/{sha}/uploads", tokens["mallory"], sha, len(data)).json()
    assert direct["url"] is not None, "missing for mallory: she is handed an upload (to her own staging key)"
    requests.put(direct["url"], data=b"\0" * len(data), headers=direct["headers"], timeout=30)
    assert moto.client().get_object(Bucket=bucket, Key=key(sha))["Body"].read() == data, "alice's blob is intact"


def test_a_workers_frame_goes_to_the_store_and_a_wrong_one_is_refused_at_confirmation(
        s3_farm: Farm, store: tuple[str, RecordingProxy], moto: MotoServer, sample_scene: Path) -> None:
    bucket, proxy = store
    tokens = mint_tokens(s3_farm, alice=("user", "alice"), owner=("worker", "owner"))
    job = Client(s3_farm.url, tokens["alice"]).submit(sample_scene, frames="1", chunk=1)
    agent = ProtocolWorker(s3_farm.url, tokens["owner"], "direct")
    try:
        order = agent.receive_alive(timeout=30)
        assert isinstance(order, m.Assign) and order.job_id == job["id"], order
        frame, other = png(colour=(10, 200, 30)), png(colour=(200, 10, 30))
        sha = hashlib.sha256(frame).hexdigest()
        path = s3_farm.url + order.upload_url.replace("{frame}", "1")
        where, query = path.split("?")
        headers = {"X-Framehive-Worker": str(agent.worker_id), "X-Content-SHA256": sha}
        direct = begin(f"{where}/uploads?{query}", tokens["owner"], sha, len(frame), headers).json()
        assert "/incoming/" in direct["url"], direct
        requests.put(direct["url"], data=other.ljust(len(frame), b"\0")[:len(frame)], headers=direct["headers"],
                     timeout=30)
        confirm = f"{where}/uploads/{direct['upload']}?{query}"
        refused = begin(confirm, tokens["owner"], sha, len(frame), headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, "hash_mismatch"), refused.text
        assert requests.get(f"{s3_farm.url}/api/v1/jobs/{job['id']}", timeout=30, headers={
            "Authorization": f"Bearer {tokens['alice']}"}).json()["frame_states"][0]["sha256"] is None

        direct = begin(f"{where}/uploads?{query}", tokens["owner"], sha, len(frame), headers).json()
        assert requests.put(direct["url"], data=frame, headers=direct["headers"], timeout=30).status_code == 200
        taken = begin(f"{where}/uploads/{direct['upload']}?{query}", tokens["owner"], sha, len(frame), headers)
        assert (taken.status_code, taken.json()) == (201, {"accepted": True}), taken.text
        assert moto.client().get_object(Bucket=bucket, Key=key(sha))["Body"].read() == frame
        assert not any("/incoming/" in name for name in keys(moto, bucket)), keys(moto, bucket)
        tokens_seen = [path for method, path, headers in proxy.seen
                       if any(token in value for value in headers.values() for token in tokens.values())]
        assert tokens_seen == [], "a Framehive token reached the store"
    finally:
        agent.close()


def test_an_unconfirmed_direct_upload_is_swept_and_blobs_stay(moto: MotoServer) -> None:
    from framehive.coordinator.storage import S3Storage

    bucket = moto.create_bucket()
    storage = S3Storage(bucket, PREFIX, client=moto.client())
    kept, junk = os.urandom(100), os.urandom(200)
    storage.put(hashlib.sha256(kept).hexdigest(), io.BytesIO(kept), len(kept))
    direct = storage.presigned_put(hashlib.sha256(junk).hexdigest(), len(junk), "application/octet-stream")
    assert direct is not None
    assert requests.put(direct.url, data=junk, headers=direct.headers, timeout=30).status_code == 200
    assert storage.sweep_staged() == 0, "a fresh staged upload may still be confirmed"
    assert storage.sweep_staged(older_than=-60) == 1
    assert keys(moto, bucket) == {key(hashlib.sha256(kept).hexdigest())}


def test_a_verifiers_result_goes_to_the_store_and_a_wrong_one_is_refused_at_confirmation(
        s3_farm: Farm, store: tuple[str, RecordingProxy], moto: MotoServer, sample_scene: Path) -> None:
    bucket, proxy = store
    tokens = mint_tokens(s3_farm, trusted_workers=False, alice=("user", "alice"), one=("worker", "owner-1"),
                         two=("worker", "owner-2"))
    alice = Client(s3_farm.url, tokens["alice"])
    job = alice.submit(sample_scene, frames="1", chunk=1, policy="full")  # its frame is checked
    renderer = ProtocolWorker(s3_farm.url, tokens["one"], "renderer", roles=("render",))
    verifier = ProtocolWorker(s3_farm.url, tokens["two"], "verifier", roles=("verify",))
    try:
        order = renderer.receive_alive(timeout=30)
        assert isinstance(order, m.Assign) and order.job_id == job["id"], order
        colour = (10, 200, 30)
        frame = io.BytesIO()
        Image.new("RGB", (64, 36), colour).save(frame, "PNG", compress_level=1)  # other bytes than the result's
        assert renderer.upload(order, 1, frame.getvalue()).status_code == 201
        renderer.send(m.TaskDone(task_id=order.task_id, attempt=order.attempt))
        verify = verifier.receive_alive(timeout=60)
        assert isinstance(verify, m.Verify) and verify.job_id == job["id"], verify
        _x, _y, width, height = verify.rect
        result = png(width, height, colour)  # the region of a flat frame: what an honest verifier renders
        sha = hashlib.sha256(result).hexdigest()
        where = s3_farm.url + verify.upload_url
        headers = {"X-Framehive-Worker": str(verifier.worker_id), "X-Content-SHA256": sha}

        direct = begin(f"{where}/uploads", tokens["two"], sha, len(result), headers)
        assert direct.status_code == 201 and "/incoming/" in direct.json()["url"], direct.text
        junk = png(width, height, (200, 10, 30)).ljust(len(result), b"\0")[:len(result)]
        requests.put(direct.json()["url"], data=junk, headers=direct.json()["headers"], timeout=30)
        refused = begin(f"{where}/uploads/{direct.json()['upload']}", tokens["two"], sha, len(result), headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, "hash_mismatch"), refused.text
        check = alice.job(job["id"])["checks"][0]
        assert (check["state"], check["verdict"]) == ("leased", None), "the check was not judged on the junk"
        assert not any("/incoming/" in name for name in keys(moto, bucket)), keys(moto, bucket)

        seen = len(proxy.seen)  # the store's requests from here on are the honest upload's
        direct = begin(f"{where}/uploads", tokens["two"], sha, len(result), headers).json()
        assert requests.put(direct["url"], data=result, headers=direct["headers"], timeout=30).status_code == 200
        taken = begin(f"{where}/uploads/{direct['upload']}", tokens["two"], sha, len(result), headers)
        assert (taken.status_code, taken.json()) == (201, {"accepted": True}), taken.text
        check = alice.job(job["id"])["checks"][0]
        assert (check["state"], check["verdict"]) == ("done", "pass"), check
        assert moto.client().get_object(Bucket=bucket, Key=key(sha))["Body"].read() == result, "the render is kept"
        assert not any("/incoming/" in name for name in keys(moto, bucket)), keys(moto, bucket)
        written = [path for method, path, headers in proxy.seen[seen:] if method == "PUT" and path.startswith(
            f"/{bucket}/{key(sha)}") and not any(name.lower() == "x-amz-copy-source" for name in headers)]
        assert written == [], "the coordinator sent the store no byte of the render: it copied the staged object"
        assert [path for method, path, _ in proxy.seen if method == "PUT" and f"/incoming/{sha}-" in path], \
            "the verifier's bytes went to the store"
        tokens_seen = [path for method, path, headers in proxy.seen
                       if any(token in value for value in headers.values() for token in tokens.values())]
        assert tokens_seen == [], "a Framehive token reached the store"
    finally:
        renderer.close()
        verifier.close()
