"""The dashboard on a real farm: a coordinator and two worker agents of two owners rendering with real Blender
and checking each other's frames, watched and driven from a real headless Chromium.

The tests share one farm and run in file order: the first job renders while the others queue behind it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from framehive.coordinator.db import db
from framehive.coordinator.models import JobBlock, Task, Worker
from selenium import webdriver
from selenium.webdriver.support.ui import Select
from sqlalchemy import select

from tests.live import Site, farm_database, running_site

from .browser import Dashboard

# One job of the sample scene renders and verifies in about half a minute on two one-thread workers.
RENDER_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Workers of two untrusted owners (owner1, owner2): every task of theirs is checked by the other."""
    with running_site(tmp_path_factory.mktemp("dashboard-farm"), workers=2, trusted_workers=False,
                      artist=("user", "artist")) as site:
        yield site


@pytest.fixture
def dash(browser: webdriver.Chrome, site: Site) -> Dashboard:
    return Dashboard(browser, site.url)


@pytest.fixture(scope="module")
def rendered(site: Site, scene: Path) -> dict[str, Any]:
    """The artist's job that the first test watches render."""
    return site.client("artist").submit(scene, frames="1-24", chunk=2, name="hero-shot")


def progress_of(dash: Dashboard, css: str) -> tuple[int, int, int]:
    """Verified, rendered and total frames as the progress bar under ``css`` shows them."""
    return tuple(int(dash.attr(f"{css} .progress", f"data-{key}") or 0)  # type: ignore[return-value]
                 for key in ("verified", "rendered", "total"))


def job_state(dash: Dashboard) -> str | None:
    return dash.attr("#job", "data-state")


def test_a_running_job_advances_without_reload_and_its_detail_shows_frames_and_checks(
        dash: Dashboard, site: Site, rendered: dict[str, Any]):
    row = f'#jobs tr[data-job-id="{rendered["id"]}"]'
    dash.login(site.tokens["site_admin"], "/jobs")
    dash.mark()
    first = dash.until(lambda d: (p := progress_of(dash, row))[0] > 0 and p[0] < p[2] and p, "a first verified frame")
    dash.until(lambda d: progress_of(dash, row)[0] > first[0], "more verified frames, without a reload")
    assert dash.marked(), "the page was reloaded"
    dash.screenshot("jobs-running")

    dash.find(f"{row} a").click()
    dash.until(lambda d: d.current_url.endswith(f"/dashboard/jobs/{rendered['id']}"), "the job's page")
    dash.until(lambda d: dash.count("#frame-grid .cell") == 24, "the frame grid")
    assert "Needs\nBlender ≥ 5.0" in dash.find("#job-facts").text, "what an agent needs (the scene's Blender)"
    dash.mark()  # this page too follows the job to its end without a reload
    dash.until(lambda d: dash.count('#frame-grid .cell[data-state="verified"]'), "verified frames in the grid")
    passed = '#checks .check[data-verdict="pass"]'
    dash.until(lambda d: dash.images_loaded(f"{passed} img.crop-renderer") and
               dash.images_loaded(f"{passed} img.crop-verifier"), "both crops of the passed checks")
    dash.screenshot("job-running")
    # Newest first: a tier-1 check (the whole frame at low resolution, 160x90 gets one) may be on top.
    check = dash.until(lambda d: next((c.text for c in dash.all(passed) if c.text.split()[1] != "tier1"), None),
                       "a passed region or spot check")
    assert "Renderer" in check and "Verifier" in check and "strict" in check and "maxabs" in check

    dash.until(lambda d: job_state(dash) == "completed", "completion", timeout=RENDER_TIMEOUT)
    dash.until(lambda d: dash.count('#frame-grid .cell[data-state="verified"]') == 24, "every frame verified")
    tier1 = dash.until(lambda d: [c.text for c in dash.all("#checks .check") if c.text.split()[1] == "tier1"],
                       "tier-1 checks (on by default)")
    assert all("min_tile_psnr" in text for text in tier1), "each with its tile PSNR"
    dash.until(lambda d: dash.images_loaded("#preview-image"), "the last rendered frame")
    dash.until(lambda d: dash.images_loaded("#thumbs img"), "thumbnails")
    assert {c.text for c in dash.all("#tasks tbody td:nth-child(5)")} <= {"w1", "w2", "w1, w2"}
    assert dash.marked()
    dash.screenshot("job-detail")


def test_an_admin_cancels_a_job_and_sees_its_state_change(dash: Dashboard, site: Site, scene: Path):
    job = site.client("artist").submit(scene, frames="1-24", chunk=2, name="to-cancel")
    dash.login(site.tokens["site_admin"], f"/jobs/{job['id']}")
    dash.find("#job-actions button.act-cancel").click()
    dash.until(lambda d: d.switch_to.alert, "the confirmation").accept()
    dash.until(lambda d: job_state(dash) == "cancelled", "cancelled")
    assert site.client("artist").job(job["id"])["state"] == "cancelled"
    assert dash.all("#job-actions button") == []  # nothing left to do on a finished job


def test_an_admin_pauses_reprioritises_requeues_and_resumes_a_job(dash: Dashboard, site: Site, scene: Path):
    job = site.client("artist").submit(scene, frames="1-24", chunk=2, name="second-shot")
    row = f'#jobs tr[data-job-id="{job["id"]}"]'
    dash.login(site.tokens["site_admin"], "/jobs")
    dash.find(f"{row} button.act-pause").click()
    dash.until(lambda d: dash.attr(row, "data-state") == "paused", "the job paused")
    assert site.client("artist").job(job["id"])["state"] == "paused"

    dash.find(f"{row} button.act-priority").click()
    prompt = dash.until(lambda d: d.switch_to.alert, "the priority prompt")
    prompt.send_keys("80")
    prompt.accept()
    dash.until(lambda d: dash.driver.find_element("css selector", f"{row} .priority").text == "80", "priority 80")
    assert site.client("artist").job(job["id"])["priority"] == 80

    with farm_database(site.farm):  # a task that failed once: what a requeue gives a fresh start
        task = db.session.execute(select(Task).filter_by(job_id=job["id"], state="queued")).scalars().first()
        assert task is not None
        task.failures = 1
        db.session.commit()
    dash.find(f"{row} button.act-requeue").click()
    dash.until(lambda d: d.switch_to.alert, "the confirmation").accept()
    dash.until(lambda d: not dash.all(f"{row} button.act-requeue"), "nothing left to requeue")
    assert all(t["failures"] == 0 for t in site.client("artist").job(job["id"])["tasks"])

    dash.find(f"{row} button.act-resume").click()
    dash.until(lambda d: dash.attr(row, "data-state") in ("queued", "running"), "the job resumed")
    refused = dash.fetch("POST", f"/actions/jobs/{job['id']}/resume")  # twice: the backend says why not
    assert refused["status"] == 409 and "not paused" in refused["body"]["error"]["message"]


def test_an_admin_suspends_and_unsuspends_a_worker_and_lifts_a_blocklist(
        dash: Dashboard, site: Site, rendered: dict[str, Any]):
    def block() -> int:
        with farm_database(site.farm):  # a blocklist entry, as three failures on the job would leave
            w1 = db.session.execute(select(Worker).filter_by(name="w1")).scalar_one()
            db.session.add(JobBlock(job_id=rendered["id"], worker_id=w1.id))
            db.session.commit()
            return w1.id

    def blocks_text() -> str:
        return dash.driver.find_element("css selector", f"{row} .blocks").text

    row = f'#workers tr[data-worker-id="{block()}"]'
    dash.login(site.tokens["site_admin"], "/workers")
    dash.until(lambda d: blocks_text().startswith(f"#{rendered['id']}"), "the blocklist entry")
    dash.screenshot("workers")
    dash.find(f'{row} button.act-unblock-job[data-job="{rendered["id"]}"]').click()  # this job only
    dash.until(lambda d: blocks_text() == "–", "no blocklist")
    block()
    dash.until(lambda d: blocks_text().startswith(f"#{rendered['id']}"), "the blocklist entry again")
    dash.find(f"{row} button.act-unblock").click()  # every job
    dash.until(lambda d: d.switch_to.alert, "the confirmation").accept()
    dash.until(lambda d: blocks_text() == "–", "no blocklist")

    dash.find(f"{row} button.act-suspend").click()
    dash.until(lambda d: d.switch_to.alert, "the confirmation").accept()
    dash.until(lambda d: dash.attr(row, "data-suspended") == "true", "w1 suspended")
    assert next(w for w in site.client("site_admin").workers() if w["name"] == "w1")["suspended"]
    dash.find(f"{row} button.act-unsuspend").click()
    dash.until(lambda d: dash.attr(row, "data-suspended") == "false", "w1 working again")


def test_a_worker_owner_sees_only_their_own_workers_read_only(dash: Dashboard, site: Site, rendered: dict[str, Any]):
    frame = site.client("artist").job(rendered["id"])["frame_states"][0]
    image = f"/img/jobs/{rendered['id']}/frames/{frame['frame']}/{frame['sha256']}/thumb.png"
    dash.login(site.tokens["artist"], "/jobs")
    assert dash.fetch("GET", image)["status"] == 200  # the artist's own verified frame

    dash.login(site.tokens["owner1"], "/workers")
    rows = dash.until(lambda d: dash.all("#workers tbody tr"), "the worker list")
    assert [r.find_element("css selector", "td").text for r in rows] == ["w1"]
    assert dash.all("#workers button.act") == [] and "read-only" in dash.text("#who-kind")
    forged = dash.fetch("POST", f"/actions/workers/{rows[0].get_attribute('data-worker-id')}/suspend")
    assert forged["status"] == 403
    assert not site.client("site_admin").workers()[0]["suspended"]
    assert dash.fetch("GET", f"/data/jobs/{rendered['id']}")["status"] == 404  # not their job
    assert dash.fetch("GET", image)["status"] == 404


def test_the_overview_counts_the_network_and_lists_what_happened(dash: Dashboard, site: Site):
    dash.login(site.tokens["site_admin"], "/")
    dash.until(lambda d: dash.driver.find_element("css selector", '[data-stat="workers"] .value').text == "2",
               "two workers online")
    kinds = dash.until(lambda d: {e.get_attribute("data-kind") for e in dash.all("#events li")} >=
                       {"job_paused", "job_cancelled", "worker_suspended"} and
                       {e.get_attribute("data-kind") for e in dash.all("#events li")}, "the admin's actions")
    assert "job_priority" in kinds
    assert dash.driver.find_element("css selector", '[data-stat="pass-rate"] .value').text == "100 %"
    dash.screenshot("overview")
    dash.open("/jobs")
    dash.until(lambda d: dash.count("#jobs tbody tr") == 3, "the three jobs")
    dash.screenshot("jobs")
    Select(dash.find('#filters select[name="state"]')).select_by_value("cancelled")
    dash.until(lambda d: [r.get_attribute("data-state") for r in dash.all("#jobs tbody tr")] == ["cancelled"],
               "only the cancelled job")
    assert dash.driver.current_url.endswith("/dashboard/jobs?state=cancelled")  # a reload keeps the filter
    dash.open("/jobs?state=cancelled")  # the form starts from the address
    dash.until(lambda d: [r.get_attribute("data-state") for r in dash.all("#jobs tbody tr")] == ["cancelled"],
               "only the cancelled job after a reload")
    assert Select(dash.find('#filters select[name="state"]')).first_selected_option.get_attribute("value") == \
        "cancelled"

    dash.open("/accounts")
    dash.until(lambda d: dash.count("#ledger tbody tr") > 10 and dash.count("#accounts tbody tr") >= 4, "the ledger")
    dash.screenshot("accounts")
    dash.until(lambda d: dash.count('#reason option[value="refund"]'), "the ledger's reasons")
    Select(dash.find("#reason")).select_by_value("refund")
    dash.until(lambda d: {r.get_attribute("data-reason") for r in dash.all("#ledger tbody tr")} == {"refund"},
               "only refunds (job 1's unused escrow, job 2's cancelled one)")


def test_the_pages_reconnect_after_a_coordinator_restart(dash: Dashboard, site: Site):
    dash.login(site.tokens["site_admin"], "/workers")
    dash.until(lambda d: len(dash.all('#workers tr[data-online="true"]')) == 2, "both workers online")
    dash.mark()
    assert site.farm.coordinator is not None and site.farm.coordinator.stop() == 0
    banner = dash.find("#banner")
    dash.until(lambda d: banner.is_displayed() and "reconnecting" in banner.text, "the reconnecting banner")
    dash.screenshot("reconnecting")
    site.farm.restart_coordinator()
    dash.until(lambda d: not banner.is_displayed(), "the banner to go once the coordinator is back", timeout=60)
    dash.until(lambda d: len(dash.all('#workers tr[data-online="true"]')) == 2, "the workers back online",
               timeout=60)
    assert dash.marked(), "the page was reloaded"
