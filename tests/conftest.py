"""Shared fixtures: generated scenes, a real local farm, and in-process coordinator apps."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.farm import Farm, make_scene
from tests.postgres import PostgresServer

# The slowest modules run first. Under pytest-xdist (./scripts/test: --dist loadfile) a module runs whole in one
# process, in collection order, so one of these collected last (the root folder's come after tests/e2e) kept the
# other process idle at the end of the run. The two that install Blender or the package from PyPI (waiting on
# downloads) are interleaved with ones that keep the CPUs busy.
SLOWEST_FIRST = (
    "tests/test_other_blenders.py",
    "tests/coordinator/test_fuzzing.py",
    "tests/test_installs.py",
    "tests/e2e/test_adversaries.py",
    "tests/e2e/test_young_network.py",
    "tests/e2e/test_render_pipeline.py",
    "tests/e2e/test_failover.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {module: place for place, module in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(SLOWEST_FIRST)))  # stable: others keep order


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """Remember each phase's outcome so fixtures can print process logs for failed tests."""
    outcome = yield
    setattr(item, f"rep_{outcome.get_result().when}", outcome.get_result())


@pytest.fixture(autouse=True)
def _site_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print what the coordinator and workers of a test's ``site`` (tests/live.py) said when the test fails."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "site" in request.fixturenames:
        print(request.getfixturevalue("site").farm.logs())


@pytest.fixture(scope="session")
def sample_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's animated scene: 12 frames at 64x36, rendered by Cycles on CPU."""
    return make_scene(tmp_path_factory.mktemp("scenes") / "sample.blend", frames=12)


@pytest.fixture
def farm(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Farm]:
    """A real coordinator on a loopback port (workers are started by each test)."""
    farm = Farm(tmp_path / "farm")
    marker = request.node.get_closest_marker("coordinator_args")
    if marker:
        farm.coordinator_args = list(marker.args)
    farm.start_coordinator()
    yield farm
    farm.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(farm.logs())


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session; each test that uses it gets its own database.

    Its directory is outside pytest's tmp dirs, which are private to root: the server runs as ``postgres``.
    """
    root = Path(tempfile.mkdtemp(prefix="framehive-pg-"))
    server = PostgresServer(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test once on SQLite and once on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'framehive.sqlite3'}"
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture
def app(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    """An in-process coordinator app (real Flask, real database) without the background reaper."""
    from framehive.coordinator import create_app

    app = create_app({"TESTING": True, "FRAMEHIVE_START_REAPER": False, "SQLALCHEMY_DATABASE_URI": database_url},
                     data_dir=tmp_path / "app")
    yield app
    with app.app_context():
        from framehive.coordinator.db import db

        db.session.remove()
        db.engine.dispose()
