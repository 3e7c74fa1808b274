"""A poll of one job sends what changed, not the whole job (issue 16, point 5).

``GET /api/v1/jobs/<id>`` carries an ETag naming the job's whole state: a caller that has it (If-None-Match) gets
304 and no body. With ``?since=<cursor>`` (the ``cursor`` of its last answer) it gets the job's summary and counts
and only the rows of frames, tasks, checks, failures and assets whose block changed; merged by key into what it
had, they give the full answer. Before this, every poll sent every frame, task and check.
"""

from __future__ import annotations

from typing import Any

import pytest
from framehive.coordinator.api import job_changes
from framehive.coordinator.db import db
from framehive.coordinator.models import Frame
from framehive.coordinator.transitions import move_frame
from sqlalchemy import select

from .conftest import Api

FRAMES = 12  # the sample scene's range; blocks of 2 frames here (BLOCK_ROWS), 32 in production
KEYS = {"frame_states": "frame", "tasks": "id", "checks": "id", "failures": "id", "assets": "path"}


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_changes, "BLOCK_ROWS", 2)


@pytest.fixture
def job_id(api: Api, scene_sha: str) -> int:
    response = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": f"1-{FRAMES}", "chunk": 3})
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def start_rendering(app, job_id: int, *numbers: int) -> None:  # type: ignore[no-untyped-def]
    """Frames of the job move queued → rendering, as a worker's heartbeat moves them."""
    with app.app_context():
        for frame in db.session.execute(
                select(Frame).where(Frame.job_id == job_id, Frame.number.in_(numbers))).scalars():
            move_frame(frame, "rendering")
        db.session.commit()
        db.session.remove()


def merged(old: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """What a client holds after a `since` poll: the new summary, each list's rows replaced or added by key."""
    out = {k: v for k, v in delta.items() if k not in KEYS}
    for section, key in KEYS.items():
        rows = {row[key]: row for row in old[section]}
        rows.update({row[key]: row for row in delta[section]})
        out[section] = sorted(rows.values(), key=lambda row: row[key])
    return out


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k not in ("cursor", "since")}
    for section, key in KEYS.items():
        out[section] = sorted(body[section], key=lambda row: row[key])
    return out


def test_an_unchanged_job_answers_304_with_no_body_and_a_changed_one_a_new_etag(app, api: Api,  # type: ignore[no-untyped-def]
                                                                              job_id: int) -> None:
    first = api.get(f"/api/v1/jobs/{job_id}")
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('"') and len(first.get_json()["frame_states"]) == FRAMES
    again = api.get(f"/api/v1/jobs/{job_id}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    start_rendering(app, job_id, 7)
    changed = api.get(f"/api/v1/jobs/{job_id}", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.get_json()["counts"]["rendering"] == 1


def test_since_sends_only_the_changed_rows_and_merges_into_the_full_answer(app, api: Api,  # type: ignore[no-untyped-def]
                                                                          job_id: int) -> None:
    full = api.get(f"/api/v1/jobs/{job_id}").get_json()
    quiet = api.get(f"/api/v1/jobs/{job_id}", query_string={"since": full["cursor"]}).get_json()
    assert quiet["since"] is True and quiet["cursor"] == full["cursor"]
    assert all(quiet[section] == [] for section in KEYS) and quiet["counts"] == full["counts"]

    start_rendering(app, job_id, 3, 11)
    delta = api.get(f"/api/v1/jobs/{job_id}", query_string={"since": full["cursor"]}).get_json()
    sent = {row["frame"] for row in delta["frame_states"]}
    assert sent == {3, 4, 11, 12}, sorted(sent)
    assert delta["counts"]["rendering"] == 2 and delta["cursor"] != full["cursor"]
    now = api.get(f"/api/v1/jobs/{job_id}").get_json()
    assert comparable(merged(full, delta)) == comparable(now)


def test_a_cursor_from_another_job_still_merges_into_the_full_answer(api: Api, job_id: int,
                                                                    scene_sha: str) -> None:
    small = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-3"}).get_json()
    cursor = api.get(f"/api/v1/jobs/{small['id']}").get_json()["cursor"]
    delta = api.get(f"/api/v1/jobs/{job_id}", query_string={"since": cursor}).get_json()
    now = api.get(f"/api/v1/jobs/{job_id}").get_json()
    assert comparable(merged({section: [] for section in KEYS}, delta)) == comparable(now)


BAD_SINCE = ["", "-1", "12", "x", "9" * 5000, "1.\x00", "\x00", "1.AAAA", "1.!!!!", "1." + "A" * 4000, "2.AAAAAAAA",
             "1.AQ"]


def test_a_bad_since_is_a_400_never_a_500(api: Api, job_id: int) -> None:
    for bad in BAD_SINCE:
        response = api.get(f"/api/v1/jobs/{job_id}", query_string={"since": bad})
        assert response.status_code == 400, (bad, response.status_code)
        # a NUL anywhere in a request is refused before any route (bad_request); the rest by the cursor's parser
        assert response.get_json()["error"]["code"] in ({"bad_since", "bad_request"} if "\x00" in bad
                                                        else {"bad_since"}), bad


def test_another_account_learns_nothing_through_etags_or_cursors(app, api: Api, tokens,  # type: ignore[no-untyped-def]
                                                                 job_id: int) -> None:
    mine = api.get(f"/api/v1/jobs/{job_id}")
    bob = Api(app, tokens["other"])
    for headers, query in (({"If-None-Match": mine.headers["ETag"]}, {}), ({"If-None-Match": "*"}, {}),
                           ({}, {"since": mine.get_json()["cursor"]})):
        response = bob.get(f"/api/v1/jobs/{job_id}", headers=headers, query_string=query)
        assert response.status_code == 404 and "ETag" not in response.headers, response.status_code
    absent = bob.get(f"/api/v1/jobs/{job_id + 1000}", headers={"If-None-Match": "*"})
    assert absent.status_code == 404 and "ETag" not in absent.headers
