"""How a region check compares pixels: strict within one device class, against a yardstick across classes.

Workers of one device class (same Blender build and device kind, models.Worker.device_class) render the job's
pinned settings bit for bit alike, so their checks are strict. Across classes the noise differs, so the
verifier renders the region twice, with the job's seed and with a yardstick seed, and the renderer's crop must
lie within a calibrated multiple of the distance between those two (frame_analysis.judge_region). A verifier
renders the yardstick for a denoised scene too, whatever the classes: the denoiser makes a region render differ
from the full frame (see judge_region), and only the yardstick can tell that from a cheat.
"""

from __future__ import annotations

import secrets

from ..models import Check

#: Yardstick seeds are drawn from Cycles' seed range (a 32-bit signed int property); never 0, the default seed.
YARDSTICK_SEEDS = 2**31 - 1


def is_cross(check: Check) -> bool:
    """Whether the renderer and the verifier are of different device classes (or either is unknown)."""
    return check.renderer is None or check.verifier is None \
        or check.renderer.device_class != check.verifier.device_class


def yardstick_seed() -> int:
    """A fresh seed for a verifier's second render: the renderer cannot know it in advance."""
    return 1 + secrets.randbelow(YARDSTICK_SEEDS - 1)
