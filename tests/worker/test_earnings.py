"""The owner's earnings lines, from ledger entries as the coordinator sends them (the real run is in
test_owner_in_control.py): grouped per job and kind, losses said as losses, other accounts' and other agents'
entries and anything malformed left out."""

from __future__ import annotations

from framehive.worker_agent.earnings import describe

BOOK = "account:3"


def entry(i: int, reason: str, amount: int, *, job: int | None = 7, frame: int | None = None, to: str = BOOK,
          source: str = "escrow:7") -> dict:
    return {"id": i, "reason": reason, "amount": amount, "job": job, "frame": frame, "to": to, "from": source,
            "worker": 5}


def test_frames_of_one_job_make_one_line() -> None:
    entries = [entry(i, "render", 3, frame=f) for i, f in enumerate([3, 4, 5, 6])]
    assert describe(entries, BOOK) == ["earned 12 points (job 7, frames 3-6 verified)"]


def test_kinds_and_jobs_apart_and_losses() -> None:
    entries = [entry(1, "render", 3, frame=1), entry(2, "check", 1), entry(3, "check", 1), entry(4, "render", 3, job=9,
               frame=2), entry(5, "clawback", 3, to="escrow:7", source=BOOK),
               entry(6, "stake", 10, job=None, to="network", source=BOOK)]
    assert describe(entries, BOOK) == [
        "lost 10 points (stake forfeited)",
        "earned 2 points (job 7, 2 checks)",
        "lost 3 points (job 7, taken back: frames of this agent were found wrong)",
        "earned 3 points (job 7, frame 1 verified)",
        "earned 3 points (job 9, frame 2 verified)",
    ]


def test_entries_not_of_this_account_or_of_unknown_kinds_are_left_out() -> None:
    entries = [entry(1, "render", 3, frame=1, to="account:4"), entry(2, "refund", 50),
               entry(3, "\x1b[31mforged", 1), entry(4, "escrow", 9, to="escrow:7", source=BOOK)]
    assert describe(entries, BOOK) == []
