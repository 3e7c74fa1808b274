"""Tests of the artist-side client and the ``framehive`` command that need no real coordinator.

Most use no network at all. The last section runs the Client against a tiny stand-in coordinator (standard
library HTTP server on loopback, in this process) to pin down the wire details: headers, streamed uploads,
error bodies, atomic and verified downloads. Tests against the real coordinator live with the integration
tests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from addon import cli, client
from addon.cli import StatusLine, format_elapsed, format_progress, main, progress_key
from addon.client import ApiError, Client, ConnectionFailed, sha256_file

REPO = Path(__file__).resolve().parents[2]
TOKEN = "secret-token"


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own FRAMEHIVE_* variables must not leak into the tests."""
    monkeypatch.delenv(cli.ENV_COORDINATOR, raising=False)
    monkeypatch.delenv(cli.ENV_TOKEN, raising=False)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Replace the CLI's Client with one that records its creation and fails on any request."""
    created: list[tuple[str, str]] = []

    class NoNetworkClient:
        def __init__(self, url: str, token: str) -> None:
            created.append((url, token))

        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the command used the network: Client.{name}")

    monkeypatch.setattr(cli, "Client", NoNetworkClient)
    return created


@pytest.fixture
def blend(tmp_path: Path) -> Path:
    path = tmp_path / "shot.blend"
    path.write_bytes(b"BLENDER-v402REND" + bytes(range(256)) * 64)
    return path


def closed_port() -> int:
    """A loopback port that nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------- package


def test_importing_the_cli_loads_only_the_standard_library() -> None:
    # The client ships inside the Blender add-on, where neither bpy (outside Blender) nor requests exist.
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import addon.cli\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names) - {'addon'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_manifest_matches_client_and_blender_limits() -> None:
    manifest = tomllib.loads((REPO / "addon" / "blender_manifest.toml").read_text())
    assert manifest["id"] == "framehive"
    assert manifest["version"] == client.CLIENT_VERSION
    assert manifest["blender_version_min"] == "4.2.0"
    # Blender refuses to build an extension whose tagline or permission reasons exceed 64 characters
    # or end in punctuation.
    for text in [manifest["tagline"], *manifest["permissions"].values()]:
        assert len(text) <= 64 and text[-1].isalnum(), text


# ---------------------------------------------------------------------- arguments and environment


def test_submit_arguments_are_parsed() -> None:
    args = cli.build_parser().parse_args(
        ["submit", "s.blend", "--coordinator", "http://c:8000", "--token", "t", "--frames", "1-24"]
        + ["--chunk", "4", "--priority", "70", "--name", "shot", "--wait", "--out", "frames"]
    )
    assert (args.scene, args.frames, args.chunk, args.priority) == (Path("s.blend"), "1-24", 4, 70)
    assert (args.name, args.wait, args.out) == ("shot", True, Path("frames"))
    assert (args.coordinator, args.token) == ("http://c:8000", "t")


@pytest.mark.parametrize(
    "argv", [["status", "3"], ["download", "3", "--out", "d"], ["cancel", "3"], ["jobs"], ["submit", "a.blend"]]
)
def test_every_subcommand_accepts_coordinator_and_token(argv: list[str]) -> None:
    args = cli.build_parser().parse_args([*argv, "--coordinator", "http://c", "--token", "t"])
    assert (args.coordinator, args.token) == ("http://c", "t")


@pytest.mark.parametrize("argv", [["status", "abc"], ["status", "0"], ["download", "3"], ["frobnicate"], []])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_environment_supplies_coordinator_and_token() -> None:
    args = cli.build_parser().parse_args(["jobs"])
    env = {cli.ENV_COORDINATOR: "http://env:8000", cli.ENV_TOKEN: "env-token"}
    assert cli.resolve_connection(args, env) == ("http://env:8000", "env-token")


def test_options_win_over_environment() -> None:
    args = cli.build_parser().parse_args(["jobs", "--coordinator", "http://opt", "--token", "opt"])
    env = {cli.ENV_COORDINATOR: "http://env", cli.ENV_TOKEN: "env"}
    assert cli.resolve_connection(args, env) == ("http://opt", "opt")


def test_main_uses_environment(
    no_env: None, no_network: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch, blend: Path
) -> None:
    monkeypatch.setenv(cli.ENV_COORDINATOR, "http://env:8000")
    monkeypatch.setenv(cli.ENV_TOKEN, "env-token")
    with pytest.raises(AssertionError, match="used the network"):
        main(["jobs"])
    assert no_network == [("http://env:8000", "env-token")]


@pytest.mark.parametrize(
    ("options", "missing"),
    [
        (["--token", "t"], "--coordinator URL or set FRAMEHIVE_COORDINATOR"),
        (["--coordinator", "http://c"], "--token TOKEN or set FRAMEHIVE_TOKEN"),
        ([], "--coordinator URL or set FRAMEHIVE_COORDINATOR"),
    ],
)
def test_missing_connection_settings_exit_2(
    no_env: None,
    no_network: list[tuple[str, str]],
    blend: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    missing: str,
) -> None:
    assert main(["submit", str(blend), *options]) == 2
    err = capsys.readouterr().err
    assert missing in err and "Traceback" not in err
    assert no_network == []


def test_coordinator_url_without_scheme_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "--coordinator", "localhost:8000", "--token", "t"]) == 2
    assert "http://" in capsys.readouterr().err


# ---------------------------------------------------------------------- scene checks


@pytest.mark.parametrize(
    "content",
    [b"BLENDER-v402", b"\x28\xb5\x2f\xfd" + b"\0" * 16, gzip.compress(b"BLENDER-v279")],
    ids=["plain", "zstd", "gzip"],
)
def test_blend_headers_are_accepted(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "scene.blend"
    path.write_bytes(content)
    cli.check_blend(path)  # no exception


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"hello, not blender", "not a .blend file"), (b"", "not a .blend file"), (None, "no such file")],
)
def test_non_blend_rejected_before_any_network_use(
    tmp_path: Path,
    no_network: list[tuple[str, str]],
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    message: str,
) -> None:
    path = tmp_path / "notes.blend"
    if content is not None:
        path.write_bytes(content)
    code = main(["submit", str(path), "--coordinator", "http://127.0.0.1:9", "--token", "t"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_directory_is_not_a_scene(tmp_path: Path, no_network: list[tuple[str, str]]) -> None:
    assert main(["submit", str(tmp_path), "--coordinator", "http://c", "--token", "t"]) == 2


def test_out_without_wait_is_a_usage_error(
    blend: Path, no_network: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["submit", str(blend), "--out", "d", "--coordinator", "http://c", "--token", "t"]) == 2
    assert "--out needs --wait" in capsys.readouterr().err


# ---------------------------------------------------------------------- hashing and errors


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    # Several 1 MiB chunks plus a ragged tail, so chunk boundaries are exercised.
    data = (bytes(range(251)) * 11_000)[: 3 * client.CHUNK_SIZE + 12_345]
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sha256_file(empty) == hashlib.sha256(b"").hexdigest()


def test_api_error_text() -> None:
    error = ApiError(401, "bad_token", "the token is not valid", {"hint": "x"})
    assert str(error) == "bad_token: the token is not valid (HTTP 401)"
    assert (error.status, error.code, error.message, error.details) == (401, "bad_token", error.message, {"hint": "x"})
    assert str(ApiError(0, "hash_mismatch", "bytes differ")) == "hash_mismatch: bytes differ"


def test_connection_failed_names_the_url() -> None:
    port = closed_port()
    with pytest.raises(ConnectionFailed) as caught:
        Client(f"http://127.0.0.1:{port}/", TOKEN, timeout=5).health()
    error = caught.value
    assert isinstance(error, ApiError)
    assert (error.status, error.code) == (0, "unreachable")
    assert f"http://127.0.0.1:{port}/api/v1/health" in str(error)
    assert str(error).startswith("unreachable: cannot reach the coordinator at")


def test_cli_unreachable_coordinator_is_one_line_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    assert main(["jobs", "--coordinator", f"http://127.0.0.1:{port}", "--token", "t"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"127.0.0.1:{port}" in err and "is it running?" in err


def test_client_rejects_url_without_scheme() -> None:
    with pytest.raises(ValueError, match="http://"):
        Client("render-box:8000", TOKEN)


# ---------------------------------------------------------------------- progress display

JOB = {
    "id": 7,
    "name": "shot",
    "state": "running",
    "total": 20,
    "frames": "1-20",
    "counts": {"verified": 2, "failed": 0, "queued": 11, "rendering": 1, "rendered": 6},
}


def test_progress_line() -> None:
    line = format_progress(JOB, 65.4)
    assert line == (
        "job 7 running 01:05 [########------------] 8/20 frames 40%  queued 11, rendering 1, rendered 6, verified 2"
    )


def test_progress_line_counts_from_frame_states_and_empty_job() -> None:
    job = {"id": 1, "state": "queued", "frame_states": [{"frame": 1, "state": "rendered"}, {"frame": 2}]}
    assert "1/2 frames 50%" in format_progress(job, 0)
    empty = format_progress({"id": 2, "state": "queued", "total": 0, "counts": {}}, 0)
    assert "0/0 frames -" in empty and "[--------------------]" in empty


@pytest.mark.parametrize(("seconds", "text"), [(0, "00:00"), (59.9, "00:59"), (61, "01:01"), (3725, "1:02:05")])
def test_elapsed(seconds: float, text: str) -> None:
    assert format_elapsed(seconds) == text


def test_progress_key_ignores_the_clock() -> None:
    assert progress_key(JOB) == progress_key(dict(JOB))
    assert progress_key(JOB) != progress_key({**JOB, "counts": {**JOB["counts"], "queued": 10}})


def test_status_line_without_terminal_prints_each_change_once() -> None:
    stream = io.StringIO()
    line = StatusLine(stream)
    assert not line.tty
    for text, key in [("a 00:01", 1), ("a 00:02", 1), ("b 00:03", 2)]:
        line.show(text, key=key)
    line.finish()
    assert stream.getvalue() == "a 00:01\nb 00:03\n"


def test_status_line_on_terminal_redraws_in_place() -> None:
    stream = io.StringIO()
    line = StatusLine(stream, tty=True)
    line.show("a longer line")
    line.show("short")
    line.finish()
    assert stream.getvalue() == "\ra longer line\rshort        \n"


def test_summary_and_job_list() -> None:
    job = {
        **JOB,
        "priority": 50,
        "chunk": 4,
        "error": "Blender crashed",
        "tasks": [{"state": "done"}, {"state": "leased"}, {"state": "done"}],
    }
    summary = cli.format_summary(job)
    assert summary.splitlines()[0] == "job 7 shot"
    assert "8/20 done" in summary and "3 (done 2, leased 1)" in summary and "Blender crashed" in summary
    table = cli.format_job_list([job, {"id": 12, "state": "queued", "total": 3, "counts": {}, "name": "x"}])
    assert re.search(r"^7 +running +8/20 ", table.splitlines()[1])
    assert cli.format_job_list([]) == "no jobs"


# ---------------------------------------------------------------------- stand-in coordinator


class FakeCoordinator(ThreadingHTTPServer):
    """Just enough of the coordinator's API, in memory, to exercise the client's wire handling."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.blobs: dict[str, bytes] = {}
        self.jobs: dict[int, dict[str, Any]] = {}
        self.frames: dict[tuple[int, int], bytes] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.job_state = "completed"
        self.wrong_frame_hash = False
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        job_id = len(self.jobs) + 1
        frame_states = []
        for frame in (1, 2, 3):
            data = b"\x89PNG\r\n\x1a\n" + f"job {job_id} frame {frame}".encode() * 1000
            self.frames[(job_id, frame)] = data
            sha = hashlib.sha256(data).hexdigest()
            frame_states.append({"frame": frame, "state": "rendered", "sha256": sha, "worker": "w1"})
        job = {"id": job_id, "state": self.job_state, "total": 3, "frame_states": frame_states, **body}
        job["counts"] = {"rendered": 3}
        job["error"] = "out of memory" if self.job_state == "failed" else None
        self.jobs[job_id] = job
        return job


class _Handler(BaseHTTPRequestHandler):
    server: FakeCoordinator

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _route(self, method: str) -> None:
        self.server.requests.append((method, self.path, dict(self.headers)))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/api/v1/health":
            return self._json(200, {"status": "ok"})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._json(401, {"error": {"code": "bad_token", "message": "the token is not valid"}})
        if self.path == "/api/v1/me":  # a proxy's error page, not the coordinator's JSON
            return self._send(502, b"<html>Bad Gateway</html>", "text/html")
        if self.path == "/api/v1/blobs/missing":
            missing = [h for h in json.loads(body)["sha256"] if h not in self.server.blobs]
            return self._json(200, {"missing": missing})
        if method == "PUT" and self.path.startswith("/api/v1/blobs/"):
            digest = self.path.rsplit("/", 1)[1]
            if hashlib.sha256(body).hexdigest() != digest:
                return self._json(400, {"error": {"code": "hash_mismatch", "message": "bytes do not match"}})
            self.server.blobs[digest] = body
            return self._json(201, {"sha256": digest, "size": len(body)})
        if method == "POST" and self.path == "/api/v1/jobs":
            return self._json(201, self.server.create_job(json.loads(body)))
        if self.path == "/api/v1/jobs":
            return self._json(200, {"jobs": list(self.server.jobs.values())})
        if match := re.fullmatch(r"/api/v1/jobs/(\d+)/frames/(\d+)", self.path):
            data = self.server.frames[(int(match[1]), int(match[2]))]
            digest = "0" * 64 if self.server.wrong_frame_hash else hashlib.sha256(data).hexdigest()
            return self._send(200, data, "image/png", {"X-Content-SHA256": digest})
        if (match := re.fullmatch(r"/api/v1/jobs/(\d+)", self.path)) and int(match[1]) in self.server.jobs:
            return self._json(200, self.server.jobs[int(match[1])])
        return self._json(404, {"error": {"code": "not_found", "message": f"no such thing: {self.path}"}})

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def coordinator() -> Iterator[FakeCoordinator]:
    server = FakeCoordinator()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_requests_carry_token_and_user_agent(coordinator: FakeCoordinator) -> None:
    assert Client(coordinator.url, TOKEN).health() == {"status": "ok"}
    headers = coordinator.requests[-1][2]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["User-Agent"] == "framehive-client/0.1.0"


def test_json_error_becomes_api_error(coordinator: FakeCoordinator) -> None:
    with pytest.raises(ApiError) as caught:
        Client(coordinator.url, "wrong").jobs()
    assert str(caught.value) == "bad_token: the token is not valid (HTTP 401)"
    with pytest.raises(ApiError) as caught:
        Client(coordinator.url, TOKEN).job(99)
    assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_non_json_error_gets_a_generic_message(coordinator: FakeCoordinator) -> None:
    with pytest.raises(ApiError) as caught:
        Client(coordinator.url, TOKEN).me()
    assert (caught.value.status, caught.value.code) == (502, "server_error")
    assert "Bad Gateway" in caught.value.message and "<html>" not in caught.value.message


def test_upload_streams_with_content_length(coordinator: FakeCoordinator, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * (10 * 1024)  # 2.5 MiB
    path.write_bytes(data)
    seen: list[tuple[int, int]] = []
    answer = Client(coordinator.url, TOKEN).upload_blob(path, sha256_file(path), progress=lambda *p: seen.append(p))
    assert answer == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    headers = coordinator.requests[-1][2]
    assert headers["Content-Length"] == str(len(data)) and "Transfer-Encoding" not in headers
    assert headers["Content-Type"] == "application/octet-stream"
    assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data)) and len(seen) <= 5


def test_submit_uploads_once_and_omits_unset_fields(coordinator: FakeCoordinator, blend: Path) -> None:
    api = Client(coordinator.url, TOKEN)
    uploads: list[tuple[int, int]] = []
    job = api.submit(blend, frames="1-3", chunk=2, progress=lambda *p: uploads.append(p))
    assert job["scene"] == sha256_file(blend) and job["name"] == "shot" and job["filename"] == "shot.blend"
    assert (job["frames"], job["chunk"]) == ("1-3", 2) and "priority" not in job
    assert uploads, "the first submit uploads the scene"
    api.submit(blend, progress=lambda *p: uploads.append(("again", *p)))
    assert not [u for u in uploads if u[0] == "again"], "a re-submit uploads nothing"
    assert sum(method == "PUT" for method, _, _ in coordinator.requests) == 1


def test_download_job_skips_frames_already_there(coordinator: FakeCoordinator, blend: Path, tmp_path: Path) -> None:
    api = Client(coordinator.url, TOKEN)
    job_id = api.submit(blend)["id"]
    out = tmp_path / "out"
    paths = api.download_job(job_id, out)
    assert [p.name for p in paths] == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    assert paths[1].read_bytes() == coordinator.frames[(job_id, 2)]
    (out / "frame_0003.png").write_bytes(b"truncated")
    assert api.download_job(job_id, out) == [out / "frame_0003.png"]
    assert api.download_job(job_id, out) == []
    assert sorted(p.name for p in out.iterdir()) == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]


def test_hash_mismatch_leaves_no_file(coordinator: FakeCoordinator, blend: Path, tmp_path: Path) -> None:
    api = Client(coordinator.url, TOKEN)
    job_id = api.submit(blend)["id"]
    coordinator.wrong_frame_hash = True
    with pytest.raises(ApiError) as caught:
        api.download_frame(job_id, 1, tmp_path / "f.png")
    assert caught.value.code == "hash_mismatch"
    assert list(tmp_path.iterdir()) == [blend]


def test_cli_submit_wait_downloads_to_default_folder(
    coordinator: FakeCoordinator,
    blend: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["submit", str(blend), "--coordinator", coordinator.url, "--token", TOKEN, "--wait"]) == 0
    out, err = capsys.readouterr()
    assert out == "1\n"
    assert "[####################] 3/3 frames 100%  rendered 3" in err
    assert sorted(p.name for p in (tmp_path / "framehive-output" / "1").iterdir()) == [
        "frame_0001.png",
        "frame_0002.png",
        "frame_0003.png",
    ]


def test_cli_failed_job_exits_1_with_its_error(
    coordinator: FakeCoordinator, blend: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coordinator.job_state = "failed"
    assert main(["submit", str(blend), "--coordinator", coordinator.url, "--token", TOKEN, "--wait"]) == 1
    assert "job 1 failed: out of memory" in capsys.readouterr().err


def test_cli_ctrl_c_while_waiting_leaves_the_job_running(
    coordinator: FakeCoordinator, blend: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "wait", interrupted)
    assert main(["submit", str(blend), "--coordinator", coordinator.url, "--token", TOKEN, "--wait"]) == 130
    assert "job 1 keeps running; `framehive status 1`" in capsys.readouterr().err


def test_cli_bad_token_and_unknown_job_are_one_line(
    coordinator: FakeCoordinator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "5", "--coordinator", coordinator.url, "--token", "nope"]) == 1
    err = capsys.readouterr().err
    assert err == "framehive: bad_token: the token is not valid (HTTP 401); check --token or $FRAMEHIVE_TOKEN\n"
    assert main(["status", "5", "--coordinator", coordinator.url, "--token", TOKEN]) == 1
    assert capsys.readouterr().err.startswith("framehive: not_found:")


def test_cli_jobs_status_and_download(
    coordinator: FakeCoordinator, blend: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connection = ["--coordinator", coordinator.url, "--token", TOKEN]
    assert main(["submit", str(blend), "--name", "hero", *connection]) == 0
    capsys.readouterr()
    assert main(["jobs", *connection]) == 0
    assert re.search(r"^1 +completed +3/3 .* hero$", capsys.readouterr().out.splitlines()[1])
    assert main(["status", "1", "--json", *connection]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "hero"
    assert main(["download", "1", "--out", str(tmp_path / "frames"), *connection]) == 0
    assert "downloaded 3 frame(s)" in capsys.readouterr().err
    assert main(["download", "1", "--out", str(tmp_path / "frames"), *connection]) == 0
    assert "all 3 frame(s) already in" in capsys.readouterr().err


def test_wait_reports_each_poll_and_honours_timeout(coordinator: FakeCoordinator, blend: Path) -> None:
    coordinator.job_state = "running"
    api = Client(coordinator.url, TOKEN)
    job_id = api.submit(blend)["id"]
    updates: list[dict[str, Any]] = []
    with pytest.raises(TimeoutError):
        api.wait(job_id, poll=0.01, on_update=updates.append, timeout=0.05)
    assert len(updates) >= 2 and updates[0]["state"] == "running"
    coordinator.jobs[job_id]["state"] = "cancelled"
    assert api.wait(job_id, poll=0.01)["state"] == "cancelled"


def test_wait_gives_up_on_a_coordinator_that_stays_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "RECONNECT_GRACE", 0.05)
    with pytest.raises(ConnectionFailed):
        Client(f"http://127.0.0.1:{closed_port()}", TOKEN, timeout=2).wait(1, poll=0.01)
