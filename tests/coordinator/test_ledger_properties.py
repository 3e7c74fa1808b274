"""Property test of the points ledger: random lives of a small network, the books checked after every step.

A hypothesis ``RuleBasedStateMachine`` drives the real in-process coordinator (Flask app, SQLAlchemy, the
scheduler, verification and payment code) on a real database, once on SQLite and once on PostgreSQL (the
``app`` fixture's two parameters). Artists and admins go through the HTTP API; workers go through the functions
the worker endpoints call (``leases``, ``outcomes``, ``leasing``, ``decide``), as test_verification.py does.

Each example first draws its world (``world``): the starting grant (50, 150 or 1000 points, so 402s happen),
audit and ringer rates, the trust burn-in, whether carol's and dave's boxes are veterans (high trust: most of
their frames are accepted unchecked, so only a claim catches their fakes), a seed for the coordinator's dice,
and a first job. Accounts: the artists alice and bob (each also runs a worker: self-dealing), carol, dave, an
admin and ``network`` (trusted, runs the node that settles claims). Then up to ``stateful_step_count`` of:

- ``submit``: an artist submits a job (random frames, chunk and policy). If the price is more than its
  balance the answer must be 402 with that balance and price, and nothing may change (no row, no entry);
  otherwise the price is in the job's escrow and out of the artist's account.
- ``dispatch``: a worker (or, if it may take none, the next one) gets work in the dispatcher's order, a check
  first, else a task. A task is rendered honestly, with fake pixels (every frame or one), with blank frames
  (tier 0 flags them), fails (``outcomes.record_failure``, at once or after one uploaded frame), loses its
  lease (``leases.expire_leases`` after forcing the expiry) or is held for a later step. A check (verify,
  audit, arbitration, ringer, claim: whatever it is handed) is answered honestly, with a lie (other pixels),
  in collusion (the renderer's own pixels), or its lease runs out. The trusted node is always honest.
- ``finish_held``: a held task is finished as above, if its worker still holds the lease (a cancel or a caught
  cheat may have taken it away meanwhile).
- ``claim``: an artist files a claim through the API on delivered frames that look wrong (not the honest
  pixels), on any delivered frames, or on an undelivered one (400, and nothing may change); a claim the artist
  cannot pay for is 402 and changes nothing.
- ``settle_claims``: the trusted node works (honestly, on whatever it gets) until the open claim is decided.
- ``cancel``: an artist cancels a running job through the API, paying the cancel fee out of the escrow (then
  cancelling again is a 409 that changes nothing).
- ``grant``: an admin grants points through the API.

After EVERY step (``ledger_is_sound``): every new entry has a positive amount, two different well-formed books
(``account:<id>``, ``escrow:<job>``, ``claim:<claim>``, ``network``, ``mint``), a known reason, the references its
reason needs (escrow/refund/render/cancel fee → job; render → task, frame and worker, the frame being the task's;
check/arbitration → that job's check and its verifier; clawback/stake → worker; claim hold/refund/fee → job and
claim) and a flow its reason allows (only grants leave the mint, nothing enters it; pay comes out of the job's
escrow or the network pool, an arbitration also out of the loser's account; clawbacks go to the job's escrow or
artist; the cancel fee goes from the escrow to the network; a claim's hold from the artist to the claim's book,
and from there back to the artist or to the network); no more than the price list allows (a render on
the artist's own job at the self-dealing rate) and no check paid to the artist of the checked job. Entries
are append-only: the balances the database sums over all entries must equal the previous step's plus the new
entries. Then: the sum over all books is zero; accounts, escrows, claims and the network hold what the mint issued
(``ledger.circulating()``), which is exactly what this test granted (starting grants and admin grants: nothing
else creates or destroys points); no account, escrow or network balance is negative; no escrow holds more than
its job's price, and a finished job's escrow is empty.

A fresh world per example: the ``app`` fixture gives one app and one fresh database per backend (for
PostgreSQL, the session server's ``create_database()``), and every example starts by emptying every table
(PostgreSQL: one ``TRUNCATE … RESTART IDENTITY CASCADE``; SQLite: ``DELETE`` in reverse dependency order, after
which rowids restart at 1), so ids and book names are the same whenever an example is replayed. A database per
example would cost about a second each on PostgreSQL, and a transaction per example cannot work because the
coordinator commits inside every operation. Each step runs in its own app context and ends its transaction
before any API request, as the coordinator's own requests do.

Deterministic for CI: ``derandomize=True``, no example database, and the coordinator's CSPRNGs (key draws,
audit and ringer dice) replaced by one ``random.Random`` reseeded by each example, so the run is the same every
time and on both databases, and a failure replays. Bounded: see ``SETTINGS`` and ``SHRINK_SECONDS``.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from framehive.coordinator import frame_analysis as fa
from framehive.coordinator import leases, ledger, outcomes
from framehive.coordinator.auth import create_token
from framehive.coordinator.db import db
from framehive.coordinator.models import (
    Account,
    Blob,
    Check,
    Claim,
    Frame,
    Job,
    LedgerEntry,
    Task,
    VerificationKey,
    Worker,
    now,
)
from framehive.coordinator.states import FrameState, JobState
from framehive.coordinator.storage_access import storage
from framehive.coordinator.submission import scene_info
from framehive.coordinator.tier0 import inspect_frame
from framehive.coordinator.transitions import missing_frames
from framehive.coordinator.verification import decide, keys, leasing
from hypothesis import Phase, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select, text, union_all

from tests.coordinator.kit import judge, noise_png

# Sized for CI (measured on a 2-core machine: 10 s on SQLite, 16 s on PostgreSQL, 35 s for the module with its
# fixtures): six examples that count, of up to 35 steps each (hypothesis also runs examples that stop early
# because every rule it left enabled is idle; they are short).
SETTINGS = settings(max_examples=6, stateful_step_count=35, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink], print_blob=False)
SHRINK_SECONDS = 120  # how long a failure is shrunk (see the test)

ARTISTS = ("alice", "bob")
# Worker name → owning account. The artists' own boxes render their own jobs (self-dealing); "node" is an
# account the admin marked trusted (the network's own node, the only kind that may settle claims).
WORKERS = {"alice-box": "alice", "bob-box": "bob", "carol-box": "carol", "dave-box": "dave", "node": "network"}
TRUSTED = "network"
VETERANS = ("carol", "dave")
SCENE_FRAMES = 12  # the sample scene's range is 1-12

RENDER_OUTCOMES = ("honest", "fake", "fake_one", "blank", "fail", "partial_fail", "expire")
ANSWERS = ("honest", "lie", "collude", "expire")
JOB = {"artist": st.sampled_from(ARTISTS), "first": st.integers(1, SCENE_FRAMES), "count": st.integers(1, SCENE_FRAMES),
       "chunk": st.one_of(st.none(), st.integers(1, 4)), "policy": st.sampled_from(["adaptive", "circle", "full"])}
MAX_ACTIVE = 3  # artists submit while fewer jobs than this run: work goes deep instead of wide
MAX_CANCELS = 2  # likewise for cancels, which end a job's story early
MAX_CLAIM_FRAMES = 2  # frames per claim
MAX_CLAIMS = 2  # and for claims (one open at a time), so that delivered frames also get disputed late
MAX_GRANTS = 3  # admin grants per example: enough to lift an artist over a 402, not enough to crowd out work

BOOK = re.compile(r"^(mint|network|account:[1-9][0-9]*|escrow:[1-9][0-9]*|claim:[1-9][0-9]*)$")
# What each reason must reference, besides its two books.
NEEDS = {
    "grant": (),
    "escrow": ("job_id",),
    "refund": ("job_id",),
    "render": ("job_id", "task_id", "frame", "worker_id"),
    "check": ("job_id", "check_id", "worker_id"),
    "arbitration": ("job_id", "check_id", "worker_id"),
    "clawback": ("job_id", "worker_id"),
    "stake": ("worker_id",),
    "cancel_fee": ("job_id",),
    "claim_hold": ("job_id", "claim_id"),
    "claim_refund": ("job_id", "claim_id"),
    "claim_fee": ("job_id", "claim_id"),
}


class SeededRandom(random.Random):
    """Stands in for the coordinator's ``secrets.SystemRandom`` dice; reseeded by every example."""


def truth(job_id: int, number: int, width: int, height: int) -> bytes:
    """The honest render of a frame (noise, distinct per job so tier 0 sees no copies across jobs)."""
    return noise_png(job_id * 1000 + number, width, height)


class Ledger(RuleBasedStateMachine):
    """The network's life on a real coordinator; see the module docstring."""

    def __init__(self, app: Any, scene: bytes, rng: SeededRandom, scene_info: dict[str, Any]) -> None:
        super().__init__()
        self.app = app
        self.scene = scene
        self.scene_info = scene_info
        self.rng = rng
        self.client = app.test_client()
        self.tokens: dict[str, str] = {}
        self.workers: dict[str, int] = {}  # worker name → id
        self.worker_accounts: dict[int, int] = {}  # worker id → account id
        self.account_ids: set[int] = set()
        self.owner: dict[int, str] = {}  # job id → artist
        self.held: list[tuple[int, int, int]] = []  # (worker id, task id, attempt)
        self.granted = 0  # every point this test created: starting grants and admin grants
        self.grants = self.cancels = self.claims = 0  # admin grants, cancels and claims so far
        # What the next step can act on, seen after the last one (preconditions keep steps from idling).
        self.queued_tasks = self.queued_checks = 0
        self.active: list[int] = []  # ids of queued or running jobs
        self.delivering: list[int] = []  # ids of jobs with verified frames
        self.started: list[int] = []  # ids of running jobs (cancelling a queued one is the dull case)
        self.claims_waiting = 0  # open claim checks: one claim at a time, so that claims get settled
        self.balances: dict[str, int] = {}  # every book's balance after the last step
        self.last_entry = 0  # the id of the last ledger entry checked
        self.wipe()

    # ---- the world ---------------------------------------------------------------------------------------

    def wipe(self) -> None:
        with self.app.app_context():
            db.session.remove()
            tables = db.metadata.sorted_tables
            quote = db.engine.dialect.identifier_preparer.quote
            with db.engine.begin() as connection:
                if db.engine.dialect.name == "postgresql":
                    names = ", ".join(quote(t.name) for t in tables)
                    connection.execute(text(f"TRUNCATE TABLE {names} RESTART IDENTITY CASCADE"))
                else:
                    for table in reversed(tables):
                        connection.execute(table.delete())

    @initialize(grant=st.sampled_from([50, 150, 1000]), audit=st.sampled_from([0.0, 0.5]),
                ringer=st.sampled_from([0.0, 0.3]), burn_in=st.sampled_from([1, 10]),
                spot=st.sampled_from([0.0, 0.8]), veterans=st.booleans(), seed=st.integers(0, 2**16),
                first=st.fixed_dictionaries(JOB))
    def world(self, grant: int, audit: float, ringer: float, burn_in: int, spot: float, veterans: bool, seed: int,
              first: dict[str, Any]) -> None:
        """Accounts, workers and the scene; ``veterans``: carol's and dave's boxes start with a long record,
        so most of their frames are accepted unchecked (and only a claim can catch their fakes)."""
        self.rng.seed(seed)
        self.app.config.update(FRAMEHIVE_STARTING_GRANT=grant, FRAMEHIVE_AUDIT_RATE=audit,
                               FRAMEHIVE_RINGER_RATE=ringer, FRAMEHIVE_TRUST_BURN_IN=burn_in,
                               FRAMEHIVE_SPOT_RATE=spot)
        with self.app.app_context():
            for artist in ARTISTS:
                self.tokens[artist] = create_token("user", artist)
            self.tokens["admin"] = create_token("admin", "root")
            for name in ("carol", "dave"):
                db.session.add(Account(name=name))
            db.session.add(Account(name=TRUSTED, trusted=True))
            db.session.flush()
            for worker, account in WORKERS.items():
                owner = db.session.execute(select(Account).filter_by(name=account)).scalar_one()
                trust = 10**6 if veterans and account in VETERANS else 0
                db.session.add(Worker(account_id=owner.id, name=worker, online=True, roles=["render", "verify"],
                                      blender_version="5.0.1", device="CPU", trust=trust))
            db.session.commit()
            self.workers = dict(db.session.execute(select(Worker.name, Worker.id)).all())
            self.worker_accounts = dict(db.session.execute(select(Worker.id, Worker.account_id)).all())
            self.account_ids = set(db.session.execute(select(Account.id)).scalars())
            self.granted = grant * db.session.execute(select(func.count()).select_from(Account)).scalar_one()
            db.session.remove()
        sha = hashlib.sha256(self.scene).hexdigest()
        for artist in ARTISTS:  # each sends the bytes: a submission may name only its own account's blobs
            response = self.call("put", f"/api/v1/blobs/{sha}", artist, data=self.scene)
            assert response.status_code in (200, 201), response.get_json()
        self.scene_sha = sha
        with self.context():  # parse the scene once per test, not once per example (it takes a while)
            blob = db.session.get(Blob, sha)
            blob.info = self.scene_info or scene_info(blob)
            self.scene_info.update(blob.info)
            db.session.commit()
        self.submit(**first)  # every world starts with a job, so that work is there whatever rules run

    def call(self, method: str, path: str, who: str, **kw: Any):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return getattr(self.client, method)(path, headers=headers, **kw)

    def context(self):  # type: ignore[no-untyped-def]
        return _Step(self.app)

    # ---- artists -----------------------------------------------------------------------------------------

    @precondition(lambda self: len(self.active) < MAX_ACTIVE)
    @rule(**JOB)
    def submit(self, artist: str, first: int, count: int, chunk: int | None, policy: str) -> None:
        last = min(SCENE_FRAMES, first + count - 1)
        body: dict[str, Any] = {"scene": self.scene_sha, "frames": f"{first}-{last}", "policy": policy}
        if chunk is not None:
            body["chunk"] = chunk
        price = (last - first + 1) * self.per_frame
        with self.context():
            available = ledger.balance(ledger.account_book(self.account_id(artist)))
            before = snapshot()
        response = self.call("post", "/api/v1/jobs", artist, json=body)
        if available < price:
            assert response.status_code == 402, response.get_json()
            error = response.get_json()["error"]
            assert error["code"] == "insufficient_points"
            assert error["details"] == {"balance": available, "price": price}
            with self.context():
                assert snapshot() == before, "a refused submit changes nothing"
            return
        assert response.status_code == 201, response.get_json()
        job = response.get_json()
        assert (job["price"], job["escrow"]) == (price, price)
        self.owner[job["id"]] = artist
        with self.context():
            assert ledger.balance(ledger.account_book(self.account_id(artist))) == available - price
        note(f"job {job['id']} by {artist}: frames {body['frames']}, price {price}")

    @precondition(lambda self: self.delivering and not self.claims_waiting and self.claims < MAX_CLAIMS)
    @rule(pick=st.integers(0, 63), frames=st.integers(1, MAX_CLAIM_FRAMES),
          which=st.sampled_from(["wrong", "any", "undelivered"]))
    def claim(self, pick: int, frames: int, which: str) -> None:
        """The artist disputes delivered frames: ones that look wrong (their pixels are not the honest render),
        any (mostly honest ones: rejected), or one it never got (refused with 400, nothing changes)."""
        job_id = self.delivering[pick % len(self.delivering)]
        self.claims += 1
        with self.context():
            job = db.session.get(Job, job_id)
            width, height = job.resolution_x, job.resolution_y
            verified = [f.number for f in job.frames if f.state == FrameState.VERIFIED]
            wrong = [f.number for f in job.frames if f.state == FrameState.VERIFIED
                     and f.blob_sha256 != hashlib.sha256(truth(job_id, f.number, width, height)).hexdigest()]
            others = [f.number for f in job.frames if f.state != FrameState.VERIFIED]
            before = snapshot()
        if which == "undelivered" and others:
            chosen = [others[0], *verified[:frames - 1]]
        elif which == "wrong" and wrong:
            chosen = wrong[:frames]
        else:
            chosen = verified[pick % len(verified):][:frames]
        spec = ",".join(str(n) for n in sorted(chosen))
        with self.context():
            available = ledger.balance(ledger.account_book(self.account_id(self.owner[job_id])))
        response = self.call("post", f"/api/v1/jobs/{job_id}/claims", self.owner[job_id],
                             json={"frames": spec, "reason": "looks wrong"})
        price = len(chosen) * int(self.app.config["FRAMEHIVE_CLAIM_PRICE"])
        if set(chosen) <= set(verified) and available < price:
            assert response.status_code == 402, response.get_json()
            assert response.get_json()["error"]["details"] == {"balance": available, "price": price}
            with self.context():
                assert snapshot() == before, "a claim the artist cannot pay for changes nothing"
        elif set(chosen) <= set(verified):
            assert response.status_code == 201, response.get_json()
            note(f"claim {response.get_json()['id']} on job {job_id} frames {spec}")
        else:
            assert response.status_code == 400 and response.get_json()["error"]["code"] == "not_delivered"
            with self.context():
                assert snapshot() == before, "a refused claim changes nothing"

    @precondition(lambda self: self.started and self.cancels < MAX_CANCELS)
    @rule(pick=st.integers(0, 63))
    def cancel(self, pick: int) -> None:
        job_id = self.started[pick % len(self.started)]
        artist = self.owner[job_id]
        self.cancels += 1
        response = self.call("post", f"/api/v1/jobs/{job_id}/cancel", artist)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["escrow"] == 0, "what was left in escrow went back to the artist"
        with self.context():
            before = snapshot()
        again = self.call("post", f"/api/v1/jobs/{job_id}/cancel", artist)
        assert again.status_code == 409 and again.get_json()["error"]["code"] == "job_finished"
        with self.context():
            assert snapshot() == before, "cancelling a finished job changes nothing"

    @precondition(lambda self: self.grants < MAX_GRANTS)
    @rule(account=st.sampled_from([*ARTISTS, "carol", "dave"]), amount=st.integers(1, 300))
    def grant(self, account: str, amount: int) -> None:
        self.grants += 1
        response = self.call("post", "/api/v1/admin/grants", "admin",
                             json={"account": account, "amount": amount, "memo": "property test"})
        assert response.status_code == 201, response.get_json()
        self.granted += amount

    # ---- workers -----------------------------------------------------------------------------------------

    @precondition(lambda self: self.queued_tasks or self.queued_checks)
    @rule(worker=st.sampled_from(sorted(WORKERS)), render=st.sampled_from([*RENDER_OUTCOMES, "hold"]),
          answer=st.sampled_from(ANSWERS))
    def dispatch(self, worker: str, render: str, answer: str) -> None:
        """Work for ``worker`` (or, if it may take none, the next worker), in the dispatcher's order: a check it
        may take, else a task. A check is answered as ``answer`` says, a task rendered as ``render`` says. When
        nobody may take anything, the reaper runs (it fails jobs that no online worker may run)."""
        with self.context():
            for name in rotate(worker):
                candidate = db.session.get(Worker, self.workers[name])
                if candidate.suspended:
                    continue  # the dispatcher gives a suspended worker nothing
                check = leasing.claim_check(candidate)
                if check is not None:
                    self.answer(check, name, answer)
                    return
                task = leases.claim_task(candidate.id)
                if task is not None:
                    if render == "hold":
                        self.held.append((task.worker_id, task.id, task.attempt))
                        note(f"{name} holds task {task.id} attempt {task.attempt}")
                    else:
                        self.render(task, name, render)
                    return
        note("nobody may take the queued work: the reaper runs")
        self.app.extensions["framehive_reaper"].sweep()

    @precondition(lambda self: self.held)
    @rule(pick=st.integers(0, 63), render=st.sampled_from(RENDER_OUTCOMES))
    def finish_held(self, pick: int, render: str) -> None:
        """A worker that held a task since an earlier step finishes it (if it still holds the lease)."""
        worker_id, task_id, attempt = self.held.pop(pick % len(self.held))
        with self.context():
            task = leases.held_task(worker_id, task_id, attempt)
            if task is None:
                return  # the lease was lost meanwhile (cancel, cheat caught): the worker was told to drop it
            self.render(task, db.session.get(Worker, worker_id).name, render)

    @precondition(lambda self: self.claims_waiting)
    @rule()
    def settle_claims(self) -> None:
        """The network's trusted node works until the open claim is decided (honestly, on whatever it gets)."""
        with self.context():
            node = db.session.get(Worker, self.workers["node"])
            for _ in range(2 * MAX_CLAIM_FRAMES + 4):
                waiting = db.session.execute(select(func.count()).select_from(Check).where(
                    Check.kind == "claim", Check.state.in_(("queued", "leased")))).scalar_one()
                check = leasing.claim_check(node) if waiting else None
                if check is None:
                    return
                self.answer(check, "node", "honest")

    def render(self, task: Task, worker: str, outcome: str) -> None:
        if worker == "node":
            outcome = "honest"  # the network's trusted node does not cheat or flake
        job: Job = task.job
        width, height = job.resolution_x, job.resolution_y
        todo = missing_frames(task)
        note(f"{worker} renders task {task.id} (job {job.id}, frames {todo}): {outcome}")
        if outcome == "fail":
            outcomes.record_failure(task, "render_failed", "boom")
            db.session.commit()
        elif outcome == "partial_fail":
            upload(task, todo[0], truth(job.id, todo[0], width, height))
            outcomes.record_failure(task, "render_failed", "crashed after one frame")
            db.session.commit()
        elif outcome == "expire":
            task.lease_expires = now() - 1
            db.session.commit()
            leases.expire_leases()
        else:
            for i, number in enumerate(todo):
                if outcome == "blank":
                    data = fa.encode_png(np.zeros((height, width, 3), dtype=np.uint8))
                elif outcome == "fake" or (outcome == "fake_one" and i == 0):
                    data = noise_png(500_000 + job.id * 1000 + number, width, height)
                else:
                    data = truth(job.id, number, width, height)
                upload(task, number, data)
            outcomes.task_done(task)

    def answer(self, check: Check, worker: str, mode: str) -> None:
        """The verifier's upload, judged and applied as the result endpoint does it."""
        if worker == "node":
            mode = "honest"
        job: Job = check.frame.job
        note(f"{worker} answers {check.kind} check {check.id} (job {job.id}, frame {check.frame.number}): {mode}")
        if mode == "expire":
            check.lease_expires = now() - 1
            db.session.commit()
            leasing.expire()
            return
        if mode == "honest":
            data = truth(job.id, check.frame.number, job.resolution_x, job.resolution_y)
        elif mode == "lie":
            data = noise_png(900_000 + check.id, job.resolution_x, job.resolution_y)
        else:  # collude: copy the pixels under test
            with storage().open(check.renderer_sha256 or "") as handle:
                data = handle.read()
        full = fa.decode(data, 10**8)
        judge(check, fa.encode_png(fa.crop(full, fa.Region.from_list(check.render_rect))))
        decide.apply(check)
        db.session.commit()

    # ---- invariants --------------------------------------------------------------------------------------

    @invariant()
    def ledger_is_sound(self) -> None:
        with self.context():
            # Entries are append-only: the new ones are checked one by one, and every book's balance as the
            # database sums all entries must equal the last step's balances plus the new entries (so an old
            # entry that changed or vanished is caught too).
            new = db.session.execute(select(LedgerEntry).where(LedgerEntry.id > self.last_entry)
                                     .order_by(LedgerEntry.id)).scalars().all()
            jobs = db.session.execute(select(Job.id, Job.account_id, Job.state, func.count(Frame.id)).join(Frame)
                                      .group_by(Job.id, Job.account_id, Job.state).order_by(Job.id)).all()
            refs = Refs(self.account_ids, self.worker_accounts, {job[0]: job[1] for job in jobs}, new)
            balances = dict(self.balances)
            for entry in new:
                check_entry(entry, refs, self.prices)
                balances[entry.from_book] = balances.get(entry.from_book, 0) - entry.amount
                balances[entry.to_book] = balances.get(entry.to_book, 0) + entry.amount
                self.last_entry = entry.id
            assert database_balances() == balances, "the entries in the database are not the ones seen so far"
            self.balances = balances
            assert sum(balances.values()) == 0, "double entry: every movement leaves one book and enters another"
            held = {book: amount for book, amount in balances.items() if book != ledger.MINT}
            negative = {book: amount for book, amount in held.items() if amount < 0}
            assert not negative, f"negative balances: {negative}"
            minted = -balances.get(ledger.MINT, 0)
            assert sum(held.values()) == minted == ledger.circulating(), "points created or destroyed"
            assert minted == self.granted, f"the mint issued {minted} points, grants were {self.granted}"
            for job_id, _, state, frames in jobs:
                escrow = balances.get(ledger.escrow_book(job_id), 0)
                assert escrow <= frames * self.per_frame, f"job {job_id}'s escrow exceeds its price"
                if state in JobState.FINAL:
                    assert escrow == 0, f"job {job_id} is {state} but its escrow still holds {escrow}"
            # What the next step's preconditions look at (so that steps seldom idle).
            self.active = [job_id for job_id, _, state, _ in jobs if state in JobState.ACTIVE]
            self.delivering = list(db.session.execute(select(Frame.job_id).where(
                Frame.state == FrameState.VERIFIED).distinct().order_by(Frame.job_id)).scalars())
            count = func.count()
            active = select(Job.id).where(Job.state.in_(JobState.ACTIVE))
            self.queued_tasks, self.queued_checks, self.claims_waiting = db.session.execute(select(
                select(count).select_from(Task).where(Task.state == "queued", Task.job_id.in_(active))
                .scalar_subquery(),
                select(count).select_from(Check).where(Check.state == "queued").scalar_subquery(),
                select(count).select_from(Check).where(Check.kind == "claim", Check.state.in_(("queued", "leased")))
                .scalar_subquery())).one()
            self.started = [job_id for job_id, _, state, _ in jobs if state == JobState.RUNNING]

    # ---- helpers -----------------------------------------------------------------------------------------

    @property
    def prices(self) -> dict[str, Any]:
        names = ("FRAME_PRICE", "CHECK_PRICE", "SELF_DEALING_RATE", "STAKE", "CANCEL_FEE", "CLAIM_PRICE",
                 "TIER1_RATE", "TIER1_CHECK_PRICE")
        return {name: self.app.config[f"FRAMEHIVE_{name}"] for name in names}

    @property
    def per_frame(self) -> int:
        """Frame, check and the tier-1 hold (the sample scene gets no tier 1: its hold goes back with the rest)."""
        tier1 = math.ceil(float(self.prices["TIER1_RATE"]) * int(self.prices["TIER1_CHECK_PRICE"]))
        return int(self.prices["FRAME_PRICE"]) + int(self.prices["CHECK_PRICE"]) + tier1

    def account_id(self, name: str) -> int:
        return db.session.execute(select(Account.id).filter_by(name=name)).scalar_one()


class _Step:
    """One step's app context: whatever it leaves uncommitted is rolled back, and its session is closed."""

    def __init__(self, app: Any) -> None:
        self.ctx = app.app_context()

    def __enter__(self) -> None:
        self.ctx.push()

    def __exit__(self, *exc: object) -> None:
        try:
            db.session.remove()
        finally:
            self.ctx.pop()


def rotate(first: str) -> list[str]:
    """Every worker, starting with ``first``: the dispatcher offers work to each idle worker in turn."""
    names = sorted(WORKERS)
    start = names.index(first)
    return names[start:] + names[:start]


def snapshot() -> tuple[int, ...]:
    """Row counts of everything a submit or a claim could create."""
    return tuple(db.session.execute(select(func.count()).select_from(model)).scalar_one()
                 for model in (LedgerEntry, Job, Task, Frame, VerificationKey, Check, Claim, Blob))


def upload(task: Task, number: int, data: bytes) -> None:
    """A frame upload as the frame endpoint does it (tier 0, blob, then ``frame_rendered``)."""
    frame = db.session.execute(select(Frame).filter_by(task_id=task.id, number=number)).scalar_one()
    if frame.state in FrameState.HAVE_PIXELS:
        return
    info = inspect_frame(data, frame, 10**8)
    sha = hashlib.sha256(data).hexdigest()
    if db.session.get(Blob, sha) is None:
        storage().put(sha, io.BytesIO(data), len(data))
        db.session.add(Blob(sha256=sha, size=len(data), uploader_id=task.worker.account_id))  # as the endpoint
    frame.tile_hashes, frame.tile_key, frame.flags = info.tile_hashes, info.tile_key, info.flags
    outcomes.frame_rendered(task, number, sha, 30)


def database_balances() -> dict[str, int]:
    """Every book's balance, summed by the database over all entries (one query)."""
    moves = union_all(select(LedgerEntry.to_book.label("book"), LedgerEntry.amount.label("amount")),
                      select(LedgerEntry.from_book, -LedgerEntry.amount)).subquery()
    return {book: int(amount) for book, amount in
            db.session.execute(select(moves.c.book, func.sum(moves.c.amount)).group_by(moves.c.book))}


class Refs:
    """What the entries of one step may refer to, loaded in a few queries."""

    def __init__(self, accounts: set[int], workers: dict[int, int], jobs: dict[int, int],
                 entries: list[LedgerEntry]) -> None:
        self.accounts = accounts  # account ids
        self.workers = workers  # worker id → its account id
        self.jobs = jobs  # job id → the artist's account id
        task_ids = {e.task_id for e in entries if e.task_id is not None}
        check_ids = {e.check_id for e in entries if e.check_id is not None}
        self.tasks = {t.id: (t.job_id, t.frame_numbers) for t in db.session.execute(
            select(Task).where(Task.id.in_(task_ids))).scalars()} if task_ids else {}
        self.checks = {c.id: (c.job_id, c.verifier_id, c.kind) for c in db.session.execute(
            select(Check).where(Check.id.in_(check_ids))).scalars()} if check_ids else {}


def check_entry(entry: LedgerEntry, refs: Refs, prices: dict[str, Any]) -> None:
    """One entry is well formed: amount, books, reason, references, a flow its reason allows, and no more than
    the price list allows (a renderer on its own account's job earns the self-dealing rate)."""
    where = f"entry {entry.id} ({entry.reason} {entry.amount} {entry.from_book} → {entry.to_book})"
    assert isinstance(entry.amount, int) and entry.amount > 0, where
    assert BOOK.match(entry.from_book or "") and BOOK.match(entry.to_book or ""), where
    assert entry.from_book != entry.to_book, where
    assert entry.reason in NEEDS, f"{where}: unknown reason"
    missing = [name for name in NEEDS[entry.reason] if getattr(entry, name) is None]
    assert not missing, f"{where}: missing {missing}"
    for book in (entry.from_book, entry.to_book):
        kind, _, ident = book.partition(":")
        if kind == "account":
            assert int(ident) in refs.accounts, f"{where}: no such account"
        if kind == "escrow":
            assert entry.job_id == int(ident), f"{where}: escrow of another job"
        if kind == "claim":
            assert entry.claim_id == int(ident), f"{where}: the book of another claim"
    assert (entry.from_book == ledger.MINT) == (entry.reason == "grant"), f"{where}: only grants come from the mint"
    assert entry.to_book != ledger.MINT, f"{where}: nothing goes back to the mint"
    assert entry.job_id is None or entry.job_id in refs.jobs, f"{where}: no such job"
    assert entry.worker_id is None or entry.worker_id in refs.workers, f"{where}: no such worker"
    escrow = ledger.escrow_book(entry.job_id) if entry.job_id is not None else None
    artist = ledger.account_book(refs.jobs[entry.job_id]) if entry.job_id is not None else None
    own = ledger.account_book(refs.workers[entry.worker_id]) if entry.worker_id is not None else None
    if entry.reason == "grant":
        assert entry.to_book.startswith("account:"), where
    elif entry.reason == "escrow":
        assert (entry.from_book, entry.to_book) == (artist, escrow), where
    elif entry.reason == "refund":
        assert (entry.from_book, entry.to_book) == (escrow, artist), where
    elif entry.reason == "render":
        assert (entry.from_book, entry.to_book) == (escrow, own), where
        rate = prices["SELF_DEALING_RATE"] if own == artist else 1
        assert entry.amount <= int(prices["FRAME_PRICE"] * rate), f"{where}: more than the frame price"
        job_id, frames = refs.tasks.get(entry.task_id, (None, []))
        assert job_id == entry.job_id and entry.frame in frames, f"{where}: not a frame of the job's task"
    elif entry.reason in ("check", "arbitration"):
        job_id, verifier_id, kind = refs.checks.get(entry.check_id, (None, None, None))
        assert (job_id, verifier_id) == (entry.job_id, entry.worker_id), f"{where}: not that job's check by that worker"
        assert entry.reason == "check" or kind == "arbitration", where
        assert entry.to_book == own and entry.amount <= prices["CHECK_PRICE"], where
        assert own != artist or kind == "claim", f"{where}: an artist verified its own job"
        loser_pays = entry.reason == "arbitration" and entry.from_book.startswith("account:")
        assert entry.from_book in (escrow, ledger.NETWORK) or loser_pays, where
    elif entry.reason == "clawback":
        assert entry.from_book == own and entry.to_book in (escrow, artist), where
    elif entry.reason == "stake":
        assert (entry.from_book, entry.to_book) == (own, ledger.NETWORK) and entry.amount <= prices["STAKE"], where
    elif entry.reason == "cancel_fee":
        assert (entry.from_book, entry.to_book) == (escrow, ledger.NETWORK), where
        assert entry.amount <= prices["CANCEL_FEE"], where
    elif entry.reason == "claim_hold":  # only a job's artist files claims on it, paying per frame
        assert (entry.from_book, entry.to_book) == (artist, ledger.claim_book(entry.claim_id)), where
        assert entry.amount % prices["CLAIM_PRICE"] == 0, where
    elif entry.reason in ("claim_refund", "claim_fee"):
        to = artist if entry.reason == "claim_refund" else ledger.NETWORK
        assert (entry.from_book, entry.to_book) == (ledger.claim_book(entry.claim_id), to), where


def test_points_are_conserved_and_never_negative(app, sample_scene: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rng = SeededRandom(0)
    for module in (keys, decide, leasing):
        monkeypatch.setattr(module, "_rng", rng)
    # Shrink a failure for at most SHRINK_SECONDS (hypothesis' own limit is 300 s, as is pytest's timeout here):
    # every replay builds a real world, so the printed sequence may keep a few steps that do not matter.
    engine = sys.modules.get("hypothesis.internal.conjecture.engine")
    if engine is not None:
        monkeypatch.setattr(engine, "MAX_SHRINKING_SECONDS", SHRINK_SECONDS, raising=False)
    scene = sample_scene.read_bytes()
    info: dict[str, Any] = {}
    run_state_machine_as_test(lambda: Ledger(app, scene, rng, info), settings=SETTINGS)
