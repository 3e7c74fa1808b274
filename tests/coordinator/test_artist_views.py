"""What `framehive status` and `framehive ledger` show, from the real API's answers: the job's checks (frame,
region, verifier, verdict, metrics) and failures as the README promises, and ledger books by name (the account's
name, a job's escrow, a claim's hold, the mint; the books themselves stay in `from`/`to` for scripts)."""

from __future__ import annotations

from typing import Any

from framehive.addon.cli import format_entry, format_summary
from framehive.coordinator import leases, ledger, outcomes
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
    lines = [format_entry(e) for e in body["entries"]]
    assert any(f"  alice -> {escrow}  escrow  job {v['job_id']}" in line for line in lines), "\n".join(lines)
    assert not any("account:" in line for line in lines), lines


def test_status_shows_the_checks_and_the_failures(v: dict[str, Any], api: Any) -> None:
    failing = leases.claim_task(v["arbiter"].id)
    outcomes.record_failure(failing, "render_failed", "GPU fell off the bus\n\x1b[31mred\x1b[0m")
    for _ in range(2):
        render(leases.claim_task(v["renderer"].id))
        answer(leasing.claim_check(v["verifier"]))
    db.session.commit()
    job = api.get(f"/api/v1/jobs/{v['job_id']}").get_json()
    assert len(job["checks"]) == 2 and len(job["failures"]) == 1
    lines = format_summary(job).splitlines()
    assert "  checks    2 (pass 2)" in lines, lines
    check = job["checks"][0]
    region = ",".join(str(n) for n in check["region"])
    expected = f"    frame {check['frame']} region {region} verify by verifier: pass (strict; {check['reason']}; "
    shown = [line for line in lines if line.startswith(expected)]
    assert len(shown) == 1 and f"psnr {check['metrics']['psnr']:.3g}" in shown[0], "\n".join(lines)
    assert "  failures  1" in lines, lines
    failure = [line for line in lines if line.startswith(f"    task {failing.id} attempt 1: render_failed: ")]
    assert failure == [f"    task {failing.id} attempt 1: render_failed: GPU fell off the bus [31mred[0m"], lines


def test_an_account_name_with_a_nul_is_no_account(app: Any, tokens: dict[str, str]) -> None:
    # PostgreSQL refused the NUL in the query parameter: a 500. Now no argument may hold one (bodies.py).
    client = app.test_client()
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    for path in ("/api/v1/balance", "/api/v1/ledger"):
        response = client.get(f"{path}?account=al%00ice", headers=admin)
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_request", path
