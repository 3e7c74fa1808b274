"""``--schedule``: windows of local time, crossing midnight allowed; pure functions of an injected clock."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from framehive.worker_agent.cli import build_parser
from framehive.worker_agent.owner_control import OwnerControl
from framehive.worker_agent.schedule import ScheduleError, parse


def at(clock: str) -> datetime:
    hour, minute = map(int, clock.split(":"))
    return datetime(2025, 3, 30, hour, minute)  # a DST change day in Europe: wall-clock time is what counts


@pytest.mark.parametrize(("schedule", "open_at", "closed_at"), [
    ("22:00-07:00", ["22:00", "23:59", "00:00", "03:30", "06:59"], ["07:00", "12:00", "21:59"]),
    ("09:00-17:00", ["09:00", "12:00", "16:59"], ["08:59", "17:00", "23:00", "00:00"]),
    ("22:00-07:00,12:00-13:00", ["23:00", "06:00", "12:00", "12:59"], ["07:00", "11:59", "13:00", "21:59"]),
    ("00:00-24:00", ["00:00", "12:00", "23:59"], []),
    ("18:00-00:00", ["18:00", "23:59"], ["00:00", "17:59"]),  # until midnight
    (" 8:30-9:15 ", ["08:30", "09:14"], ["08:29", "09:15"]),
])
def test_windows_hold_their_start_and_not_their_end(schedule: str, open_at: list[str], closed_at: list[str]) -> None:
    windows = parse(schedule)
    assert all(windows.is_open(at(t)) for t in open_at), open_at
    assert not any(windows.is_open(at(t)) for t in closed_at), closed_at


def test_outside_the_windows_the_reason_names_the_next_opening() -> None:
    windows = parse("22:00-07:00,12:00-13:00")
    assert windows.closed_reason(at("23:00")) is None
    assert windows.closed_reason(at("08:00")) == \
        "outside its schedule 22:00-07:00,12:00-13:00 (next window opens at 12:00)"
    assert "opens at 22:00" in windows.closed_reason(at("13:30"))


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"),
    ("22:00", "not a window"),
    ("22-07", "not a time"),
    ("25:00-07:00", "not a time"),
    ("22:60-07:00", "not a time"),
    ("24:00-07:00", "23:59 at the latest"),
    ("24:30-07:00", "not a time"),
    ("10:00-10:00", "whole day"),
    ("22:00-07:00,", "not a window"),
    ("22h-7h", "not a time"),
])
def test_bad_schedules_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ScheduleError, match=reason):
        parse(text)


def test_the_option_parses_and_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert str(build_parser().parse_args(["--schedule", "22:00-07:00"]).schedule) == "22:00-07:00"
    assert build_parser().parse_args([]).schedule is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--schedule", "late"])
    assert "--schedule" in capsys.readouterr().err


def test_the_owners_pause_comes_before_the_schedule(tmp_path: Path) -> None:
    now = [at("23:00")]
    control = OwnerControl(tmp_path, parse("22:00-07:00"), clock=lambda: now[0])
    assert not control.availability().paused
    now[0] = at("08:00")
    assert control.availability().paused and "schedule" in control.availability().reason
    now[0] = at("23:00")
    control.pause("gaming tonight\nsecond line \x1b[31m")
    assert control.availability().paused and control.availability().reason == "gaming tonight"
    assert control.resume() and not control.availability().paused
    assert not control.resume(), "nothing to resume"
