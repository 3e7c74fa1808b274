"""What the add-on's "Test Connection" button says, against a real coordinator on a loopback port (and a plain
static HTTP server standing in for something that is not a coordinator)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from framehive.addon.client import CLIENT_VERSION
from framehive.addon.connection_check import ENABLE_ONLINE_ACCESS, check, compatible

from tests.live import Site, free_port, mint_tokens, running_site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("check-farm"), artist=("user", "artist"),
                      boss=("admin", "boss"), owner=("worker", "gpu-owner")) as site:
        site.tokens.update(mint_tokens(site.farm, revoked=("gone",), gone=("user", "leaver")))
        yield site


class StaticSite:
    """A plain HTTP server whose /api/v1/health is a file we write: not a Framehive coordinator."""

    def __init__(self, root: Path) -> None:
        self.health = root / "api" / "v1" / "health"
        self.health.parent.mkdir(parents=True)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def serve_health(self, body: object) -> None:
        self.health.write_text(json.dumps(body))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def static(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticSite]:
    server = StaticSite(tmp_path_factory.mktemp("static"))
    yield server
    server.close()


# ---------------------------------------------------------------------- answered without the network


def test_online_access_off_is_said_first() -> None:
    verdict = check("http://127.0.0.1:1", "fhu_x", online_access=False)
    assert not verdict.ok
    assert verdict.message == ENABLE_ONLINE_ACCESS
    assert "Allow Online Access" in verdict.message


@pytest.mark.parametrize(("url", "token", "words"), [
    ("", "fhu_x", "enter the coordinator URL"),
    ("   ", "fhu_x", "enter the coordinator URL"),
    ("http://127.0.0.1:1", "", "enter your Framehive token"),
    ("http://127.0.0.1:1", "  \n", "enter your Framehive token"),
])
def test_empty_fields_are_asked_for(url: str, token: str, words: str) -> None:
    verdict = check(url, token)
    assert not verdict.ok and words in verdict.message, verdict


@pytest.mark.parametrize("url", ["ftp://render.example:8400", "render.example:8400", "file:///etc/passwd"])
def test_a_non_http_url_is_refused(url: str) -> None:
    verdict = check(url, "fhu_x")
    assert not verdict.ok
    assert "must start with http:// or https://" in verdict.message and url in verdict.message


@pytest.mark.parametrize("token", ["fhu_abc\ndef", "fhu_abc def", "fhu_ab€c", "fhu_\x00"])
def test_a_mangled_token_is_refused_before_it_is_sent(token: str) -> None:
    # A line break in a header would make the HTTP library raise instead of answering.
    verdict = check("http://127.0.0.1:1", token)
    assert not verdict.ok and "paste it again" in verdict.message, verdict


def test_unreachable_coordinator() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    verdict = check(url, "fhu_x")
    assert not verdict.ok
    assert verdict.message.startswith(f"cannot reach the coordinator at {url}/api/v1/health (")
    assert "check the URL and that the coordinator is running" in verdict.message


# ---------------------------------------------------------------------- a real coordinator


def test_ok_says_the_account_version_and_balance(site: Site) -> None:
    verdict = check(site.url + "/", "  " + site.tokens["artist"] + "\n")  # pasted with blanks around
    assert verdict.ok, verdict
    assert verdict.message == (f"connected to {site.url} (coordinator {CLIENT_VERSION}) as artist; "
                               "balance 1000 points")


def test_balance_in_the_message_is_the_current_one(site: Site) -> None:
    tokens = site.mint(rich=("user", "rich-artist"))
    site.client("boss")._json("POST", "/admin/grants", {"account": "rich-artist", "amount": 234, "memo": "test"})
    verdict = check(site.url, tokens["rich"])
    assert verdict.ok and verdict.message.endswith("as rich-artist; balance 1234 points"), verdict


def test_wrong_token_is_refused_with_401(site: Site) -> None:
    verdict = check(site.url, "fhu_" + "x" * 43)
    assert not verdict.ok
    assert verdict.message.startswith("the coordinator refused the token (wrong, expired or revoked): ")
    assert "not valid" in verdict.message


def test_revoked_token_is_refused(site: Site) -> None:
    verdict = check(site.url, site.tokens["gone"])
    assert not verdict.ok and "refused the token" in verdict.message, verdict


def test_a_worker_token_is_not_a_user_token(site: Site) -> None:
    verdict = check(site.url, site.tokens["owner"])
    assert not verdict.ok
    assert verdict.message == ("this is a worker token of account gpu-owner; rendering from Blender needs a user "
                               "token (fhu_...)")


def test_an_admin_token_works_with_a_caution(site: Site) -> None:
    verdict = check(site.url, site.tokens["boss"])
    assert verdict.ok, verdict
    assert "as boss; balance 1000 points" in verdict.message and "a user token is safer" in verdict.message


def test_a_path_that_is_not_the_coordinator(site: Site) -> None:
    verdict = check(site.url + "/render", site.tokens["artist"])
    assert not verdict.ok
    assert verdict.message.startswith(f"{site.url}/render does not look like a Framehive coordinator (")
    assert "HTTP 404" in verdict.message


# ---------------------------------------------------------------------- something else answers


def test_a_server_without_a_version_is_not_a_coordinator(static: StaticSite) -> None:
    static.serve_health({"status": "ok"})
    verdict = check(static.url, "fhu_x")
    assert not verdict.ok and verdict.message == (f"{static.url} does not look like a Framehive coordinator (its "
                                                  "health report has no version)")


def test_a_server_that_answers_something_else(static: StaticSite) -> None:
    static.serve_health(["not", "an", "object"])
    verdict = check(static.url, "fhu_x")
    assert not verdict.ok and "does not look like a Framehive coordinator" in verdict.message, verdict


def test_an_incompatible_coordinator_version(static: StaticSite) -> None:
    static.serve_health({"status": "ok", "version": "0.9.3"})
    verdict = check(static.url, "fhu_x")
    assert not verdict.ok
    assert verdict.message == (f"version mismatch: the coordinator runs 0.9.3, this add-on is {CLIENT_VERSION}; "
                               "update the add-on (or ask the admin which version to use)")


# ---------------------------------------------------------------------- the version rule


@pytest.mark.parametrize(("theirs", "ours", "fits"), [
    ("0.1.0", "0.1.0", True),
    ("0.1.7", "0.1.0", True),  # patch releases speak the same dialect
    ("0.2.0", "0.1.0", False),  # before 1.0 a minor release may break the API
    ("1.0.0", "0.1.0", False),
    ("1.4.2", "1.0.0", True),  # from 1.0 on, same major is enough
    ("1.0", "1.9.9", True),
    ("2.0.0", "1.9.9", False),
    ("0.1", "0.1.0", True),
    ("0.1.0rc1", "0.1.0", True),  # only major and minor are read
    ("1", "1.0.0", False),  # too short to tell
    ("", "0.1.0", False),
    ("?", "0.1.0", False),
    ("one.two", "0.1.0", False),
    ("0.1.0", "garbage", False),
])
def test_compatible(theirs: str, ours: str, fits: bool) -> None:
    assert compatible(theirs, ours) is fits


def test_compatible_defaults_to_this_client() -> None:
    assert compatible(CLIENT_VERSION)
