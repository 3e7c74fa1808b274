"""``framehive-coordinator token create|list|revoke`` make no database by mistake and say which one they used.

The mistake they guard against: without the coordinator's --data-dir, ``token create`` made a fresh database under
the default data dir and printed a token the running coordinator (on its own database) then refused.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
from framehive.coordinator import cli, existing_database

from tests.farm import REPO, Farm


def run(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_database_that_does_not_exist_is_not_created_unless_asked(tmp_path: Path, capsys):  # type: ignore[no-untyped-def]
    data = tmp_path / "nowhere"
    for command in (["create", "--kind", "user", "--name", "alice"], ["list"], ["revoke", "1"]):
        code, out, err = run(capsys, "token", *command, "--data-dir", str(data))
        assert code == 1 and out == "", command
        assert f"no coordinator database at sqlite:///{data}/framehive.sqlite3" in err and "--create-db" in err
    assert not data.exists()

    code, out, err = run(capsys, "token", "create", "--kind", "user", "--name", "alice", "--data-dir", str(data),
                         "--create-db")
    assert code == 0 and out.startswith("fhu_") and out.count("\n") == 1  # stdout: the token alone, for scripts
    assert f"database: sqlite:///{data}/framehive.sqlite3" in err
    code, out, err = run(capsys, "token", "list", "--data-dir", str(data))
    assert code == 0 and "alice" in out and f"database: sqlite:///{data}/framehive.sqlite3" in err


def test_a_postgresql_database_without_the_coordinators_tables_is_refused(postgres, tmp_path: Path, capsys):  # type: ignore[no-untyped-def]
    url = postgres.create_database()
    store = ["--data-dir", str(tmp_path / "d"), "--db", url]
    code, out, err = run(capsys, "token", "list", *store)
    assert code == 1 and out == "" and "no coordinator database at postgresql" in err
    assert run(capsys, "token", "create", "--kind", "admin", "--name", "root", *store, "--create-db")[0] == 0
    code, out, err = run(capsys, "token", "list", *store)
    assert code == 0 and "root" in out and "database: postgresql" in err


def test_the_documented_form_prints_a_token_the_running_coordinator_accepts(farm: Farm):
    store = farm.data_dir / "blobs"
    argv = [sys.executable, "-m", "framehive.coordinator.cli", "token", "create", "--kind", "user", "--name", "alice",
            "--data-dir", str(farm.data_dir), "--db", f"sqlite:///{farm.data_dir / 'framehive.sqlite3'}",
            "--storage", f"file://{store}"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert done.stdout == token + "\n" and "database: sqlite:///" in done.stderr
    me = requests.get(f"{farm.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert me.status_code == 200 and me.json()["account"]["name"] == "alice"


def test_a_database_url_is_shown_without_its_password():
    shown = existing_database.display("postgresql+psycopg://framehive:s3cret@db.example/framehive")
    assert "s3cret" not in shown and shown.startswith("postgresql+psycopg://framehive:***@db.example")
