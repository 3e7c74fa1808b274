"""``framehive-worker``'s options: render limits, the coordinator's base URL, the cache folder per OS, and the old
``--token`` form, which still runs (with a warning) against a real coordinator."""

from __future__ import annotations

from pathlib import Path

import pytest
from framehive.addon.client import Client
from framehive.worker_agent import coordinator_urls as urls
from framehive.worker_agent.cli import GB, build_parser, default_cache_dir, render_limits
from framehive.worker_agent.render_limits import DEFAULT_FRAME_SECONDS
from framehive.worker_agent.token_source import ARGV_WARNING

from tests.farm import Farm, wait_for


def test_render_limit_options_reach_the_render_limits() -> None:
    defaults = render_limits(build_parser().parse_args([]))
    assert defaults.memory_bytes is None and defaults.frame_seconds == DEFAULT_FRAME_SECONDS == 240 * 60
    given = render_limits(build_parser().parse_args(["--max-ram", "6.5", "--max-frame-minutes", "30"]))
    assert given.memory_bytes == int(6.5 * GB) and given.frame_seconds == 30 * 60
    unlimited = render_limits(build_parser().parse_args(["--max-ram", "0", "--max-frame-minutes", "0"]))
    assert unlimited.memory_bytes is None and unlimited.frame_seconds is None


@pytest.mark.parametrize(("option", "value"), [("--max-ram", "-1"), ("--max-ram", "lots"),
                                               ("--max-frame-minutes", "nan"), ("--max-frame-minutes", "inf")])
def test_bad_limits_are_refused(option: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([option, value])
    assert option in capsys.readouterr().err


@pytest.mark.parametrize("base", ["http://127.0.0.1:8400", "https://render.example/", "http://host:1/framehive"])
def test_coordinator_base_urls(base: str) -> None:
    assert urls.base_url(base) == base.rstrip("/")
    assert urls.join(base, urls.blob_path("a" * 64)) == base.rstrip("/") + "/api/v1/blobs/" + "a" * 64


@pytest.mark.parametrize("base", ["ftp://host", "host:8400", "http://user@host", "http://host:8400?x=1",
                                  "http://host#f", "http://host/a/../b", "http://host/%2e%2e", "http://host:port",
                                  "http://ho st", "http://host\\x", "http://", "http://h\u00f6st"])
def test_bad_coordinator_urls_are_refused(base: str) -> None:
    with pytest.raises(ValueError):
        urls.base_url(base)


def test_websocket_urls() -> None:
    assert urls.websocket_url("http://h:1/") == "ws://h:1/api/v1/worker/ws"
    assert urls.websocket_url("https://h/fh") == "wss://h/fh/api/v1/worker/ws"


@pytest.mark.parametrize("path", ["/api/v1/blobs/" + "a" * 63, "/api/v1/blobs/x/../../admin",
                                  "/api/v1/worker/tasks/1/frames/2?attempt=1&x=2", "@evil/api/v1/blobs/" + "a" * 64,
                                  "/api/v1/admin/tokens"])
def test_join_takes_only_the_paths_the_agent_builds(path: str) -> None:
    with pytest.raises(urls.RefusedUrl):
        urls.join("http://h", path)


def test_the_cache_folder_is_where_each_os_keeps_caches() -> None:
    assert default_cache_dir("win32", {"LOCALAPPDATA": r"C:\Users\o\AppData\Local"}) == \
        Path(r"C:\Users\o\AppData\Local") / "framehive" / "worker"
    assert default_cache_dir("darwin", {}) == Path.home() / "Library" / "Caches" / "framehive" / "worker"
    assert default_cache_dir("linux", {"XDG_CACHE_HOME": "/c"}) == Path("/c/framehive/worker")
    assert default_cache_dir("linux", {}) == Path.home() / ".cache" / "framehive" / "worker"


def test_the_old_token_option_still_runs_and_warns(farm: Farm) -> None:
    admin = Client(farm.url, farm.token("admin", "root"))
    token = farm.token("worker", "old-script")
    agent = farm._spawn("worker-legacy", [farm.python, "-m", "framehive.worker_agent.cli", "--coordinator", farm.url,
                                          "--token", token, "--name", "legacy", "--threads", "1",
                                          "--cache-dir", str(farm.root / "cache-legacy")])
    wait_for(lambda: any(w["name"] == "legacy" and w["online"] for w in admin.workers()), 90, "the agent online")
    assert ARGV_WARNING in agent.log_text()
