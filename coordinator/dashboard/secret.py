"""The key that signs dashboard session cookies.

Taken from the ``SECRET_KEY`` config, else from the ``FRAMEHIVE_SECRET_KEY`` environment variable, else
generated once and kept in the coordinator's data dir, so that sessions survive a restart. Several
coordinators behind one load balancer (sharing one PostgreSQL) must sign alike: give each the same
``FRAMEHIVE_SECRET_KEY``, or a session made on one is refused by the others.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_VAR = "FRAMEHIVE_SECRET_KEY"
SECRET_FILE = "dashboard-secret"
# Shorter keys are refused: the key is all that stands between a forged cookie and an admin session.
MIN_LENGTH = 32


def server_secret(config: Mapping[str, Any]) -> str:
    """The configured secret, or the data dir's persisted one (created on first use)."""
    configured = config.get("SECRET_KEY") or os.environ.get(ENV_VAR)
    if configured:
        if len(configured) < MIN_LENGTH:
            raise ValueError(f"the dashboard secret must be at least {MIN_LENGTH} characters")
        return str(configured)
    return persisted_secret(Path(config["FRAMEHIVE_DATA_DIR"]) / SECRET_FILE)


def persisted_secret(path: Path) -> str:
    """Read the secret at ``path``, or create it there: written privately and linked into place atomically, so
    two coordinators starting at once on one data dir end up with the same secret."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
    try:
        with os.fdopen(fd, "w") as handle:  # mkstemp creates the file readable by its owner only
            handle.write(secrets.token_hex(32))
        with contextlib.suppress(FileExistsError):  # another process got there first: its secret wins
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return _read(path)


def _read(path: Path) -> str:
    secret = path.read_text().strip()
    if len(secret) < MIN_LENGTH:
        raise ValueError(f"{path} holds no usable secret; delete it to have a new one generated")
    return secret
