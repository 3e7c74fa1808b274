"""Every list endpoint answers in pages (?limit=&after=, a `next` link), and the client follows them.

Before paging, ``GET /jobs`` (and the other lists) answered every row at once, however many there were.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from framehive.addon.client import Client
from framehive.coordinator import config
from framehive.coordinator.auth import create_token
from framehive.coordinator.db import db
from framehive.coordinator.models import Account, Worker

from tests.farm import Farm
from tests.live import mint_tokens

from .conftest import Api

JOBS = 5


def pages(api: Api, path: str, key: str, **query: Any) -> tuple[list[list[Any]], list[str | None]]:
    """Every page of a list, by its `next` links: the items of each page and the links."""
    items, links = [], []
    response = api.get(path, query_string=query)
    while True:
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        items.append(body[key])
        links.append(body["next"])
        if body["next"] is None:
            return items, links
        response = api.get(body["next"])


@pytest.fixture
def jobs(api: Api, scene_sha: str) -> list[int]:
    return [api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1"}).get_json()["id"]
            for _ in range(JOBS)]


def test_jobs_come_newest_first_in_pages_of_the_asked_size(api: Api, jobs: list[int]) -> None:
    items, links = pages(api, "/api/v1/jobs", "jobs", limit=2)
    assert [[job["id"] for job in page] for page in items] == [jobs[4:2:-1], jobs[2:0:-1], jobs[:1]]
    assert links[0] == f"/api/v1/jobs?limit=2&after={jobs[3]}" and links[-1] is None


def test_the_default_page_is_the_configured_size_and_limits_are_checked(app, api: Api,  # type: ignore[no-untyped-def]
                                                                       jobs: list[int]) -> None:
    app.config["FRAMEHIVE_PAGE_SIZE"] = 3
    first = api.get("/api/v1/jobs").get_json()
    assert len(first["jobs"]) == 3 and first["next"].endswith(f"after={jobs[2]}")
    largest = config.MAX_PAGE_SIZE
    for bad in ("0", str(largest + 1), "-1", "x", ""):
        response = api.get("/api/v1/jobs", query_string={"limit": bad})
        assert (response.status_code, response.get_json()["error"]["code"]) == (400, "bad_request"), bad
    for bad in ("x", "-3", "9" * 30):
        response = api.get("/api/v1/jobs", query_string={"after": bad})
        assert (response.status_code, response.get_json()["error"]["code"]) == (400, "bad_request"), bad
    assert len(api.get("/api/v1/jobs", query_string={"limit": largest}).get_json()["jobs"]) == JOBS


def test_filters_survive_into_the_next_link(app, api: Api, jobs: list[int]) -> None:  # type: ignore[no-untyped-def]
    items, links = pages(api, "/api/v1/ledger", "entries", reason="escrow", limit=2)
    assert [entry["job"] for page in items for entry in page] == jobs[::-1], "the escrow entries, not the grant"
    assert all("reason=escrow" in link for link in links[:-1]) and len(links) == 3


def test_every_list_endpoint_pages(app, api: Api, tokens: dict[str, str], jobs: list[int]) -> None:  # type: ignore[no-untyped-def]
    admin = Api(app, tokens["admin"])
    with app.app_context():
        account = db.session.execute(db.select(Account).filter_by(name="gpu")).scalar_one()
        db.session.add_all(Worker(account_id=account.id, name=f"box{i}") for i in range(3))
        db.session.commit()
        for i in range(3):
            create_token("user", f"guest{i}")
    lists = [(admin, "/api/v1/jobs", "jobs", JOBS), (admin, "/api/v1/workers", "workers", 3),
             (admin, "/api/v1/admin/tokens", "tokens", 7), (api, "/api/v1/events", "events", JOBS),
             (api, "/api/v1/ledger", "entries", JOBS + 1)]
    for caller, path, key, count in lists:
        items, links = pages(caller, path, key, limit=2)
        flat = [item["id"] for page in items for item in page]
        assert len(flat) == count == len(set(flat)), path
        assert all(len(page) <= 2 for page in items) and len(links) == (count + 1) // 2, path


@pytest.fixture
def small_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Farm, dict[str, str]]]:
    monkeypatch.setenv("FRAMEHIVE_PAGE_SIZE", "2")
    farm = Farm(tmp_path / "farm")
    farm.start_coordinator()
    try:
        yield farm, mint_tokens(farm, alice=("user", "alice"))
    finally:
        farm.stop()


def test_the_client_follows_the_pages_of_a_real_coordinator(small_pages, sample_scene: Path) -> None:  # type: ignore[no-untyped-def]
    farm, tokens = small_pages
    client = Client(farm.url, tokens["alice"])
    submitted = [client.submit(sample_scene, frames=str(n))["id"] for n in range(1, JOBS + 1)]
    assert [job["id"] for job in client.jobs()] == submitted[::-1]
    assert len(client.ledger()) == JOBS + 1, "the starting grant and one escrow per job"
