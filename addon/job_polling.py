"""Poll a job until it is finished: the one loop behind ``framehive wait``, ``submit --wait``
(:meth:`Client.wait <framehive.addon.client.Client.wait>`) and the add-on's :meth:`JobWatcher.wait
<framehive.addon.job_watch.JobWatcher.wait>`.

No ``bpy`` and no HTTP here: the caller does one round (read the job; the watcher also brings frames home) and
judges it. A round that failed in a way that may pass by itself (the coordinator restarting) is polled again for
``grace`` seconds after the last round that got through, so a restart does not end a wait on a long render; after
that, and after a round the caller calls over, the round's result is returned. ``timeout`` raises TimeoutError.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Round", "poll_until_over"]

T = TypeVar("T")

#: The share of the interval paused after a round judged Round.CLOSING.
CLOSING_SHARE = 0.25
#: While a wait is young, the pause after a round is at most this share of the wait's age (and never below the
#: closing pause): a job over in its first seconds (a small one) is noticed within about a quarter of its time,
#: not up to a whole interval late; from 4 intervals on, every interval, as before.
YOUNG_SHARE = 0.25


class Round(enum.Enum):
    """What the caller makes of one round."""

    GOING = "going"  # nothing wrong, not over: poll again after the interval
    CLOSING = "closing"  # going, and its end is near (every frame rendered, checks left): poll again sooner
    FAILING = "failing"  # a failure that may pass by itself: poll again, for at most the grace period
    OVER = "over"  # the job is over, or polling can get no further: return this round's result


def poll_until_over(
    poll: Callable[[], T],
    judge: Callable[[T], Round],
    interval: float,
    grace: float,
    timeout: float | None = None,
    what: str = "the job",
) -> T:
    """``poll()`` every ``interval`` seconds until ``judge`` calls a round over, or a run of failing rounds has lasted
    ``grace`` seconds since the last round that got through (or since the start); return that round. After a round
    judged CLOSING the pause is a quarter of ``interval`` (:data:`CLOSING_SHARE`): the artist learns that the job is
    over sooner (half an interval on average before), and only the last moments of a job poll faster. A young wait's
    going rounds pause at most a quarter of its age (:data:`YOUNG_SHARE`), from a quarter interval up to the
    interval: a 5-second job is polled about 12 times, not 5 (8 rounds more in all), and one that ends in 1.3 s is
    seen within 0.25 s, not 0.7.

    Raises TimeoutError when ``timeout`` seconds pass first (a round is never cut short: the deadline is looked
    at between rounds, and the pause before the next round never goes past it).
    """
    start = last_through = time.monotonic()
    deadline = None if timeout is None else start + timeout
    while True:
        result = poll()
        verdict = judge(result)
        now = time.monotonic()
        if verdict is Round.OVER:
            return result
        if verdict in (Round.GOING, Round.CLOSING):
            last_through = now
        elif now - last_through >= grace:
            return result
        soonest = interval * CLOSING_SHARE
        if verdict is Round.CLOSING:
            pause = soonest
        elif verdict is Round.GOING:  # a failing round (a coordinator restarting) is not asked sooner
            pause = min(interval, max(soonest, (now - start) * YOUNG_SHARE))
        else:
            pause = interval
        if deadline is not None:
            if now >= deadline:
                raise TimeoutError(f"{what} did not finish within {timeout:g} s")
            pause = min(pause, deadline - now)
        time.sleep(pause)  # the poll period, not synchronisation
