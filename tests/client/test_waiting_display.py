"""What the command line says about a job that waits (no coordinator needed: the job's JSON as the API gives it)."""

from __future__ import annotations

from framehive.addon.cli import format_progress, format_summary, progress_key

REASON = "frames 1-4 wait for a verifier of another owner: none online"
JOB = {"id": 7, "name": "shot", "state": "running", "total": 4, "frames": "1-4", "waiting": REASON,
       "counts": {"queued": 0, "rendering": 0, "rendered": 4, "verified": 0, "failed": 0, "cancelled": 0}}


def test_submit_wait_says_why_the_job_waits() -> None:
    line = format_progress(JOB, 5)
    assert line.endswith(f"rendered 4  waiting: {REASON}"), line
    assert progress_key(JOB) != progress_key({**JOB, "waiting": None}), "a new reason is a new line off a terminal"
    assert "waiting" not in format_progress({**JOB, "waiting": None}, 5)


def test_status_says_why_and_how_to_get_the_frames_that_await_checks() -> None:
    rows = format_summary(JOB).splitlines()
    assert f"  waiting   {REASON}" in rows
    assert "  unverified 4 rendered frame(s) await checks; `framehive download 7 --out DIR --unverified` gets them " \
           "now, marked UNVERIFIED" in rows
    quiet = format_summary({**JOB, "waiting": None, "counts": {**JOB["counts"], "rendered": 0, "verified": 4}})
    assert "waiting" not in quiet and "unverified" not in quiet
