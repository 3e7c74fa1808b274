"""Tests of the artist-side client and the ``framehive`` command that need no coordinator at all.

Argument parsing, scene checks, hashing, error texts, progress display, and what happens when nothing
listens. Everything that talks to a coordinator runs against the real one in ``test_client_live.py``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from framehive.addon import cli, client
from framehive.addon.cli import StatusLine, format_elapsed, format_progress, main, progress_key
from framehive.addon.client import ApiError, Client, ConnectionFailed, InvalidSetting, sha256_file

import framehive

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


def test_importing_the_cli_loads_only_the_standard_library_and_requests() -> None:
    # The client ships inside the Blender add-on, where bpy (outside Blender) does not exist and of the third-party
    # packages only those Blender bundles do: requests (and what it imports).
    code = (
        "import sys\n"
        "import requests\n"
        "before = set(sys.modules)\n"
        "import framehive.addon.cli\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names) - {'framehive'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_manifest_matches_client_and_blender_limits() -> None:
    manifest = tomllib.loads((REPO / "addon" / "blender_manifest.toml").read_text())
    assert manifest["id"] == "framehive"
    assert manifest["version"] == "0.0.0"  # the built zip carries framehive.__version__ (tests/addon/test_extension.py)
    assert framehive.__version__ == client.CLIENT_VERSION
    assert manifest["blender_version_min"] == "4.2.0"
    # Blender refuses to build an extension whose tagline or permission reasons exceed 64 characters
    # or end in punctuation.
    for text in [manifest["tagline"], *manifest["permissions"].values()]:
        assert len(text) <= 64 and text[-1].isalnum(), text


# ---------------------------------------------------------------------- arguments and environment


def test_submit_arguments_are_parsed() -> None:
    args = cli.build_parser().parse_args(
        ["submit", "s.blend", "--coordinator", "http://c:8000", "--token", "t", "--frames", "1-24"]
        + ["--chunk", "4", "--priority", "70", "--name", "shot", "--wait", "--out", "frames", "--allow-outside"]
    )
    assert (args.scene, args.frames, args.chunk, args.priority) == (Path("s.blend"), "1-24", 4, 70)
    assert (args.name, args.wait, args.out) == ("shot", True, Path("frames"))
    assert (args.coordinator, args.token) == ("http://c:8000", "t")
    assert (args.allow_outside, args.allow_missing) == (True, False), "nothing from outside goes unless asked"
    defaults = cli.build_parser().parse_args(["submit", "s.blend"])
    assert (defaults.allow_outside, defaults.allow_missing) == (False, False)


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


def test_wait_gives_up_on_a_coordinator_that_stays_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "RECONNECT_GRACE", 0.05)
    with pytest.raises(ConnectionFailed):
        Client(f"http://127.0.0.1:{closed_port()}", TOKEN, timeout=2).wait(1, poll=0.01)


def test_client_rejects_url_without_scheme() -> None:
    with pytest.raises(ValueError, match="http://"):
        Client("render-box:8000", TOKEN)


# ---------------------------------------------------------------------- settings checked before anything is sent


@pytest.mark.parametrize(("token", "problem"), [
    ("fhu_abc\ndef", "a line break (character 8)"),
    ("fhu_abc\r\ndef", "a line break (character 8)"),
    ("fhu_abc def", "a space or tab (character 8)"),
    ("fhu_ab\tc", "a space or tab (character 7)"),
    ("fhu_\x00abc", "a control character (character 5)"),
    ("fhu_\x7fabc", "a control character (character 5)"),
    ("fhu_ab€c", "a non-ASCII character (character 7)"),
    ("fhu_ab\u00a0c", "a non-ASCII character (character 7)"),  # a non-breaking space from a web page
], ids=["newline", "crlf", "space", "tab", "nul", "del", "euro", "nbsp"])
def test_a_token_no_coordinator_issues_is_refused_before_anything_is_sent(token: str, problem: str) -> None:
    # Sent as it is, it would fail deep in http.client with a bare ValueError ("Invalid header value").
    with pytest.raises(InvalidSetting) as caught:
        Client("http://render.example:8400", token)
    error = caught.value
    assert isinstance(error, ApiError) and isinstance(error, ValueError)
    assert (error.status, error.code) == (0, "bad_token")
    assert error.message == (f"the token contains {problem}, which tokens never have: paste it again "
                             "(it looks like fhu_...)")
    assert "abc" not in str(error), "the token itself is never shown"


@pytest.mark.parametrize(("url", "problem"), [
    ("", "no coordinator URL given (e.g. http://render.example:8400)"),
    ("render.example:8400", "the coordinator URL must start with http:// or https://, got 'render.example:8400'"),
    ("ftp://render.example", "the coordinator URL must start with http:// or https://, got 'ftp://render.example'"),
    ("http://render example:8400", "the coordinator URL 'http://render example:8400' contains a space or tab "
                                   "(character 14): type it again"),
    ("http://render.example\n:8400", "the coordinator URL 'http://render.example\\n:8400' contains a line break "
                                     "(character 22): type it again"),
    ("http://rénder.example", "the coordinator URL 'http://rénder.example' contains a non-ASCII character "
                              "(character 9): type it again"),
    ("http://render.example:99999", "the coordinator URL 'http://render.example:99999' has an invalid port"),
    ("http://:8400", "the coordinator URL 'http://:8400' has no host name"),
    ("http://alice:pw@render.example", "the coordinator URL 'http://alice:pw@render.example' may only have a "
                                       "scheme, a host, a port and a path (no user name, ?query or #fragment)"),
    ("http://render.example/?x=1", "the coordinator URL 'http://render.example/?x=1' may only have a scheme, a "
                                   "host, a port and a path (no user name, ?query or #fragment)"),
    ("http://render.example#top", "the coordinator URL 'http://render.example#top' may only have a scheme, a "
                                  "host, a port and a path (no user name, ?query or #fragment)"),
], ids=["empty", "no-scheme", "ftp", "space", "newline", "non-ascii", "port", "no-host", "user", "query",
        "fragment"])
def test_a_url_that_cannot_be_the_coordinators_is_refused(url: str, problem: str) -> None:
    with pytest.raises(InvalidSetting) as caught:
        Client(url, TOKEN)
    assert (caught.value.status, caught.value.code, caught.value.message) == (0, "bad_url", problem)


def test_blanks_around_url_and_token_are_dropped() -> None:
    client = Client("  https://render.example:8400/farm//\n", "  fhu_abc\r\n")
    assert (client.base_url, client.token) == ("https://render.example:8400/farm", "fhu_abc")
    assert Client("http://render.example", "  \n").token is None, "a blank token is no token (health needs none)"


def test_cli_a_mangled_token_is_one_line_exit_2(no_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "--coordinator", "http://127.0.0.1:9", "--token", "fhu_a\nb"]) == 2
    err = capsys.readouterr().err
    assert err == ("framehive: the token contains a line break (character 6), which tokens never have: paste it "
                   "again (it looks like fhu_...)\n")


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
        "job 7 running 01:05 [##------------------] 2/20 frames 10%  queued 11, rendering 1, rendered 6, verified 2"
    )


def test_progress_line_counts_from_frame_states_and_empty_job() -> None:
    job = {"id": 1, "state": "queued", "frame_states": [{"frame": 1, "state": "verified"}, {"frame": 2}]}
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
    assert "2/20 done" in summary and "3 (done 2, leased 1)" in summary and "Blender crashed" in summary
    table = cli.format_job_list([job, {"id": 12, "state": "queued", "total": 3, "counts": {}, "name": "x"}])
    assert re.search(r"^7 +running +2/20 ", table.splitlines()[1])
    assert cli.format_job_list([]) == "no jobs"
