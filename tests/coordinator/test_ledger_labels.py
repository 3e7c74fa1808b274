"""The ledger over the API names its books as a person reads them (the `framehive ledger` command shows these):
the account by its name, a job's escrow, a claim's hold, the mint; the books themselves stay in `from`/`to`."""

from __future__ import annotations

from typing import Any

from framehive.coordinator import leases, ledger
from framehive.coordinator.db import db
from framehive.coordinator.verification import leasing

from tests.coordinator.kit import answer, render


def test_ledger_entries_carry_the_names_of_their_books(v: dict[str, Any], api: Any) -> None:
    for _ in range(2):
        render(leases.claim_task(v["renderer"].id))
        answer(leasing.claim_check(v["verifier"]))
    db.session.commit()
    body = api.get("/api/v1/ledger").get_json()
    assert body["account_label"] == "alice" and body["account"].startswith("account:")
    pairs = {(e["from_label"], e["to_label"], e["reason"]) for e in body["entries"]}
    escrow = f"escrow of job {v['job_id']}"
    assert ("mint (grants)", "alice", "grant") in pairs
    assert any(f == "alice" and t == escrow for f, t, _ in pairs), pairs
    assert any(f == escrow and t == "renderer-owner" for f, t, _ in pairs), pairs
    assert any(f == escrow and t == "verifier-owner" for f, t, _ in pairs), pairs
    for entry in body["entries"]:  # the books are still there, for scripts
        assert entry["from"] in (ledger.MINT, ledger.NETWORK) or ":" in entry["from"]
        assert ":" not in entry["from_label"] and ":" not in entry["to_label"], entry
