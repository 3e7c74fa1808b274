"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium.

Selenium is pointed at the system's chromedriver and browser explicitly, so Selenium Manager never runs and
nothing is downloaded. Waits are explicit (WebDriverWait on a condition, with a deadline), never sleeps.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.farm import REPO

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
# Long enough for a poll, a page load or an action's round trip on a busy two-core machine.
WAIT = 20.0
WINDOW = (1360, 900)
T = TypeVar("T")


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium; quits on exit."""
    os.environ["SE_OFFLINE"] = "true"  # belt and braces: Selenium Manager must never fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-extensions", "--no-first-run", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot_dir() -> Path:
    """Where the run's screenshots go: ``FRAMEHIVE_SCREENSHOTS``, or test-artifacts/dashboard (git-ignored)."""
    path = Path(os.environ.get("FRAMEHIVE_SCREENSHOTS") or REPO / "test-artifacts" / "dashboard")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Dashboard:
    """One browser session on a coordinator's dashboard."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base = base_url.rstrip("/") + "/dashboard"

    def open(self, path: str = "/") -> None:
        self.driver.get(self.base + path)

    def login(self, token: str, path: str = "/") -> None:
        """Sign in from the login page and land on ``path``."""
        self.driver.delete_all_cookies()
        self.open(f"/login?next=/dashboard{path}")
        self.find("#token").send_keys(token)
        self.find("#sign-in").click()
        self.until(lambda d: "/login" not in d.current_url, "the login to go through")

    def find(self, css: str) -> WebElement:
        return self.until(ec.presence_of_element_located((By.CSS_SELECTOR, css)), f"an element {css}")

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def until(self, condition: Callable[[Any], T], what: str, timeout: float = WAIT) -> T:
        """Poll ``condition`` until it is truthy. Live pages replace elements as data changes, so a stale element
        only means "look again"."""
        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
        return wait.until(condition, f"waiting for {what}")

    def attr(self, css: str, name: str) -> str | None:
        """An attribute of the first element matching ``css``, read in one step (None if there is none)."""
        return self.driver.execute_script(
            "const el = document.querySelector(arguments[0]); return el ? el.getAttribute(arguments[1]) : null",
            css, name)

    def count(self, css: str) -> int:
        return int(self.driver.execute_script("return document.querySelectorAll(arguments[0]).length", css))

    def images_loaded(self, css: str) -> bool:
        """Whether there are images matching ``css`` and every one of them has loaded and decoded."""
        return bool(self.driver.execute_script(
            "const all = [...document.querySelectorAll(arguments[0])];"
            "return all.length > 0 && all.every((i) => i.complete && i.naturalWidth > 0)", css))

    def text(self, css: str) -> str:
        return self.find(css).text

    def screenshot(self, name: str) -> Path:
        """Save the whole page (the window grown to its height) as ``name``.png."""
        height, chrome = self.driver.execute_script(
            "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]")
        self.driver.set_window_size(WINDOW[0], max(WINDOW[1], min(int(height) + int(chrome), 4000)))
        path = screenshot_dir() / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(*WINDOW)
        return path

    def mark(self) -> None:
        """Tag the current document: ``marked()`` stays true until the page is reloaded or left."""
        self.driver.execute_script("window.__framehiveMark = true")

    def marked(self) -> bool:
        return bool(self.driver.execute_script("return window.__framehiveMark === true"))

    def fetch(self, method: str, path: str, csrf: bool = True) -> dict[str, Any]:
        """A request from inside the page (its session cookie), with or without the CSRF header: what a
        hand-made request would do. Returns ``{"status", "body"}``."""
        return self.driver.execute_async_script("""
            const [method, url, csrf, done] = arguments;
            const headers = {"Content-Type": "application/json", Accept: "application/json"};
            if (csrf) headers["X-CSRF-Token"] = document.body.dataset.csrf;
            fetch(url, {method, headers, body: method === "GET" ? undefined : "{}", credentials: "same-origin"})
              .then(async (r) => done({status: r.status, body: await r.json().catch(() => null)}))
              .catch((e) => done({status: 0, body: String(e)}));
        """, method, self.base + path, csrf)
