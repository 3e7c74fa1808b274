"""Test-only settings of the worker agent: they make one CPU stand for another device class. Never set them on a
real worker: its frames would not be the job's, and every check of them would fail.

``FRAMEHIVE_TEST_ONLY_RENDER_SEED=N`` makes the agent render every frame and region with Cycles seed N instead of
the job's, and report its Blender as ``"<version> test-seed<N>"`` (so its device class differs from agents
without it, models.Worker.device_class). Two device classes then differ in noise as a CPU and a GPU do, which is
what cross-class verification must tolerate (docs/verification.md: seeds stand in for devices).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("framehive.worker")

SEED_VARIABLE = "FRAMEHIVE_TEST_ONLY_RENDER_SEED"
# Cycles' seed is a non-negative 32-bit signed integer.
MAX_SEED = 2**31 - 1


def render_seed() -> int | None:
    """The seed set by :data:`SEED_VARIABLE`, or None when it is not set. Raises ValueError for a bad value."""
    text = os.environ.get(SEED_VARIABLE)
    if text is None or text == "":
        return None
    seed = int(text)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{SEED_VARIABLE} must be 0..{MAX_SEED}, not {text!r}")
    return seed


def reported_version(blender_version: str) -> str:
    """The Blender version the agent reports: with the test seed's mark when one is set (another device class)."""
    seed = render_seed()
    if seed is None:
        return blender_version
    log.warning("TEST ONLY: %s=%s: rendering with seed %s and reporting another device class", SEED_VARIABLE,
                seed, seed)
    return f"{blender_version} test-seed{seed}"
