"""The Accounts page shows failure accounting: the jobs an account is blocked from (failures, limits, refused) and
whether it is suspended and why. Admins see every account with the blocked jobs' names and links; a blocked
account's owner sees its own blocks by job id only (no names of its victims' jobs); an artist sees no one else.

The data on SQLite and PostgreSQL in process; the page in a real headless Chromium against a real coordinator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from framehive.coordinator import events
from framehive.coordinator.auth import caller_for_secret, create_token
from framehive.coordinator.dashboard.accounts_data import BLOCKS_LISTED, list_accounts
from framehive.coordinator.db import db
from framehive.coordinator.models import Account, AccountBlock
from selenium import webdriver
from sqlalchemy import select

from tests.coordinator.conftest import Api
from tests.live import Site, farm_database, running_site

from .browser import Dashboard

SUSPENDED = "account griefer suspended: its agents failed 3 jobs of other artists within 24 h"


def block(job_id: int, account: str, reason: str) -> None:
    """What failure_accounting writes when an account's agents fail (or cannot render) a job."""
    owner = db.session.execute(select(Account).filter_by(name=account)).scalar_one()
    db.session.add(AccountBlock(job_id=job_id, account_id=owner.id, reason=reason))


def suspend(account: str) -> None:
    owner = db.session.execute(select(Account).filter_by(name=account)).scalar_one()
    owner.suspended = True
    events.record(events.ACCOUNT_SUSPENDED, SUSPENDED, account=owner)


def rows(secret: str) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in list_accounts(caller_for_secret(secret))}


def test_blocks_and_suspension_per_viewer(app, sample_scene: Path) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        secrets = {"artist": create_token("user", "artist"), "griefer": create_token("worker", "griefer"),
                   "admin": create_token("admin", "root")}
    artist = Api(app, secrets["artist"])
    scene = artist.upload(sample_scene.read_bytes())
    jobs = [artist.post("/api/v1/jobs", json={"scene": scene, "frames": "1", "name": f"shot-{i}"}).get_json()["id"]
            for i in range(BLOCKS_LISTED + 2)]
    with app.app_context():
        for number, job_id in enumerate(jobs):
            block(job_id, "griefer", "limits" if number == 0 else "failures")
        suspend("griefer")
        db.session.commit()

        admin = rows(secrets["admin"])
        griefer = admin["griefer"]
        assert (griefer["suspended"], griefer["suspended_why"], griefer["blocks_total"]) == (True, SUSPENDED,
                                                                                               len(jobs))
        assert [b["job"] for b in griefer["blocks"]] == jobs[::-1][:BLOCKS_LISTED], "the newest, newest first"
        assert griefer["blocks"][0] == {**griefer["blocks"][0], "job_name": f"shot-{len(jobs) - 1}",
                                        "visible": True, "reason": "failures"}
        assert (admin["artist"]["blocks"], admin["artist"]["blocks_total"], admin["artist"]["suspended"]) == (
            [], 0, False)

        own = rows(secrets["griefer"])
        assert list(own) == ["griefer"] and own["griefer"]["blocks_total"] == len(jobs)
        assert {(b["job_name"], b["visible"]) for b in own["griefer"]["blocks"]} == {(None, False)}, \
            "a griefer learns no names of its victims' jobs"
        assert list(rows(secrets["artist"])) == ["artist"]
        db.session.remove()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, scene: Path) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("dashboard-blocks"), artist=("user", "artist"),
                      griefer=("worker", "griefer"), honest=("worker", "honest")) as site:
        hero = site.client("artist").submit(scene, frames="1-2", name="hero-shot")["id"]
        crowd = site.client("artist").submit(scene, frames="3-4", name="crowd-shot")["id"]
        with farm_database(site.farm):
            block(hero, "griefer", "failures")
            block(crowd, "griefer", "limits")
            block(crowd, "honest", "limits")
            suspend("griefer")
            db.session.commit()
            site.tokens.update(hero=str(hero), crowd=str(crowd))
        yield site


@pytest.fixture
def dash(browser: webdriver.Chrome, site: Site) -> Dashboard:
    return Dashboard(browser, site.url)


def blocks_of(dash: Dashboard, account: str) -> list[tuple[str, str, str]]:
    """(job, reason, text) of each blocked job listed in ``account``'s row."""
    return [(li.get_attribute("data-job"), li.get_attribute("data-reason"), li.text)
            for li in dash.all(f'#accounts tr[data-account="{account}"] ul.blocks li')]


def test_an_admin_sees_who_is_blocked_from_what_and_who_is_suspended(dash: Dashboard, site: Site) -> None:
    hero, crowd = site.tokens["hero"], site.tokens["crowd"]
    dash.login(site.tokens["site_admin"], "/accounts")
    dash.until(lambda d: len(blocks_of(dash, "griefer")) == 2, "the griefer's blocks")
    assert blocks_of(dash, "griefer") == [(crowd, "limits", f"#{crowd} crowd-shot limits"),
                                          (hero, "failures", f"#{hero} hero-shot failures")]
    assert dash.attr(f'#accounts tr[data-account="griefer"] li[data-job="{hero}"] a', "href").endswith(
        f"/dashboard/jobs/{hero}")
    assert dash.attr('#accounts tr[data-account="griefer"]', "data-suspended") == "true"
    assert SUSPENDED in dash.text('#accounts tr[data-account="griefer"] .why')
    assert blocks_of(dash, "honest") == [(crowd, "limits", f"#{crowd} crowd-shot limits")]
    assert dash.attr('#accounts tr[data-account="honest"]', "data-suspended") == "false"
    assert dash.text('#accounts tr[data-account="artist"] td.blocks') == "–"
    dash.screenshot("accounts-blocks")


def test_a_blocked_owner_sees_its_blocks_but_not_the_victims_jobs(dash: Dashboard, site: Site) -> None:
    dash.login(site.tokens["griefer"], "/accounts")
    dash.until(lambda d: len(blocks_of(dash, "griefer")) == 2, "its own blocks")
    assert [text for _, _, text in blocks_of(dash, "griefer")] == [f"#{site.tokens['crowd']} limits",
                                                                   f"#{site.tokens['hero']} failures"]
    assert dash.count("#accounts tbody tr") == 1 and dash.count("#accounts ul.blocks a") == 0
    assert "hero-shot" not in dash.text("#accounts") and SUSPENDED in dash.text("#accounts .why")


def test_an_artist_sees_only_its_own_account(dash: Dashboard, site: Site) -> None:
    dash.login(site.tokens["artist"], "/accounts")
    dash.until(lambda d: dash.count('#accounts tr[data-account="artist"]') == 1, "its account")
    assert dash.count("#accounts tbody tr") == 1 and dash.count("#accounts ul.blocks li") == 0
