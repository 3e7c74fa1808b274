"""Signing in and staying safe: tokens, cookies, CSRF and who may do what, in a real Chromium against a real
coordinator (no workers: these jobs stay queued)."""

from __future__ import annotations

import re
import stat
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from framehive.coordinator.dashboard.secret import ENV_VAR, SECRET_FILE, persisted_secret, server_secret
from framehive.coordinator.dashboard.sessions import SECURE_ENV_VAR
from selenium import webdriver
from werkzeug.serving import make_server

from tests.live import Site, running_site

from .browser import Dashboard

COOKIE = "framehive_session"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("dashboard-sessions"), artist=("user", "artist"),
                      other=("user", "other-artist")) as site:
        yield site


@pytest.fixture(scope="module")
def jobs(site: Site, scene: Path) -> dict[str, dict[str, Any]]:
    """A queued job of the artist's and one of another artist's."""
    return {"artist": site.client("artist").submit(scene, frames="1-4", name="artist-shot"),
            "other": site.client("other").submit(scene, frames="1-4", name="other-shot")}


@pytest.fixture
def dash(browser: webdriver.Chrome, site: Site) -> Dashboard:
    browser.delete_all_cookies()
    return Dashboard(browser, site.url)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def test_a_bad_token_is_refused_and_a_good_one_gives_an_httponly_samesite_cookie(dash: Dashboard, site: Site):
    dash.open("/jobs")
    dash.until(lambda d: "/dashboard/login?next=/dashboard/jobs" in d.current_url, "the login page")
    dash.find("#token").send_keys("fhu_not-a-token-of-this-coordinator")
    dash.find("#sign-in").click()
    assert "not valid" in dash.text("#login-error")
    assert "not-a-token" not in dash.driver.page_source
    dash.screenshot("login")

    dash.find("#token").send_keys(site.tokens["site_admin"])
    dash.find("#sign-in").click()
    dash.until(lambda d: d.current_url.endswith("/dashboard/jobs"), "the jobs page (the login's next)")
    assert dash.text("#who-account") == "site-admin"
    assert site.tokens["site_admin"] not in dash.driver.page_source
    cookie = dash.driver.get_cookie(COOKIE)
    assert cookie is not None
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax" and cookie["path"] == "/dashboard"
    assert cookie["secure"] is False  # plain http here; see the https test below
    assert site.tokens["site_admin"] not in cookie["value"]
    assert COOKIE not in dash.driver.execute_script("return document.cookie")  # scripts cannot read it


def test_the_login_form_needs_its_csrf_token(site: Site):
    session = requests.Session()
    refused = session.post(f"{site.url}/dashboard/login", data={"token": site.tokens["site_admin"]},
                           allow_redirects=False, timeout=10)
    assert refused.status_code == 403
    assert session.get(f"{site.url}/dashboard/data/jobs", timeout=10).status_code == 401
    csrf = csrf_of(session.get(f"{site.url}/dashboard/login", timeout=10).text)
    accepted = session.post(f"{site.url}/dashboard/login", allow_redirects=False, timeout=10,
                            data={"token": site.tokens["site_admin"], "csrf_token": csrf})
    assert accepted.status_code == 303
    assert session.get(f"{site.url}/dashboard/data/jobs", timeout=10).status_code == 200


def test_an_action_without_the_csrf_token_is_refused(dash: Dashboard, site: Site, jobs: dict[str, Any]):
    job = jobs["artist"]
    dash.login(site.tokens["site_admin"], "/jobs")
    refused = dash.fetch("POST", f"/actions/jobs/{job['id']}/cancel", csrf=False)
    assert refused["status"] == 403 and refused["body"]["error"]["code"] == "csrf"
    assert site.client("artist").job(job["id"])["state"] == "queued"
    # The same request with the token gets past the check (and is refused only for naming no real action).
    assert dash.fetch("POST", f"/actions/jobs/{job['id']}/no-such-action")["status"] == 404


def test_an_artist_sees_and_acts_on_only_their_own_jobs_and_no_worker(
        dash: Dashboard, site: Site, jobs: dict[str, Any]):
    mine, theirs = jobs["artist"]["id"], jobs["other"]["id"]
    dash.login(site.tokens["artist"], "/jobs")
    row = dash.find(f'#jobs tr[data-job-id="{mine}"]')
    assert dash.all(f'#jobs tr[data-job-id="{theirs}"]') == []
    assert "your jobs only" in dash.text("#who-kind")
    assert "Actions" in dash.text("#jobs thead")
    assert {b.get_attribute("data-action") for b in row.find_elements("css selector", "button.act")} == {
        "pause", "priority", "cancel"}
    dash.screenshot("jobs-artist")

    dash.open(f"/jobs/{mine}")
    dash.until(lambda d: dash.attr("#job", "data-state") == "queued", "the job's state")
    dash.find('#job-actions button[data-action="pause"]').click()
    dash.until(lambda d: dash.attr("#job", "data-state") == "paused", "the artist's own job paused")
    assert site.client("artist").job(mine)["state"] == "paused"
    dash.find('#job-actions button[data-action="resume"]').click()
    dash.until(lambda d: dash.attr("#job", "data-state") == "queued", "the artist's own job resumed")
    forged = dash.fetch("POST", f"/actions/jobs/{theirs}/cancel")  # with the session's CSRF token: still no
    assert forged["status"] == 404 and forged["body"]["error"]["code"] == "not_found"
    assert site.client("other").job(theirs)["state"] == "queued"
    refused = dash.fetch("POST", "/actions/workers/1/suspend")
    assert refused["status"] == 403 and refused["body"]["error"]["code"] == "forbidden"
    assert site.client("artist").job(mine)["state"] == "queued"

    assert dash.fetch("GET", f"/data/jobs/{theirs}")["status"] == 404
    dash.open(f"/jobs/{theirs}")
    assert "Not Found" in dash.driver.title


def test_revoking_the_token_ends_its_dashboard_sessions(dash: Dashboard, site: Site):
    token = site.mint(short_lived=("admin", "short-lived-admin"))["short_lived"]
    dash.login(token, "/workers")
    admin = {"Authorization": f"Bearer {site.tokens['site_admin']}"}
    listing = requests.get(f"{site.url}/api/v1/admin/tokens?account=short-lived-admin", headers=admin, timeout=10)
    revoked = requests.delete(f"{site.url}/api/v1/admin/tokens/{listing.json()['tokens'][0]['id']}",
                              headers=admin, timeout=10)
    assert revoked.status_code == 200
    dash.until(lambda d: "/dashboard/login" in d.current_url, "the next poll to send the page to the login")


def test_signing_out_ends_the_session(dash: Dashboard, site: Site):
    dash.login(site.tokens["site_admin"], "/accounts")
    dash.find("#logout").click()
    dash.until(lambda d: d.current_url.endswith("/dashboard/login"), "the login page")
    assert dash.driver.get_cookie(COOKIE) is None or "token_id" not in str(dash.driver.get_cookie(COOKIE))
    dash.open("/accounts")
    dash.until(lambda d: "/dashboard/login" in d.current_url, "the login page again")


def test_after_login_only_dashboard_addresses_are_followed(dash: Dashboard, site: Site):
    dash.open("/login?next=//evil.example/steal")
    dash.find("#token").send_keys(site.tokens["site_admin"])
    dash.find("#sign-in").click()
    dash.until(lambda d: d.current_url == f"{site.url}/dashboard/", "the overview, not the other site")


@contextmanager
def served(tmp_path: Path, ssl_context: tuple[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """A coordinator app in a real server on a loopback port (https with ``ssl_context``): its dashboard's URL and
    an admin token."""
    from framehive.coordinator import create_app
    from framehive.coordinator.auth import create_token
    from framehive.coordinator.db import db

    app = create_app({"FRAMEHIVE_START_REAPER": False}, data_dir=tmp_path / "coordinator")
    with app.app_context():
        token = create_token("admin", "root")
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{server.port}/dashboard", token
    finally:
        server.shutdown()
        thread.join(10)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def login_cookie(base: str, token: str, **request: Any) -> str:
    """Sign in with plain HTTP requests; returns the session cookie's Set-Cookie header."""
    session = requests.Session()
    csrf = csrf_of(session.get(f"{base}/login", timeout=10, **request).text)
    response = session.post(f"{base}/login", data={"token": token, "csrf_token": csrf}, allow_redirects=False,
                            timeout=10, **request)
    assert response.status_code == 303
    assert session.get(f"{base}/data/jobs", timeout=10, **request).status_code == 200
    return response.headers["Set-Cookie"]


def flags(set_cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}


def signed_in(base: str, token: str) -> requests.Session:
    session = requests.Session()
    csrf = csrf_of(session.get(f"{base}/login", timeout=10).text)
    response = session.post(f"{base}/login", data={"token": token, "csrf_token": csrf}, allow_redirects=False,
                            timeout=10)
    assert response.status_code == 303
    return session


def sign_out(base: str, session: requests.Session) -> None:
    csrf = csrf_of(session.get(f"{base}/", timeout=10).text)
    assert session.post(f"{base}/logout", data={"csrf_token": csrf}, allow_redirects=False,
                        timeout=10).status_code == 303


def test_a_cookie_saved_before_signing_out_no_longer_works(tmp_path: Path):
    """Signing out ends the session on the server: a copy of the cookie (kept by malware, a shared machine's
    browser profile, a proxy's log) is refused afterwards, while another session of the same token goes on."""
    with served(tmp_path) as (base, token):
        browser, other = signed_in(base, token), signed_in(base, token)
        saved = browser.cookies.get(COOKIE)
        assert requests.get(f"{base}/data/jobs", cookies={COOKIE: saved}, timeout=10).status_code == 200
        sign_out(base, browser)
        replayed = requests.get(f"{base}/data/jobs", cookies={COOKIE: saved}, timeout=10)
        assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "signed_out"
        page = requests.get(f"{base}/jobs", cookies={COOKIE: saved}, allow_redirects=False, timeout=10)
        assert page.status_code == 302 and "/dashboard/login" in page.headers["Location"]
        assert other.get(f"{base}/data/jobs", timeout=10).status_code == 200
        assert signed_in(base, token).get(f"{base}/data/jobs", timeout=10).status_code == 200


def test_the_session_cookie_is_secure_over_https(tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    with served(tmp_path, (str(cert), str(key))) as (base, token):
        # verify= per request: a REQUESTS_CA_BUNDLE in the environment would beat Session.verify
        cookie = login_cookie(base, token, verify=str(cert))
    assert {"secure", "httponly", "samesite", "path"} <= flags(cookie) and "SameSite=Lax" in cookie


def test_behind_a_tls_proxy_the_cookie_can_be_made_secure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with served(tmp_path / "plain") as (base, token):
        assert "secure" not in flags(login_cookie(base, token))
    monkeypatch.setenv(SECURE_ENV_VAR, "1")
    with served(tmp_path / "proxied") as (base, _token):
        # The login page's cookie (it holds the form's CSRF token) is Secure already; a browser would send it
        # back only over https, which is what the proxy gives it.
        assert "secure" in flags(requests.get(f"{base}/login", timeout=10).headers["Set-Cookie"])


def test_the_signing_key_is_configured_or_kept_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    config = {"FRAMEHIVE_DATA_DIR": str(tmp_path)}
    first = server_secret(config)
    assert server_secret(config) == first == persisted_secret(tmp_path / SECRET_FILE)
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    shared = "s" * 40  # several coordinators on one database: the same secret on each
    monkeypatch.setenv(ENV_VAR, shared)
    assert server_secret(config) == shared
    monkeypatch.setenv(ENV_VAR, "short")
    with pytest.raises(ValueError, match="at least"):
        server_secret(config)
