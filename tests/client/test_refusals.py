"""A refused token is said in one sentence wherever the artist meets it: the ``framehive`` command, the "Test
connection" button, the job watcher and a submission, each with its own action and hint. Against a scripted
coordinator on a loopback port that refuses every token (401) or takes it for a worker's (403)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from framehive.addon import submission
from framehive.addon.cli import main
from framehive.addon.client import CLIENT_VERSION, ApiError, Client
from framehive.addon.connection_check import check
from framehive.addon.job_watch import JobWatcher
from framehive.addon.refusals import NOT_A_USER_TOKEN, UNKNOWN_TOKEN, token_refusal

from tests.scripted_http import Answer, scripted_server

TOKEN = "fhu_refused"
REFUSALS = {
    401: ("bad_token", "the token is not valid (unknown, revoked or expired)"),
    403: ("forbidden", "this endpoint is for user tokens"),
}


def refusing(status: int) -> Answer:
    code, message = REFUSALS[status]
    return Answer(status, json.dumps({"error": {"code": code, "message": message}}).encode())


@pytest.mark.parametrize("status", [401, 403])
def test_every_front_end_says_the_same_sentence(status: int, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    health = Answer(200, json.dumps({"status": "ok", "version": CLIENT_VERSION}).encode())
    message = REFUSALS[status][1]

    def said(action: str) -> str:
        return (UNKNOWN_TOKEN if status == 401 else NOT_A_USER_TOKEN.format(action=action)) + f": {message}"

    with scripted_server(lambda _m, path, _n: health if path == "/api/v1/health" else refusing(status)) as server:
        assert main(["jobs", "--coordinator", server.url, "--token", TOKEN]) == 1
        cli = capsys.readouterr().err.strip()
        button = check(server.url, TOKEN).message
        watcher = JobWatcher(tmp_path / "jobs.json", lambda url: Client(url, TOKEN))
        watcher.follow(4, server.url, {1: str(tmp_path / "1.png")})
        [followed] = watcher.poll_once()
        with pytest.raises(ApiError) as caught:
            Client(server.url, TOKEN).submit(Path(__file__), frames="1")  # refused at the first request
        submitted = submission._api_message(caught.value)

    assert cli == f"framehive: {said('run `framehive jobs`')}; check --token or $FRAMEHIVE_TOKEN"
    assert button == said("read the account")
    assert followed.error == f"{said('see jobs')}; change it in the add-on's preferences"
    assert not followed.dropped and watcher.followed() == [4], "fixable in the preferences: the job is kept"
    assert submitted == said("submit jobs")


def test_other_errors_are_not_refusals() -> None:
    for status in (0, 400, 404, 409, 429, 500):
        assert token_refusal(ApiError(status, "x", "y"), "see jobs", "hint") is None
    assert token_refusal(ApiError(401, "bad_token", "gone"), "see jobs") == f"{UNKNOWN_TOKEN}: gone"
