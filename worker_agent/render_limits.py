"""What one render process may use: memory, wall time per frame, size of what it writes.

Enforced by ``RenderProcess`` (blender.py): the memory by watching the process's resident memory, the frame
time by the command's deadline, the output size by RLIMIT_FSIZE (set by confined_exec.py) and a check of each
frame before it leaves the private output folder. Crossing a limit kills Blender (or refuses the frame) and
fails the task or check, naming the limit; the agent lives on.

Why a watchdog on resident memory and not an rlimit (measured with the bpy 5.0.1 module rendering the sample
scene on 2 CPU threads, resident at most 283 MiB):

- RLIMIT_AS counts address space, not memory: the same render reserves 1.5 GiB of it (2.0 GiB with 16
  threads), and with RLIMIT_AS = 1 GiB Blender died of SIGSEGV at start while resident at 116 MiB. GPU
  drivers reserve far more address space still (CUDA maps the GPU's memory into it).
- RLIMIT_DATA counts private writable mappings whether touched or not (every thread's 8 MiB stack): at
  400 MiB Blender could not start its threads ("Resource temporarily unavailable") while 283 MiB was in use.

Either would fail honest scenes in ways that say nothing about memory. Resident memory (VmRSS of Blender and
any process it started, read from /proc every MEMORY_POLL_INTERVAL) is what exhausts a machine. A render that
allocates faster than the watch looks can overshoot by the memory it touches in one interval. Linux only:
elsewhere the memory limit is not enforced (``memory_enforced`` says so).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3
#: A production frame can take hours on a slow GPU; four hours is far past that yet stops a runaway scene
#: before it holds a task (and the owner's machine) for a whole night. ``--max-frame-minutes`` changes it.
DEFAULT_FRAME_SECONDS = 240 * 60.0
#: Per file the render writes: a 16384 x 16384 RGBA PNG (the coordinator's largest frame) is at most about
#: 1 GiB, Cycles' temporary tile files of such a frame a few; 4 GiB is above both, and stops a scene from
#: filling the disk with one file (the coordinator itself accepts frames of up to 256 MiB by default).
DEFAULT_OUTPUT_BYTES = 4 * GIB
#: How often the resident memory is read: cheap (one small /proc file per process), and at the few GiB per
#: second a render can allocate, the overshoot past the limit stays around a GiB at most.
MEMORY_POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class RenderLimits:
    """Limits of one render process; None means no limit."""

    memory_bytes: int | None = None  # resident memory of Blender (and what it starts): unlimited by default
    frame_seconds: float | None = DEFAULT_FRAME_SECONDS  # wall time of one frame or region render
    output_bytes: int | None = DEFAULT_OUTPUT_BYTES  # size of any file the render writes

    def describe(self) -> str:
        """One line for the agent's start log."""
        if self.memory_bytes is None:
            memory = "memory unlimited"
        else:
            memory = f"memory {size_text(self.memory_bytes)}"
            if not memory_enforced():
                memory += " (NOT enforced here: resident memory is watched on Linux only)"
        frame, output = "frame time unlimited", "file size unlimited"
        if self.frame_seconds is not None:
            frame = f"{duration_text(self.frame_seconds)} per frame"
        if self.output_bytes is not None:
            output = f"{size_text(self.output_bytes)} per file written"
        return f"render limits: {memory}; {frame}; {output}"

    def file_size_rlimit(self) -> int | None:
        """RLIMIT_FSIZE for the process: one byte more than allowed, so a file cut at the limit is recognised
        as too big (Python ignores SIGXFSZ, so the bpy module's writes are cut short instead of killed)."""
        return None if self.output_bytes is None else self.output_bytes + 1


def memory_enforced() -> bool:
    """Whether this platform lets the agent watch a process's resident memory (Linux: /proc)."""
    return sys.platform.startswith("linux") and Path("/proc/self/status").is_file()


def resident_bytes(pid: int) -> int | None:
    """Resident memory (VmRSS) of ``pid`` and its descendants; None once ``pid`` is gone."""
    total = _vm_rss(pid)
    if total is None:
        return None
    for child in _descendants(pid):
        total += _vm_rss(child) or 0
    return total


def _vm_rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return 0  # a zombie has no VmRSS line


def _descendants(pid: int) -> list[int]:
    """Children, grandchildren, ... of ``pid`` from /proc/<pid>/task/<tid>/children (best effort)."""
    found: list[int] = []
    pending = [pid]
    while pending and len(found) < 1000:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                children = [int(word) for word in task.read_text().split()]
            except (OSError, ValueError):
                continue
            found.extend(children)
            pending.extend(children)
    return found


def size_text(size: int) -> str:
    """``size`` bytes for messages: "200 bytes", "4.3 KiB", "64 MiB", "2.5 GiB"."""
    for unit, scale in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def duration_text(seconds: float) -> str:
    """``seconds`` for messages: "3 s", "90 min", "4 h"."""
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"
