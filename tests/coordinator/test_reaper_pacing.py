"""The reaper's look at jobs nobody may run takes at most SETTLE_SHARE of its time (issue 16: it read every online
agent every second, 5-7 % of the coordinator's CPU at 1,000 agents): after a look of d seconds, the next is due d /
SETTLE_SHARE after its start, and never more than SETTLE_AT_MOST seconds after it (a job nobody may run is still
told why, within a bound). Explicit clock readings, no waiting."""

from __future__ import annotations

import pytest
from framehive.coordinator.reaper import SETTLE_AT_MOST, SETTLE_SHARE, Paced


def test_a_slow_look_puts_off_the_next_in_proportion() -> None:
    paced = Paced(SETTLE_SHARE, SETTLE_AT_MOST)
    assert paced.due(0.0)  # the first look is due at once
    paced.ran(100.0, 100.06)  # 60 ms, as at 1,000 agents
    assert not paced.due(101.0) and not paced.due(102.9)
    assert paced.due(100.0 + 0.06 / SETTLE_SHARE + 1e-6)  # 3 s after its start


def test_a_quick_look_is_due_again_at_the_next_sweep() -> None:
    paced = Paced(SETTLE_SHARE, SETTLE_AT_MOST)
    paced.ran(100.0, 100.002)  # 2 ms: a small fleet
    assert paced.due(100.5)  # before the next one-second sweep


@pytest.mark.parametrize("share", [0.02, 0.5])
def test_the_share_of_time_is_kept_over_many_looks(share: float) -> None:
    paced, clock, busy = Paced(share, 1000.0), 0.0, 0.0
    while clock < 1000.0:
        if paced.due(clock):
            paced.ran(clock, clock + 0.3)
            busy += 0.3
        clock += 1.0  # the reaper's sweeps, a second apart
    assert busy / clock <= share + 0.3 / 1000.0


def test_however_slow_a_look_the_next_is_due_within_the_bound() -> None:
    paced = Paced(SETTLE_SHARE, SETTLE_AT_MOST)
    paced.ran(100.0, 102.0)  # two seconds: a busy machine
    assert not paced.due(100.0 + SETTLE_AT_MOST - 0.01)
    assert paced.due(100.0 + SETTLE_AT_MOST)
