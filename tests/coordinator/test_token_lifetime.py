"""A token's lifetime is bounded: a huge one (``--expires-in 1e12`` days) used to crash the command after the token
was written (a datetime overflow while printing its expiry), leaving a token nobody ever saw."""

from __future__ import annotations

from pathlib import Path

import pytest
from framehive.coordinator import cli
from framehive.coordinator.auth import MAX_EXPIRES_IN, issue_token, list_tokens


@pytest.mark.parametrize("days", ["1e12", "1e300", str(MAX_EXPIRES_IN / 86400 + 1)])
def test_the_cli_refuses_a_lifetime_past_the_limit_and_creates_nothing(tmp_path: Path, capsys, days: str) -> None:  # type: ignore[no-untyped-def]
    store = ["--data-dir", str(tmp_path / "cli"), "--create-db"]
    code = cli.main(["token", "create", "--kind", "user", "--name", "x", "--expires-in", days, *store])
    out, err = capsys.readouterr()
    assert (code, out) == (1, ""), err
    assert "expires_in must be at most 100 years" in err and "Traceback" not in err
    assert cli.main(["token", "list", "--json", *store]) == 0
    assert capsys.readouterr().out == "[]\n", "nothing was created"


def test_the_longest_lifetime_is_accepted(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        with pytest.raises(ValueError, match="at most 100 years"):
            issue_token("user", "x", expires_in=MAX_EXPIRES_IN * 1.0001)
        assert list_tokens() == []
        _, listing = issue_token("user", "x", expires_in=MAX_EXPIRES_IN)
        assert listing["expires_at"] is not None and listing["state"] == "active"


def test_the_api_refuses_it_too(app, tokens) -> None:  # type: ignore[no-untyped-def]
    response = app.test_client().post("/api/v1/admin/tokens", json={"kind": "user", "name": "x", "expires_in": 1e20},
                                      headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert response.status_code == 400 and "at most 100 years" in response.get_json()["error"]["message"]
    with app.app_context():
        assert "x" not in {token["name"] for token in list_tokens()}
