"""Times in the REST API's answers: ISO 8601 in UTC, to the second, the same in every endpoint."""

from __future__ import annotations

import re
from typing import Any

from tests.coordinator.conftest import Api

TO_THE_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


def times_in(answer: Any, names: tuple[str, ...]) -> list[str]:
    """Every value of a key in ``names`` anywhere in a JSON answer."""
    if isinstance(answer, dict):
        return [v for k, v in answer.items() if k in names and v is not None] + \
            [t for v in answer.values() for t in times_in(v, names)]
    if isinstance(answer, list):
        return [t for v in answer for t in times_in(v, names)]
    return []


def test_every_endpoint_gives_times_to_the_second(app, api, tokens, scene_sha):  # type: ignore[no-untyped-def]
    job = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-2"}).get_json()
    admin = Api(app, tokens["admin"])
    answers = {
        "job": (api.get(f"/api/v1/jobs/{job['id']}").get_json(), ("created_at",)),
        "jobs": (api.get("/api/v1/jobs").get_json(), ("created_at",)),
        "ledger": (api.get("/api/v1/ledger").get_json(), ("at",)),
        "events": (api.get("/api/v1/events").get_json(), ("at",)),
        "tokens": (admin.get("/api/v1/admin/tokens").get_json(), ("created_at",)),
    }
    for where, (answer, names) in answers.items():
        found = times_in(answer, names)
        assert found, f"{where}: no time in {answer}"
        assert all(TO_THE_SECOND.fullmatch(t) for t in found), (where, found)
