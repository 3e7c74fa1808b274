"""When the owner lets the agent work: ``--schedule 22:00-07:00,12:00-13:00``, windows of local wall-clock time.

A window may cross midnight (``22:00-07:00`` is open from 22:00 to 07:00 the next morning); ``00:00-24:00`` is
the whole day. Start is inside the window, end is not. Outside every window the agent finishes the work in hand,
takes nothing new and shows as paused. Pure functions of a given time: the caller brings the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

MINUTES_PER_DAY = 24 * 60
_TIME = re.compile(r"([01]?\d|2[0-4]):([0-5]\d)")


class ScheduleError(ValueError):
    """The schedule text cannot be understood; the message says how to write it."""


@dataclass(frozen=True)
class Window:
    start: int  # minutes after midnight, 0..1439
    end: int  # minutes after midnight, 1..1440 (24:00); before start: the window crosses midnight

    def holds(self, minute: int) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


@dataclass(frozen=True)
class Schedule:
    windows: tuple[Window, ...]

    def is_open(self, now: datetime) -> bool:
        """Whether ``now`` (local wall-clock time) falls in a window."""
        return any(w.holds(_minute(now)) for w in self.windows)

    def next_opening(self, now: datetime) -> str:
        """The time (HH:MM) the next window opens, as seen from ``now``."""
        minute = _minute(now)
        start = min((w.start for w in self.windows), key=lambda s: (s - minute) % MINUTES_PER_DAY)
        return _clock(start)

    def closed_reason(self, now: datetime) -> str | None:
        """None inside a window; else why the agent is paused, for the owner and the coordinator."""
        if self.is_open(now):
            return None
        return f"outside its schedule {self} (next window opens at {self.next_opening(now)})"

    def __str__(self) -> str:
        return ",".join(map(str, self.windows))


def parse(text: str) -> Schedule:
    """``"22:00-07:00"`` or ``"22:00-07:00,12:00-13:00"`` → a Schedule; raises ScheduleError with a reason."""
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError("the schedule is empty; write windows such as 22:00-07:00 or 22:00-07:00,12:00-13:00")
    windows = []
    for part in text.replace(" ", "").split(","):
        start_text, dash, end_text = part.partition("-")
        if not dash:
            raise ScheduleError(f"{part!r} is not a window; write START-END, e.g. 22:00-07:00")
        start, end = _parse_time(start_text), _parse_time(end_text)
        if start == MINUTES_PER_DAY:
            raise ScheduleError(f"{part!r}: a window starts at 23:59 at the latest (24:00 is an end)")
        if start == end:
            raise ScheduleError(f"{part!r} is empty; for the whole day write 00:00-24:00")
        windows.append(Window(start, end if end != 0 else MINUTES_PER_DAY))
    return Schedule(tuple(windows))


def _parse_time(text: str) -> int:
    match = _TIME.fullmatch(text)
    if not match or (int(match[1]) == 24 and match[2] != "00"):
        raise ScheduleError(f"{text!r} is not a time; write HH:MM from 00:00 to 24:00")
    return int(match[1]) * 60 + int(match[2])


def _minute(now: datetime) -> int:
    return now.hour * 60 + now.minute


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
