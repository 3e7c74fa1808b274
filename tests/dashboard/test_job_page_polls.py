"""The job page of a big job (issue 16, point 5): its grid is runs of frames of one state, not a cell per frame, and
each poll names the version the page shows, answered in a few bytes while the job is unchanged. A real coordinator
with no workers (nothing changes until the test cancels the job), watched from a real headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from framehive.coordinator import ledger
from framehive.coordinator.dashboard.job_detail import GRID_FRAMES
from framehive.coordinator.db import db
from framehive.coordinator.models import Account
from selenium import webdriver
from sqlalchemy import select

from tests.farm import make_scene
from tests.live import Site, farm_database, running_site

from .browser import Dashboard

FRAMES = GRID_FRAMES + 100
POLLS = """return performance.getEntriesByType("resource").filter((e) => e.name.includes("/data/jobs/"))
  .map((e) => [e.name, e.encodedBodySize]);"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("job-page"), artist=("user", "artist")) as site:
        with farm_database(site.farm):  # the starting grant pays for fewer frames than a big job has
            artist = db.session.execute(select(Account).filter_by(name="artist")).scalar_one()
            ledger.grant(artist.id, 100_000, "a big job")
            db.session.commit()
        yield site


@pytest.fixture(scope="module")
def long_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scene(tmp_path_factory.mktemp("scenes") / "long.blend", frames=FRAMES)


def test_a_big_jobs_grid_is_runs_and_an_unchanged_job_costs_a_few_bytes_a_poll(
        browser: webdriver.Chrome, site: Site, long_scene: Path) -> None:
    dash = Dashboard(browser, site.url)
    artist = site.client("artist")
    job = artist.submit(long_scene, frames=f"1-{FRAMES}", chunk=50, name="long-shot")
    dash.login(site.tokens["artist"], f"/jobs/{job['id']}")
    dash.until(lambda d: dash.count("#frame-grid .cell"), "the frame grid")
    runs = [(c.get_attribute("data-frame"), c.get_attribute("data-last"), c.get_attribute("data-state"))
            for c in dash.all("#frame-grid .cell")]
    assert runs == [("1", str(FRAMES), "queued")], runs  # one cell, not one per frame

    polls = dash.until(lambda d: len(p := d.execute_script(POLLS)) >= 3 and p, "three polls")
    first, later = polls[0], polls[1:]
    assert "known=" not in first[0] and first[1] > 1000, first
    assert all("known=" in url and 0 < size < 100 for url, size in later), later

    dash.mark()
    artist.cancel(job["id"])  # a change: the next poll, still naming the old version, gets the new job
    dash.until(lambda d: [c.get_attribute("data-state") for c in dash.all("#frame-grid .cell")] == ["cancelled"],
               "the cancelled job's grid")
    assert dash.marked(), "the page was reloaded"
