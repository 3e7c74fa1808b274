"""A NUL byte from a stranger is a 400, never a 500 (on SQLite and a real PostgreSQL).

Before: PostgreSQL refuses a NUL in a text parameter with an error, not "no such row", so a NUL in a query
argument (``/admin/tokens?account=a%00b``) or in a JSON string that reaches a text column was a 500.
"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/api/v1/admin/tokens?account=a%00b", "/api/v1/balance?account=a%00b",
                                  "/api/v1/jobs?state=queued%00"])
def test_a_nul_in_a_query_argument_is_a_400(app, api, tokens, path):  # type: ignore[no-untyped-def]
    api.token = tokens["admin"]
    response = api.get(path)
    assert response.status_code == 400, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.get_json()["error"]["code"] == "bad_request" and "NUL" in response.get_json()["error"]["message"]


def test_a_nul_in_a_json_string_is_a_400_and_creates_nothing(app, api, tokens, scene_sha):  # type: ignore[no-untyped-def]
    api.token = tokens["admin"]
    response = api.post("/api/v1/admin/tokens", json={"kind": "user", "name": "mallory\x00", "account": "m\x00"})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "NUL" in response.get_json()["error"]["message"]
    api.token = tokens["user"]
    response = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-4", "name": "x\x00y"})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert api.get("/api/v1/jobs").get_json()["jobs"] == []
