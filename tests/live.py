"""Real coordinators (and worker agents) for the client's and the add-on's tests, shared per test module.

Tokens are minted in-process against the coordinator's own database, which is much faster than the
``framehive-coordinator token`` command; a coordinator setting that applies when an account is created (the
starting grant) is passed to that in-process app.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framehive.addon.client import Client

from tests.farm import Farm, wait_for

ONLINE_TIMEOUT = 90


@dataclass
class Site:
    """A running coordinator and the tokens minted for it, by key."""

    farm: Farm
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.farm.url

    def client(self, who: str = "artist") -> Client:
        return Client(self.url, self.tokens[who], timeout=30)

    def connection(self, who: str = "artist") -> list[str]:
        """The ``framehive`` command line's arguments for this coordinator and token."""
        return ["--coordinator", self.url, "--token", self.tokens[who]]

    def mint(self, config: dict[str, Any] | None = None, **specs: tuple[str, str]) -> dict[str, str]:
        tokens = mint_tokens(self.farm, config, **specs)
        self.tokens.update(tokens)
        return tokens


def mint_tokens(farm: Farm, config: dict[str, Any] | None = None, revoked: tuple[str, ...] = (),
                trusted_workers: bool = True, **specs: tuple[str, str]) -> dict[str, str]:
    """Create tokens (``key=(kind, account name)``) in the farm's database; worker accounts are trusted unless
    ``trusted_workers`` is false (their frames are then accepted without checks: the add-on's tests are not
    about verification, which has its own). Keys in ``revoked`` are revoked at once."""
    from framehive.coordinator.auth import issue_token, revoke_token

    tokens = {}
    with farm_database(farm, config):
        for key, (kind, name) in specs.items():
            secret, listing = issue_token(kind, name, trusted=trusted_workers and kind == "worker")
            if key in revoked:
                revoke_token(listing["id"])
            tokens[key] = secret
    return tokens


@contextmanager
def farm_database(farm: Farm, config: dict[str, Any] | None = None) -> Iterator[None]:
    """An app context on the farm coordinator's own database (an in-process app without a reaper), to set up
    what a test needs faster than over the API, or what the API cannot make."""
    from framehive.coordinator import create_app
    from framehive.coordinator.db import db

    app = create_app({"FRAMEHIVE_START_REAPER": False, **(config or {})}, data_dir=farm.data_dir)
    with app.app_context():
        try:
            yield
        finally:
            db.session.remove()
            db.engine.dispose()


@contextmanager
def running_site(root: Path, workers: int = 0, trusted_workers: bool = True,
                 **specs: tuple[str, str]) -> Iterator[Site]:
    """A coordinator with ``specs`` tokens and ``workers`` real worker agents (each its own owner, trusted
    unless ``trusted_workers`` is false: then they check each other's frames), all online before this
    returns; everything is stopped on exit."""
    farm = Farm(root)
    try:
        farm.start_coordinator()
        owners = {f"owner{i}": ("worker", f"owner{i}") for i in range(1, workers + 1)}
        site = Site(farm, mint_tokens(farm, trusted_workers=trusted_workers, **specs, **owners,
                                      site_admin=("admin", "site-admin")))
        procs = [farm.start_worker(f"w{i}", site.tokens[f"owner{i}"]) for i in range(1, workers + 1)]
        if procs:
            admin = site.client("site_admin")

            def online() -> bool:
                for proc in procs:
                    if proc.popen.poll() is not None:
                        raise AssertionError(f"worker {proc.name} exited:\n{farm.logs()}")
                return sum(1 for w in admin.workers() if w.get("online")) == len(procs)

            wait_for(online, ONLINE_TIMEOUT, f"{len(procs)} workers to come online")
        yield site
    finally:
        farm.stop()


def free_port() -> int:
    """A loopback port nothing listens on (bound and released: good enough for a refused connection)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
