"""What a running process costs, read from /proc: its peak memory and its threads (Linux only).

The attack tests measure the coordinator's own process: its peak resident memory around one hostile request
(the kernel's high-water mark, reset just before), and how many threads it runs while connections are held.
"""

from __future__ import annotations

from pathlib import Path

MIB = 1024 * 1024


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(f"no {field} in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> None:
    """Start the high-water mark afresh at the current resident size (``clear_refs`` 5, Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss(pid: int) -> int:
    """The most memory the process held resident since the last reset, in bytes."""
    return _status(pid, "VmHWM") * 1024


def rss(pid: int) -> int:
    return _status(pid, "VmRSS") * 1024


def threads(pid: int) -> int:
    return _status(pid, "Threads")
