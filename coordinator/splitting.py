"""Split a job's frames into tasks (pure functions, no database)."""

from __future__ import annotations

import math

from . import config


def default_chunk(total_frames: int, online_workers: int) -> int:
    """Frames per task so that even a small job spreads over every online worker.

    Aim for ``TASKS_PER_WORKER`` tasks per worker (at least 2 workers' worth, so a job submitted before the
    workers connect still splits), capped so one task never grows huge.
    """
    wanted_tasks = config.TASKS_PER_WORKER * max(2, online_workers)
    return max(1, min(config.MAX_DEFAULT_CHUNK, math.ceil(total_frames / wanted_tasks)))


def split(frames: list[int], chunk: int) -> list[list[int]]:
    """Consecutive groups of at most ``chunk`` frames, in order; every frame in exactly one group."""
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    ordered = sorted(set(frames))
    return [ordered[i : i + chunk] for i in range(0, len(ordered), chunk)]
