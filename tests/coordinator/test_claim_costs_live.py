"""Claims and create-and-cancel loops against a real farm: a coordinator (claims per job set to 2 in its
environment), an honest trusted renderer and an honest trusted verifier, both real agents rendering with Blender.

Before: every claim was free (and each one a whole-frame render by a trusted node) and a job took any number of
them; a job created and cancelled gave every point back, so a loop of them cost nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from framehive.addon.client import ApiError
from framehive.coordinator import config

from tests.farm import wait_for
from tests.live import Site, running_site

RENDER_TIMEOUT = 150
CLAIM_TIMEOUT = 120


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FRAMEHIVE_MAX_CLAIMS_PER_JOB", "2")
        with running_site(tmp_path_factory.mktemp("claim-costs"), artist=("user", "artist"),
                          hank=("worker", "hank"), tess=("worker", "tess")) as site:
            site.farm.start_worker("hank-box", site.tokens["hank"], "--roles", "render")
            site.farm.start_worker("tess-box", site.tokens["tess"], "--roles", "verify")
            admin = site.client("site_admin")
            wait_for(lambda: sum(w["online"] for w in admin.workers()) == 2, 90, "both agents to come online")
            yield site


def test_a_rejected_claim_costs_its_maker_and_a_job_takes_two(site: Site, sample_scene: Path) -> None:
    artist = site.client()
    job = artist.submit(sample_scene, frames="1-3", chunk=3)
    assert artist.wait(job["id"], poll=0.2, timeout=RENDER_TIMEOUT)["state"] == "completed"
    before = artist.balance()["balance"]
    claim = artist.claim(job["id"], "1", "I do not like it")
    assert artist.balance()["balance"] == before - config.CLAIM_PRICE, "the claim's price is held at once"
    decided = wait_for(lambda: next(c for c in artist.claims(job["id"]) if c["id"] == claim["id"])["state"]
                       != "open" and artist.claims(job["id"]), CLAIM_TIMEOUT, "the trusted node to decide")
    assert decided[0]["state"] == "rejected", decided
    assert artist.balance()["balance"] == before - config.CLAIM_PRICE, "a rejected claim is not refunded"
    reasons = [entry["reason"] for entry in artist.ledger(job["id"])]
    assert reasons[:2] == ["claim_fee", "claim_hold"], reasons
    artist.claim(job["id"], "2", "nor this one")
    with pytest.raises(ApiError) as third:
        artist.claim(job["id"], "3", "nor that")
    assert (third.value.status, third.value.code) == (409, "too_many_claims")
    assert len(artist.claims(job["id"])) == 2


def test_creating_and_cancelling_jobs_costs_the_fee_each_time(site: Site, sample_scene: Path) -> None:
    artist = site.client()
    before = artist.balance()["balance"]
    for _ in range(3):
        job = artist.submit(sample_scene, frames="1-12", priority=0)
        assert artist.cancel(job["id"])["state"] == "cancelled"
    assert artist.balance()["balance"] == before - 3 * config.CANCEL_FEE
