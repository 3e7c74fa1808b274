"""The worker token: from FRAMEHIVE_TOKEN or a file only its owner can read; ``--token`` warns.

Real files with real permissions, and the real ``framehive-worker`` command (it refuses before probing Blender,
so these runs take a second).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from framehive.worker_agent.token_source import ARGV_WARNING, TokenError, read_token_file, resolve

from tests.farm import REPO

TOKEN = "fhw_abcDEF123-_xyz"


def token_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "worker.token"
    path.write_bytes(text.encode())
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660, 0o602, 0o666])
def test_a_token_file_other_users_can_read_or_change_is_refused(tmp_path: Path, mode: int) -> None:
    path = token_file(tmp_path, TOKEN + "\n", mode)
    with pytest.raises(TokenError, match=f"chmod 600 {path}"):
        read_token_file(path)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_a_token_file_only_its_owner_can_read_is_accepted(tmp_path: Path, mode: int) -> None:
    assert read_token_file(token_file(tmp_path, TOKEN + "\n", mode)) == TOKEN


def test_windows_reads_the_file_without_posix_permissions(tmp_path: Path) -> None:
    """Windows has ACLs, not mode bits: the check is skipped there (simulated with posix=False)."""
    assert read_token_file(token_file(tmp_path, TOKEN + "\r\n", 0o644), posix=False) == TOKEN


@pytest.mark.parametrize(("text", "expected"), [(TOKEN, TOKEN), (TOKEN + "\n", TOKEN), (TOKEN + "\r\n", TOKEN)])
def test_one_trailing_newline_is_dropped(tmp_path: Path, text: str, expected: str) -> None:
    assert read_token_file(token_file(tmp_path, text)) == expected


@pytest.mark.parametrize("text", ["", "\n", TOKEN + "\n\n", " " + TOKEN, TOKEN + " x", "fhw_\u00e9t\u00e9", "a\x00b"])
def test_anything_but_one_token_line_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(TokenError):
        read_token_file(token_file(tmp_path, text))


def test_a_missing_file_or_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match="cannot read"):
        read_token_file(tmp_path / "absent")
    folder = tmp_path / "folder"
    folder.mkdir(mode=0o700)
    with pytest.raises(TokenError):
        read_token_file(folder)


def test_sources_in_order_and_the_argv_warning(tmp_path: Path) -> None:
    path = token_file(tmp_path, "from-file\n")
    assert resolve(None, path, {"FRAMEHIVE_TOKEN": "from-env"}) == ("from-file", [])
    assert resolve(None, None, {"FRAMEHIVE_TOKEN": "from-env"}) == ("from-env", [])
    assert resolve("from-argv", None, {}) == ("from-argv", [ARGV_WARNING])
    with pytest.raises(TokenError, match="one way"):
        resolve("from-argv", path, {})
    with pytest.raises(TokenError, match="FRAMEHIVE_TOKEN"):
        resolve(None, None, {})


def worker(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("FRAMEHIVE_TOKEN", "FRAMEHIVE_COORDINATOR")}
    return subprocess.run([sys.executable, "-m", "framehive.worker_agent.cli", *argv], cwd=REPO, capture_output=True,
                          text=True,
                          timeout=60, env={**base, **(env or {})})


def test_the_command_refuses_a_readable_token_file_saying_how_to_fix_it(tmp_path: Path) -> None:
    path = token_file(tmp_path, TOKEN, 0o644)
    done = worker("--coordinator", "http://127.0.0.1:9", "--token-file", str(path))
    assert done.returncode == 2
    assert f"chmod 600 {path}" in done.stderr
    assert TOKEN not in done.stderr + done.stdout


def test_the_command_without_a_token_says_where_to_put_it() -> None:
    done = worker("--coordinator", "http://127.0.0.1:9")
    assert done.returncode == 2 and "FRAMEHIVE_TOKEN" in done.stderr and "--token-file" in done.stderr
