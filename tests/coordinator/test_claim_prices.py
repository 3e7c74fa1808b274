"""Claims and cancels cost something (in-process, on SQLite and PostgreSQL; the same against a real farm with real
Blender in test_claim_costs_live.py).

Before: a claim was free (each one a whole-frame render for a trusted node) and a job took any number of them;
creating and cancelling a job gave every point back, so a loop of them cost nothing and left its rows behind.
"""

from __future__ import annotations

from framehive.coordinator import config, ledger
from framehive.coordinator.db import db
from framehive.coordinator.models import Claim, Job, LedgerEntry
from framehive.coordinator.verification import leasing
from sqlalchemy import select

from tests.coordinator.kit import answer, noise_png
from tests.coordinator.test_bad_input import row_counts
from tests.coordinator.test_points import assert_conserved, balance_of
from tests.coordinator.test_verification import accepted_on_trust, node  # noqa: F401 - node is a fixture

from .conftest import Api

CLAIM = config.CLAIM_PRICE


def claim(api: Api, job_id: int, frames: str):  # type: ignore[no-untyped-def]
    return api.post(f"/api/v1/jobs/{job_id}/claims", json={"frames": frames, "reason": "looks wrong"})


def entries(reason: str) -> list[tuple[str, str, int]]:
    rows = db.session.execute(select(LedgerEntry).filter_by(reason=reason).order_by(LedgerEntry.id)).scalars()
    return [(e.from_book, e.to_book, e.amount) for e in rows]


def test_a_rejected_claim_costs_its_maker(v, node, api):  # type: ignore[no-untyped-def]  # noqa: F811
    task = accepted_on_trust(v, image=noise_png)  # honest frames: the claim will be rejected
    before = balance_of("alice")
    response = claim(api, v["job_id"], ",".join(map(str, task.frame_numbers)))
    assert response.status_code == 201, response.get_json()
    book = ledger.claim_book(response.get_json()["id"])
    assert balance_of("alice") == before - 2 * CLAIM and ledger.balance(book) == 2 * CLAIM, "held at filing"
    answer(leasing.claim_check(node))
    answer(leasing.claim_check(node))
    assert db.session.get(Claim, response.get_json()["id"]).state == "rejected"
    assert balance_of("alice") == before - 2 * CLAIM, "a rejected claim is not refunded"
    assert entries("claim_fee") == [(book, ledger.NETWORK, 2 * CLAIM)] and ledger.balance(book) == 0
    assert_conserved()


def test_a_confirmed_claim_gives_the_hold_back(v, node, api):  # type: ignore[no-untyped-def]  # noqa: F811
    task = accepted_on_trust(v, image=lambda n: noise_png(1000 + n))  # fakes nobody checked
    before = balance_of("alice")
    response = claim(api, v["job_id"], str(task.frame_numbers[0]))
    assert balance_of("alice") == before - CLAIM
    answer(leasing.claim_check(node))
    assert db.session.get(Claim, response.get_json()["id"]).state == "confirmed"
    book = ledger.claim_book(response.get_json()["id"])
    assert entries("claim_refund") == [(book, ledger.account_book(db.session.get(Job, v["job_id"]).account_id),
                                        CLAIM)]
    assert ledger.balance(book) == 0
    assert_conserved()


def test_a_claim_the_claimant_cannot_pay_for_is_402_and_leaves_nothing(app, v, api, tokens):  # type: ignore[no-untyped-def]
    task = accepted_on_trust(v, image=noise_png)
    spend = balance_of("alice") - CLAIM + 1  # leave alice one point short of the claim
    alice = db.session.get(Job, v["job_id"]).account_id
    ledger.transfer(ledger.account_book(alice), ledger.NETWORK, spend, "stake")
    db.session.commit()
    before = (row_counts(app), db.session.execute(select(LedgerEntry.id)).scalars().all())
    response = claim(api, v["job_id"], str(task.frame_numbers[0]))
    db.session.rollback()  # the request shared the fixture's app context; a server's teardown ends it so
    assert response.status_code == 402, response.get_json()
    assert response.get_json()["error"]["details"] == {"balance": CLAIM - 1, "price": CLAIM}
    assert (row_counts(app), db.session.execute(select(LedgerEntry.id)).scalars().all()) == before
    assert db.session.execute(select(Claim)).first() is None


def test_a_job_takes_so_many_claims(app, v, api):  # type: ignore[no-untyped-def]
    app.config["FRAMEHIVE_MAX_CLAIMS_PER_JOB"] = 2
    task = accepted_on_trust(v, image=noise_png)
    first, second = task.frame_numbers
    assert [claim(api, v["job_id"], str(n)).status_code for n in (first, second)] == [201, 201]
    response = claim(api, v["job_id"], str(first))
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "too_many_claims"
    assert response.get_json()["error"]["details"] == {"claims": 2, "limit": 2}


def test_an_owner_pays_the_cancel_fee_an_admin_does_not(app, api, tokens, scene_sha):  # type: ignore[no-untyped-def]
    admin = Api(app, tokens["admin"])
    with app.app_context():
        start = balance_of("alice")
        mine = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-2"}).get_json()
        assert api.post(f"/api/v1/jobs/{mine['id']}/cancel").status_code == 200
        assert balance_of("alice") == start - config.CANCEL_FEE, "the owner's cancel costs the fee"
        assert entries("cancel_fee") == [(ledger.escrow_book(mine["id"]), ledger.NETWORK, config.CANCEL_FEE)]
        other = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-2"}).get_json()
        assert admin.post(f"/api/v1/jobs/{other['id']}/cancel").status_code == 200
        assert balance_of("alice") == start - config.CANCEL_FEE, "an admin's cancel is free"
        assert ledger.balance(ledger.escrow_book(other["id"])) == 0
        assert_conserved()


def test_a_claim_filed_on_a_running_job_survives_its_cancel(v, node, api):  # type: ignore[no-untyped-def]  # noqa: F811
    """Before: cancelling the job voided every open check of its tasks, the claim's too, so the claim stayed open
    for ever and its price stayed held (no verifier could lease a void check)."""
    task = accepted_on_trust(v, image=lambda n: noise_png(1000 + n))  # fakes nobody checked; the job still runs
    response = claim(api, v["job_id"], str(task.frame_numbers[0]))
    assert response.status_code == 201, response.get_json()
    claim_id = response.get_json()["id"]
    assert api.post(f"/api/v1/jobs/{v['job_id']}/cancel").status_code == 200
    check = leasing.claim_check(node)
    assert check is not None and check.kind == "claim", "the claim's re-render is still there to take"
    answer(check)
    assert db.session.get(Claim, claim_id).state == "confirmed"
    assert ledger.balance(ledger.claim_book(claim_id)) == 0, "nothing stays held"
    assert_conserved()
