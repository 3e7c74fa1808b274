"""What the worker channel's messages cost the database (issue 16: statements a frame, benchmarks/fleet.py).

A verifier sends check_done after its result's upload, which the coordinator judged already: that message read the
check again (a transaction and a SELECT a check, 2 of a frame's statements). A check_done for a check whose result
was never judged here still gives the check back.
"""

from __future__ import annotations

import hashlib

from flask import Flask
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases, worker_channel
from framehive.coordinator.auth import create_token
from framehive.coordinator.db import db
from framehive.coordinator.dispatch import Connection, dispatcher
from framehive.coordinator.models import Check
from framehive.coordinator.states import CheckState
from framehive.coordinator.verification import leasing
from framehive.protocol import messages as m

from tests.coordinator.kit import noise_png, render
from tests.coordinator.statements import statements_of_this_thread

READS_THE_HANDLE = '"check".handle = '  # handles.held_check


def leased_check(v) -> Check:  # type: ignore[no-untyped-def]
    render(leases.claim_task(v["renderer"].id))
    db.session.commit()
    check = leasing.claim_check(v["verifier"])
    db.session.commit()
    return check


def upload_truth(app: Flask, check: Check, verifier_id: int, token: str) -> int:
    truth = fa.decode(noise_png(check.frame.number), 10**8)
    data = fa.encode_png(fa.crop(truth, fa.Region.from_list(check.render_rect)))
    return app.test_client().put(
        f"/api/v1/worker/checks/{check.handle}/result", data=data,
        headers={"Authorization": f"Bearer {token}", "X-Framehive-Worker": str(verifier_id),
                 "X-Content-SHA256": hashlib.sha256(data).hexdigest()}).status_code


def test_check_done_after_a_result_judged_here_reads_nothing(app, v) -> None:  # type: ignore[no-untyped-def]
    check = leased_check(v)
    handle, check_id = check.handle, check.id
    assert handle
    conn = Connection(worker_id=v["verifier"].id, name="verifier", ws=None)
    dispatcher().register(conn)
    token = create_token("worker", "verifier-agent", v["verifier"].account.name)
    assert upload_truth(app, check, v["verifier"].id, token) == 201
    assert conn.judged == handle
    with statements_of_this_thread(app) as statements:
        worker_channel._check_finished(conn, m.CheckDone(handle=handle))
    assert not [s for s in statements if READS_THE_HANDLE in s], statements  # the kick's pass may count queued work
    db.session.expire_all()
    judged = db.session.get_one(Check, check_id)
    assert judged.state == CheckState.DONE and judged.verdict == "pass"


def test_check_done_without_a_judged_result_gives_the_check_back(app, v) -> None:  # type: ignore[no-untyped-def]
    check = leased_check(v)
    handle, check_id = check.handle, check.id
    conn = Connection(worker_id=v["verifier"].id, name="verifier", ws=None, judged="an-older-handle")
    dispatcher().register(conn)
    with statements_of_this_thread(app) as statements:
        worker_channel._check_finished(conn, m.CheckDone(handle=handle))
    assert any(READS_THE_HANDLE in s for s in statements), statements
    db.session.expire_all()
    given_back = db.session.get_one(Check, check_id)
    assert given_back.state == CheckState.QUEUED and given_back.verdict is None
