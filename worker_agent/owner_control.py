"""Whether the owner lets the agent take work now: its schedule, and a pause the owner asked for.

The pause is a file, ``<cache dir>/paused`` holding the reason: ``framehive-worker pause`` writes it and
``framehive-worker resume`` removes it, from another terminal, on any OS, without knowing the agent's process
(SIGUSR1 / SIGUSR2 do the same on POSIX). The agent reads it every CONTROL_POLL seconds, and a pause outlives a
restart until the owner resumes. A paused agent finishes the work in hand, takes nothing new, and tells the
coordinator, which shows it as paused and hands it nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from framehive.protocol import messages as m

from .schedule import Schedule

#: How often the agent looks at its pause file and its schedule: a second is quick enough for a person at the
#: keyboard and costs one stat() a second.
CONTROL_POLL = 1.0
PAUSE_FILE = "paused"
#: The reason is shown on the coordinator's dashboard: one short line.
MAX_REASON = m.MAX_STATUS_REASON
DEFAULT_REASON = "paused by its owner"


@dataclass(frozen=True)
class Availability:
    paused: bool
    reason: str = ""


RUNNING = Availability(False)


class OwnerControl:
    """``clock`` gives local wall-clock time (injected by tests; never a wall-time sleep)."""

    def __init__(self, control_dir: Path, schedule: Schedule | None = None,
                 clock: Callable[[], datetime] = datetime.now) -> None:
        self.pause_file = control_dir / PAUSE_FILE
        self.schedule = schedule
        self.clock = clock

    def availability(self) -> Availability:
        """The owner's pause first (it says why), then the schedule."""
        reason = self._paused_reason()
        if reason is not None:
            return Availability(True, reason)
        if self.schedule is not None and (closed := self.schedule.closed_reason(self.clock())) is not None:
            return Availability(True, closed)
        return RUNNING

    def pause(self, reason: str = DEFAULT_REASON) -> None:
        """Write the pause file (atomically: the agent never reads half of it)."""
        self.pause_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.pause_file.parent, prefix=".paused-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(_one_line(reason) or DEFAULT_REASON)
            os.replace(tmp, self.pause_file)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def resume(self) -> bool:
        """Remove the pause file; False if there was none."""
        try:
            self.pause_file.unlink()
        except FileNotFoundError:
            return False
        return True

    def _paused_reason(self) -> str | None:
        try:
            text = self.pause_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError:  # unreadable, or a folder: the owner meant a pause all the same
            return DEFAULT_REASON
        return _one_line(text) or DEFAULT_REASON


def _one_line(text: str) -> str:
    """The first line, printable characters only, cut: it travels to the coordinator."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return "".join(c for c in line if c.isprintable())[:MAX_REASON]
