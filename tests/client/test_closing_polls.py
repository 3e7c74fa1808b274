"""The end of a job is polled sooner (issue 16, point 3): once every frame is rendered and only checks are left, the
client's wait polls every quarter interval, so the artist learns the job is over about 0.4 s sooner on average with
the 1 s poll (half an interval before), while the rest of a long job polls no faster. A young wait polls sooner too:
a small job is over before a 1 s poll would have looked twice."""

from __future__ import annotations

from typing import Any

import pytest
from framehive.addon.client import all_rendered
from framehive.addon.job_polling import CLOSING_SHARE, Round, poll_until_over


class Clock:
    """time.monotonic and time.sleep of job_polling: a sleep moves the clock on; the pauses are kept."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, now: float = 1000.0) -> None:
        self.now = now
        self.pauses: list[float] = []
        monkeypatch.setattr("framehive.addon.job_polling.time.monotonic", lambda: self.now)
        monkeypatch.setattr("framehive.addon.job_polling.time.sleep", self.sleep)

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def test_rounds_judged_closing_pause_a_quarter_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    # An old wait (20 rounds in) polls every interval; its closing rounds every quarter interval.
    verdicts = iter([Round.GOING] * 20 + [Round.CLOSING, Round.CLOSING, Round.OVER])
    assert poll_until_over(lambda: next(verdicts), lambda v: v, interval=1.0, grace=60) is Round.OVER
    assert clock.pauses[-4:] == [1.0, 1.0, CLOSING_SHARE, CLOSING_SHARE]


def test_a_young_wait_polls_sooner(monkeypatch: pytest.MonkeyPatch) -> None:
    # A small job is over in a second or two: polled every interval, the artist learned it up to an interval late.
    clock = Clock(monkeypatch)
    rounds = 0

    def poll() -> Round:
        nonlocal rounds
        rounds += 1
        return Round.OVER if clock.now - 1000.0 >= 30 else Round.GOING

    assert poll_until_over(poll, lambda v: v, interval=1.0, grace=60) is Round.OVER
    pauses = clock.pauses
    assert pauses[:5] == [0.25] * 5  # the first second: every quarter interval
    assert pauses == sorted(pauses) and max(pauses) == 1.0  # then longer, up to the interval
    waited = 0.0
    for number, pause in enumerate(pauses):
        assert pause <= max(0.25, waited * 0.25) + 1e-9, (number, pauses)  # never more than a quarter of its age
        waited += pause
    assert rounds <= 30 + 8  # 30 s cost 8 rounds more than polling every second from the start


def job(state: str, **counts: int) -> dict[str, Any]:
    return {"state": state, "counts": {"queued": 0, "rendering": 0, "rendered": 0, "verified": 0, **counts}}


@pytest.mark.parametrize("answer, closing", [
    (job("running", rendered=3, verified=5), True),  # only checks left
    (job("running", rendered=3, failed=1), True),
    (job("running", queued=1, rendered=7), False),
    (job("running", rendering=2, verified=6), False),
    (job("queued", rendered=0), False),
    (job("paused", rendered=8), False),  # a paused job's end is not near
    ({"state": "running"}, False),  # an answer without counts (an older coordinator): as before
])
def test_the_end_is_near_when_nothing_is_left_to_render(answer: dict[str, Any], closing: bool) -> None:
    assert all_rendered(answer) is closing


def test_failing_rounds_of_a_young_wait_pause_the_whole_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    # A coordinator that is restarting is not asked four times as often by every waiting artist.
    clock = Clock(monkeypatch)
    verdicts = iter([Round.FAILING, Round.FAILING, Round.GOING, Round.OVER])
    assert poll_until_over(lambda: next(verdicts), lambda v: v, interval=1.0, grace=60) is Round.OVER
    assert clock.pauses == [1.0, 1.0, 0.5]  # the going round at age 2 s: a quarter of its age
