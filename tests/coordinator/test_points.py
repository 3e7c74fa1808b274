"""Points: escrow at submit, pay per verified frame and per check, refunds, penalties, grants, and 402."""

from __future__ import annotations

from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases, ledger
from framehive.coordinator.db import db
from framehive.coordinator.models import Account, Blob, Frame, Job, LedgerEntry, Task
from framehive.coordinator.verification import decide, leasing
from sqlalchemy import func, select

from tests.coordinator.kit import TIER1_SIZE, answer, judge, noise_png, render, tier1_on
from tests.coordinator.test_bad_input import row_counts

PRICE = 13  # frame 10 + check 2 + tier-1 hold 1 (rate 0.75 x tier-1 price 1, rounded up), per frame


def balance_of(name: str) -> int:
    account = db.session.execute(select(Account).filter_by(name=name)).scalar_one()
    return ledger.balance(ledger.account_book(account.id))


def books() -> dict[str, int]:
    names = set(db.session.execute(select(LedgerEntry.from_book)).scalars()) | \
        set(db.session.execute(select(LedgerEntry.to_book)).scalars())
    return {book: ledger.balance(book) for book in names}


def assert_conserved() -> None:
    everything = books()
    assert sum(everything.values()) == 0, "double entry: every movement leaves one book and enters another"
    granted = -everything.get(ledger.MINT, 0)
    assert sum(v for k, v in everything.items() if k != ledger.MINT) == granted
    assert all(v >= 0 for k, v in everything.items() if k != ledger.MINT), everything


def test_new_accounts_get_the_starting_grant_as_an_entry(app, tokens, api):  # type: ignore[no-untyped-def]
    with app.app_context():
        assert balance_of("alice") == 1000
        entry = db.session.execute(select(LedgerEntry).filter_by(to_book="account:1")).scalar_one()
        assert (entry.from_book, entry.reason) == ("mint", "grant")
    body = api.get("/api/v1/balance").get_json()
    assert body == {"account": "alice", "balance": 1000, "escrow": 0, "earned_by_worker": {}}
    pricing = api.get("/api/v1/pricing").get_json()
    assert pricing["job_price_per_frame"] == PRICE and pricing["self_dealing_rate"] == 0.3
    assert (pricing["check_price"], pricing["spot_check_price"]) == (2, 1)
    assert (pricing["tier1_rate"], pricing["tier1_check_price"], pricing["tier1_hold_per_frame"]) == (0.75, 1, 1)


def test_submit_holds_the_price_in_escrow_and_402_creates_nothing(app, api, scene_sha):  # type: ignore[no-untyped-def]
    job = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-12"}).get_json()
    assert (job["price"], job["escrow"]) == (12 * PRICE, 12 * PRICE)
    assert api.get("/api/v1/balance").get_json()["balance"] == 1000 - 12 * PRICE
    for _ in range(5):
        assert api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-12"}).status_code == 201
    before = row_counts(app)
    response = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": "1-12"})
    assert response.status_code == 402
    error = response.get_json()["error"]
    assert error["code"] == "insufficient_points" and error["details"] == {"balance": 1000 - 6 * 12 * PRICE,
                                                                             "price": 12 * PRICE}
    assert row_counts(app) == before
    with app.app_context():
        assert_conserved()


def test_verified_frames_pay_renderers_checks_pay_verifiers_the_rest_is_refunded(v, api):  # type: ignore[no-untyped-def]
    for _ in range(2):
        task = leases.claim_task(v["renderer"].id)
        render(task)
        answer(leasing.claim_check(v["verifier"]))
    job = db.session.get(Job, v["job_id"])
    assert job.state == "completed"
    assert balance_of("renderer-owner") == 1000 + 4 * 10
    assert balance_of("verifier-owner") == 1000 + 2 * 2
    assert ledger.balance(ledger.escrow_book(job.id)) == 0
    assert balance_of("alice") == 1000 - 4 * PRICE + (4 * PRICE - 4 * 10 - 2 * 2), "unused checks refunded"
    assert_conserved()


def test_self_dealing_earns_the_reduced_rate(v, app):  # type: ignore[no-untyped-def]
    job = db.session.get(Job, v["job_id"])
    renderer = v["renderer"]
    renderer.account_id = job.account_id  # the artist renders its own job
    renderer.account.trusted = True  # and is trusted, so its frames are accepted without a check
    db.session.commit()
    render(leases.claim_task(renderer.id))
    owner = job.account.name
    assert balance_of(owner) == 1000 - 4 * PRICE + 2 * 3, "30 % of the frame price per own frame"
    assert_conserved()


def test_a_caught_renderer_gives_back_its_earnings_and_a_stake(v):  # type: ignore[no-untyped-def]
    from framehive.coordinator.verification import leasing

    task = leases.claim_task(v["renderer"].id)
    render(task)
    answer(leasing.claim_check(v["verifier"]))
    assert balance_of("renderer-owner") == 1020
    bad = leases.claim_task(v["renderer"].id)
    render(bad, image=lambda n: noise_png(5000 + n))
    answer(leasing.claim_check(v["verifier"]))
    answer(leasing.claim_check(v["arbiter"]))
    assert v["renderer"].times_caught == 1
    assert balance_of("renderer-owner") == 1020 - 20 - 50 - 2, "earnings back, stake lost, arbiter paid"
    assert balance_of("arbiter-owner") == 1000 + 2
    assert ledger.balance(ledger.NETWORK) == 50
    assert_conserved()
    frames = db.session.execute(select(Frame).filter_by(job_id=v["job_id"])).scalars().all()
    assert all(f.state == "queued" for f in frames), "all its frames are rendered again by someone else"
    assert db.session.query(Blob).count() > 0 and db.session.get(Task, task.id).state == "queued"


def test_admins_grant_points_with_an_explicit_entry(app, tokens):  # type: ignore[no-untyped-def]
    client = app.test_client()
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    user = {"Authorization": f"Bearer {tokens['user']}"}
    response = client.post("/api/v1/admin/grants", json={"account": "bob", "amount": 250, "memo": "prize"},
                           headers=admin)
    assert response.status_code == 201 and response.get_json()["balance"] == 1250
    assert client.post("/api/v1/admin/grants", json={"account": "bob", "amount": 5}, headers=user).status_code == 403
    for bad in ({"account": "bob", "amount": 0}, {"account": "bob", "amount": "5"}, {"amount": 5}, []):
        assert client.post("/api/v1/admin/grants", json=bad, headers=admin).status_code == 400
    assert client.post("/api/v1/admin/grants", json={"account": "nobody", "amount": 5},
                       headers=admin).status_code == 404
    entries = client.get("/api/v1/ledger?account=bob", headers=admin).get_json()["entries"]
    assert [(e["from"], e["amount"], e["memo"]) for e in entries] == [("mint", 250, "prize"),
                                                                     ("mint", 1000, "starting grant")]
    assert client.get("/api/v1/ledger?account=bob", headers=user).status_code == 403


def test_checks_beyond_the_escrows_check_budget_never_take_a_renderers_pay(v, app):  # type: ignore[no-untyped-def]
    """Tier 1 on every frame, and every tier-1 check flags its honest frame (a noisy low render), so each flag
    orders a region check more, and every passed region check has an audit: checks cost far more than the job's
    price carries, and they are paid as they pass, before the tasks are accepted. Every renderer is still paid its
    full price (the escrow keeps the frame price of every frame not yet paid); the checks the escrow cannot carry
    beyond that are paid by the network pool."""
    app.config["FRAMEHIVE_AUDIT_RATE"] = 1.0
    job = db.session.get(Job, v["job_id"])
    tier1_on(app, job)
    cheater = Account(name="caught-earlier")
    db.session.add(cheater)
    db.session.flush()
    ledger.transfer(ledger.account_book(cheater.id), ledger.NETWORK, 500, "stake")  # the pool has points
    db.session.commit()
    escrow = ledger.balance(ledger.escrow_book(job.id))
    assert escrow == 4 * PRICE
    kinds = []
    for _ in range(2):
        render(leases.claim_task(v["renderer"].id))
        for worker in (v["verifier"], v["arbiter"]):  # the arbiter audits what the verifier passed
            while (check := leasing.claim_check(worker)) is not None:
                kinds.append(check.kind)
                if check.kind == "tier1":
                    noisy = fa.decode(noise_png(check.frame.number + 7000, *TIER1_SIZE), 10**8)
                    judge(check, fa.encode_png(fa.downscale_linear(noisy, 5)))
                    db.session.commit()
                    decide.apply(check)
                    db.session.commit()
                    assert check.verdict == "fail", "flagged: a region check of the worst tile follows"
                else:
                    answer(check)
                    assert check.verdict == "pass"
                assert ledger.balance(ledger.escrow_book(job.id)) >= 0
    assert sorted(kinds) == ["audit"] * 6 + ["tier1"] * 4 + ["verify"] * 6, "a region check per task, one per flag"
    assert job.state == "completed"
    assert balance_of("renderer-owner") == 1000 + 4 * 10, "every frame paid in full, the last ones too"
    check_pay = balance_of("verifier-owner") + balance_of("arbiter-owner") - 2000
    assert check_pay == 12 * 2 > escrow - 4 * 10, "more checks than the job's price carries"
    network_paid = db.session.execute(select(func.sum(LedgerEntry.amount)).filter_by(
        from_book=ledger.NETWORK, reason="check")).scalar_one()
    assert network_paid == check_pay - (escrow - 4 * 10), "the network pool paid what the escrow could not"
    assert ledger.balance(ledger.escrow_book(job.id)) == 0
    assert_conserved()
