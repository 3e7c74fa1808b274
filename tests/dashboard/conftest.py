"""Fixtures of the dashboard's browser tests: one headless Chromium per module, one generated scene."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver

from tests.farm import make_scene

from .browser import chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample scene at 160x90: a few seconds a frame on one CPU thread, big enough to see in a screenshot."""
    return make_scene(tmp_path_factory.mktemp("scenes") / "shot.blend", frames=24, width=160, height=90,
                      samples=16)

