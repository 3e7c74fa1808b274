"""The Workers page shows each agent's confinement and its paused state with the reason, live, in real Chromium.

Two real agents on a real coordinator: one confined by Landlock, one run with ``FRAMEHIVE_LANDLOCK=0`` (as on a
kernel without it). The first is paused and resumed by its owner with ``framehive-worker pause|resume``; the page
follows without a reload.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from framehive.addon.client import Client
from framehive.worker_agent import confinement
from selenium import webdriver

from tests.farm import REPO, Farm, wait_for

from .browser import Dashboard

ONLINE = 90


def owner_command(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "framehive.worker_agent.cli", *argv], cwd=REPO, capture_output=True,
                   text=True,
                   timeout=60, env=dict(os.environ), check=True)


def cell(dash: Dashboard, name: str, css: str) -> str:
    """The text of ``css`` in the row of worker ``name`` ('' while it is not shown)."""
    return dash.driver.execute_script("""
        const row = [...document.querySelectorAll('#workers tbody tr')]
            .find((tr) => tr.querySelector('strong')?.textContent === arguments[0]);
        const el = row && row.querySelector(arguments[1]);
        return el ? el.textContent : '';""", name, css)


def test_confinement_and_pause_reason_on_the_workers_page(farm: Farm, browser: webdriver.Chrome,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    admin_token, token = farm.token("admin", "root"), farm.token("worker", "owner")
    admin = Client(farm.url, admin_token)
    farm.start_worker("steady", token)
    monkeypatch.setenv(confinement.OVERRIDE_VARIABLE, "0")  # this one's renders run unconfined
    farm.start_worker("open", token)
    monkeypatch.delenv(confinement.OVERRIDE_VARIABLE)
    wait_for(lambda: sum(w["online"] for w in admin.workers()) == 2, ONLINE, "both agents online")
    owner_command("pause", "--cache-dir", str(farm.root / "cache-steady"), "--reason", "playing a game")

    dash = Dashboard(browser, farm.url)
    dash.login(admin_token, "/workers")
    dash.until(lambda d: cell(dash, "steady", ".pause-reason") == "playing a game", "the pause and its reason")
    assert cell(dash, "steady", ".pill") == "paused"
    assert cell(dash, "steady", "td.confinement") == f"Landlock ABI {confinement.status()['abi']}"
    assert cell(dash, "open", "td.unconfined") == f"none: switched off by {confinement.OVERRIDE_VARIABLE}=0"
    assert cell(dash, "open", ".pill") == "online" and cell(dash, "steady", "td.unconfined") == ""
    dash.screenshot("workers-confinement-paused")

    dash.mark()
    owner_command("resume", "--cache-dir", str(farm.root / "cache-steady"))
    dash.until(lambda d: cell(dash, "steady", ".pill") == "online", "the resume shown")
    assert cell(dash, "steady", ".pause-reason") == "" and dash.marked(), "shown live, without a reload"
