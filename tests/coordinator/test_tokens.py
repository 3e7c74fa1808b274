"""Token management: listing without secrets, admin API (create / list / revoke), expiry, and the CLI."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from framehive.coordinator import cli
from framehive.coordinator.auth import create_token, hash_token, list_tokens, revoke_token
from framehive.coordinator.db import db
from framehive.coordinator.errors import ApiError
from framehive.coordinator.models import ApiToken

from .conftest import Api

TOKENS = "/api/v1/admin/tokens"


def assert_error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body


def assert_no_secrets(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text
        assert hash_token(secret) not in text


def token_id(app, secret: str) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.execute(db.select(ApiToken.id).filter_by(token_hash=hash_token(secret))).scalar_one()


def delete(api: Api, path: str):  # type: ignore[no-untyped-def]
    return api.client.delete(path, headers={"Authorization": f"Bearer {api.token}"})


def me(app, secret: str):  # type: ignore[no-untyped-def]
    return Api(app, secret).get("/api/v1/me")


# --- auth.py ---------------------------------------------------------------------------------------------


def test_list_tokens_has_no_secrets_and_filters_by_account(app, tokens):  # type: ignore[no-untyped-def]
    with app.app_context():
        extra = create_token("worker", "gpu-2", "alice", expires_in=3600)
        listing = list_tokens()
        assert [t["name"] for t in listing] == ["alice", "bob", "gpu", "root", "gpu-2"]
        assert {tuple(sorted(t)) for t in listing} == {
            ("account", "created_at", "expires_at", "id", "kind", "name", "revoked_at", "state")}
        assert all(t["state"] == "active" for t in listing)
        assert_no_secrets(json.dumps(listing), [*tokens.values(), extra])
        alice = list_tokens("alice")
        assert [(t["kind"], t["name"]) for t in alice] == [("user", "alice"), ("worker", "gpu-2")]
        assert alice[1]["expires_at"] is not None and alice[0]["expires_at"] is None
        with pytest.raises(ApiError, match="no account named 'nobody'"):
            list_tokens("nobody")


def test_revoke_token_twice_is_a_clear_error(app, tokens):  # type: ignore[no-untyped-def]
    tid = token_id(app, tokens["user"])
    with app.app_context():
        revoked = revoke_token(tid)
        assert revoked["state"] == "revoked" and revoked["revoked_at"]
        with pytest.raises(ApiError, match="already revoked") as again:
            revoke_token(tid)
        assert again.value.status == 409
        with pytest.raises(ApiError, match="no token with id 999") as unknown:
            revoke_token(999)
        assert unknown.value.status == 404
        states = {t["id"]: t["state"] for t in list_tokens()}
        assert states[tid] == "revoked"
    assert_error(me(app, tokens["user"]), 401, "bad_token")
    assert me(app, tokens["other"]).status_code == 200


@pytest.mark.parametrize("kwargs", [
    {"kind": "guest", "name": "x"}, {"kind": "user", "name": ""}, {"kind": "user", "name": "   "},
    {"kind": "user", "name": "x" * 121}, {"kind": "user", "name": "x", "account_name": ""},
    {"kind": "user", "name": "x", "expires_in": -1}, {"kind": "user", "name": "x", "expires_in": 0},
    {"kind": "user", "name": "x", "expires_in": float("nan")}, {"kind": "user", "name": "x", "expires_in": True},
])
def test_create_token_rejects_bad_input(app, kwargs):  # type: ignore[no-untyped-def]
    with app.app_context():
        with pytest.raises(ValueError):
            create_token(**kwargs)
        assert list_tokens() == []


# --- expiry ----------------------------------------------------------------------------------------------


def test_expired_token_gets_401(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        short = create_token("user", "short", expires_in=1.0)
        long = create_token("user", "long", expires_in=3600)
    assert me(app, short).status_code == 200
    time.sleep(1.1)
    assert_error(me(app, short), 401, "bad_token")
    assert me(app, long).status_code == 200
    with app.app_context():
        states = {t["name"]: t["state"] for t in list_tokens()}
    assert states == {"short": "expired", "long": "active"}


def test_token_with_expiry_in_the_past_gets_401(app, tokens):  # type: ignore[no-untyped-def]
    with app.app_context():
        token = db.session.get(ApiToken, token_id(app, tokens["worker"]))
        token.expires_at = time.time() - 1
        db.session.commit()
    assert_error(me(app, tokens["worker"]), 401, "bad_token")
    listing = Api(app, tokens["admin"]).get(TOKENS, query_string={"account": "gpu"}).get_json()["tokens"]
    assert [t["state"] for t in listing] == ["expired"]


# --- admin API -------------------------------------------------------------------------------------------


def test_api_lists_tokens_without_secrets(app, tokens):  # type: ignore[no-untyped-def]
    admin = Api(app, tokens["admin"])
    response = admin.get(TOKENS)
    assert response.status_code == 200
    listing = response.get_json()["tokens"]
    assert [(t["account"], t["kind"], t["name"], t["state"]) for t in listing] == [
        ("alice", "user", "alice", "active"), ("bob", "user", "bob", "active"),
        ("gpu", "worker", "gpu", "active"), ("root", "admin", "root", "active")]
    assert_no_secrets(response.get_data(as_text=True), list(tokens.values()))
    only_bob = admin.get(TOKENS, query_string={"account": "bob"}).get_json()["tokens"]
    assert [t["name"] for t in only_bob] == ["bob"]
    assert_error(admin.get(TOKENS, query_string={"account": "nobody"}), 404, "not_found")


def test_api_create_returns_a_working_secret_once(app, tokens):  # type: ignore[no-untyped-def]
    admin = Api(app, tokens["admin"])
    response = admin.post(TOKENS, json={"kind": "worker", "name": "farm-7", "account": "carol", "expires_in": 3600})
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    secret = created["token"]
    assert secret.startswith("fhw_")
    assert created["kind"] == "worker" and created["name"] == "farm-7" and created["account"] == "carol"
    assert created["state"] == "active" and created["expires_at"] and created["revoked_at"] is None
    assert created["id"] == token_id(app, secret)
    whoami = me(app, secret)
    assert whoami.status_code == 200
    assert whoami.get_json() == {"account": {"id": whoami.get_json()["account"]["id"], "name": "carol"},
                                 "token": {"kind": "worker"}}
    # Only once: no later response holds the secret or its hash.
    assert_no_secrets(admin.get(TOKENS).get_data(as_text=True), [secret])
    assert_no_secrets(delete(admin, f"{TOKENS}/{created['id']}").get_data(as_text=True), [secret])
    # Without an account, the token's name is the account (as with the CLI).
    user = admin.post(TOKENS, json={"kind": "user", "name": "dave"}).get_json()
    assert user["account"] == "dave" and user["expires_at"] is None and user["token"].startswith("fhu_")


def test_api_revoke_takes_effect_immediately(app, tokens):  # type: ignore[no-untyped-def]
    admin = Api(app, tokens["admin"])
    user = Api(app, tokens["user"])
    assert user.get("/api/v1/jobs").status_code == 200
    tid = token_id(app, tokens["user"])
    response = delete(admin, f"{TOKENS}/{tid}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == tid and body["state"] == "revoked" and body["revoked_at"] and "warning" not in body
    assert_error(user.get("/api/v1/jobs"), 401, "bad_token")
    assert_error(delete(admin, f"{TOKENS}/{tid}"), 409, "already_revoked")
    assert_error(delete(admin, f"{TOKENS}/999"), 404, "not_found")
    assert Api(app, tokens["other"]).get("/api/v1/jobs").status_code == 200


def test_api_admin_may_revoke_its_own_token_with_a_warning(app, tokens):  # type: ignore[no-untyped-def]
    admin = Api(app, tokens["admin"])
    response = delete(admin, f"{TOKENS}/{token_id(app, tokens['admin'])}")
    assert response.status_code == 200
    assert "no longer works" in response.get_json()["warning"]
    assert_error(admin.get(TOKENS), 401, "bad_token")


def admin_routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/admin/"):
            path = re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule)
            routes += [(method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return routes


@pytest.mark.parametrize("kind", ["user", "worker"])
def test_user_and_worker_tokens_get_403_on_every_admin_endpoint(app, tokens, kind):  # type: ignore[no-untyped-def]
    routes = admin_routes(app)
    assert {("GET", TOKENS), ("POST", TOKENS), ("DELETE", f"{TOKENS}/1")} <= set(routes)
    client = app.test_client()
    for method, path in routes:
        response = client.open(path, method=method, json={"kind": "admin", "name": "evil"},
                               headers={"Authorization": f"Bearer {tokens[kind]}"})
        assert_error(response, 403, "forbidden")
        assert_error(client.open(path, method=method), 401, "missing_token")
    with app.app_context():
        assert len(list_tokens()) == 4  # nothing created, nothing revoked
        assert all(t["state"] == "active" for t in list_tokens())


@pytest.mark.parametrize(("body", "code"), [
    ("{not json", "bad_json"),
    ([1, 2], "bad_request"),
    ({"name": "x"}, "bad_request"),
    ({"kind": "guest", "name": "x"}, "bad_request"),
    ({"kind": "user"}, "bad_request"),
    ({"kind": "user", "name": ""}, "bad_request"),
    ({"kind": "user", "name": "  "}, "bad_request"),
    ({"kind": "user", "name": 7}, "bad_request"),
    ({"kind": "user", "name": "x" * 121}, "bad_request"),
    ({"kind": "user", "name": "x", "account": ""}, "bad_request"),
    ({"kind": "user", "name": "x", "expires_in": -5}, "bad_request"),
    ({"kind": "user", "name": "x", "expires_in": 0}, "bad_request"),
    ({"kind": "user", "name": "x", "expires_in": "1d"}, "bad_request"),
    ({"kind": "user", "name": "x", "expires_in": True}, "bad_request"),
    ({"kind": "user", "name": "x", "trusted": True}, "bad_request"),
])
def test_api_create_rejects_bad_input(app, tokens, body, code):  # type: ignore[no-untyped-def]
    admin = Api(app, tokens["admin"])
    if isinstance(body, str):
        response = admin.post(TOKENS, data=body, content_type="application/json")
    else:
        response = admin.post(TOKENS, json=body)
    assert_error(response, 400, code)
    with app.app_context():
        assert len(list_tokens()) == 4


# --- CLI -------------------------------------------------------------------------------------------------


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_create_list_revoke(app, database_url, tmp_path: Path, capsys):  # type: ignore[no-untyped-def]
    store = ["--data-dir", str(tmp_path / "cli"), "--db", database_url]  # the same database as ``app``
    code, out, _ = run_cli(capsys, "token", "create", "--kind", "user", "--name", "alice", "--expires-in", "0.5",
                           *store)
    assert code == 0
    secret = out.strip()
    assert re.fullmatch(r"fhu_[\w-]{43}", secret)
    code, out, _ = run_cli(capsys, "token", "create", "--kind", "worker", "--name", "gpu-1", "--account", "bob",
                           *store)
    worker_secret = out.strip()
    assert code == 0 and me(app, secret).status_code == 200 and me(app, worker_secret).status_code == 200

    code, out, _ = run_cli(capsys, "token", "list", "--json", *store)
    assert code == 0
    assert_no_secrets(out, [secret, worker_secret])
    listing = json.loads(out)
    assert [(t["account"], t["kind"], t["name"], t["state"]) for t in listing] == [
        ("alice", "user", "alice", "active"), ("bob", "worker", "gpu-1", "active")]
    alice, bob = listing
    assert bob["expires_at"] is None
    # 0.5 days after creation (ISO timestamps to the second)
    with app.app_context():
        row = db.session.get(ApiToken, alice["id"])
        assert row.expires_at - row.created_at == pytest.approx(43200)

    code, out, _ = run_cli(capsys, "token", "list", "--account", "bob", *store)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "ACCOUNT", "KIND", "NAME", "STATE", "CREATED", "EXPIRES", "REVOKED"]
    assert len(lines) == 2 and lines[1].split()[:5] == [str(bob["id"]), "bob", "worker", "gpu-1", "active"]
    assert_no_secrets(out, [secret, worker_secret])

    code, out, err = run_cli(capsys, "token", "revoke", str(alice["id"]), *store)
    assert code == 0 and "revoked token" in out and err.startswith("database: ") and "error" not in err
    assert_error(me(app, secret), 401, "bad_token")
    assert me(app, worker_secret).status_code == 200
    code, out, _ = run_cli(capsys, "token", "list", "--json", *store)
    assert [t["state"] for t in json.loads(out)] == ["revoked", "active"]

    code, out, err = run_cli(capsys, "token", "revoke", str(alice["id"]), *store)
    assert code == 1 and not out and "already revoked" in err and "Traceback" not in err
    code, out, err = run_cli(capsys, "token", "revoke", "999", *store)
    assert code == 1 and not out and "no token with id 999" in err
    code, out, err = run_cli(capsys, "token", "list", "--account", "nobody", *store)
    assert code == 1 and "no account named 'nobody'" in err


def test_cli_list_on_an_empty_store_and_bad_arguments(tmp_path: Path, capsys):  # type: ignore[no-untyped-def]
    store = ["--data-dir", str(tmp_path / "cli"), "--create-db"]
    assert run_cli(capsys, "token", "list", *store)[:2] == (0, "no tokens\n")
    assert run_cli(capsys, "token", "list", "--json", *store)[:2] == (0, "[]\n")
    code, out, err = run_cli(capsys, "token", "create", "--kind", "user", "--name", " ", *store)
    assert code == 1 and not out and "name must be a non-empty string" in err
    for bad in ("-1", "0", "soon", "inf"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["token", "create", "--kind", "user", "--name", "x", "--expires-in", bad, *store])
        assert exit_info.value.code == 2
        assert "--expires-in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["token", "revoke", "abc", *store])
    assert run_cli(capsys, "token", "list", "--json", *store)[:2] == (0, "[]\n")
