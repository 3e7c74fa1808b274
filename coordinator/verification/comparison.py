"""How a region check compares pixels: strict within one device class, against a yardstick across classes.

Workers of one device class (same Blender build and device kind, models.Worker.device_class) render the job's
pinned settings bit for bit alike, so their checks are strict. Across classes the noise differs, so the
verifier renders the region twice, with the job's seed and with a yardstick seed, and the renderer's crop must
lie within a calibrated multiple of the distance between those two (frame_analysis.judge_region). A verifier
renders the yardstick for a denoised scene too, whatever the classes: the denoiser makes a region render differ
from the full frame (see judge_region), and only the yardstick can tell that from a cheat. Two veterans' renders of
a claimed frame are held to the same rule against each other (proven_alike, claims.py).
"""

from __future__ import annotations

import secrets

import numpy as np
from flask import current_app

from .. import frame_analysis as fa
from ..models import Check, Worker
from ..storage_access import storage

#: Yardstick seeds are drawn from Cycles' seed range (a 32-bit signed int property); never 0, the default seed.
YARDSTICK_SEEDS = 2**31 - 1


def different_classes(one: Worker | None, other: Worker | None) -> bool:
    """Whether two workers' renders may differ by the noise of their device classes: their classes differ, or
    either worker is unknown (a deleted agent's class is not known)."""
    return one is None or other is None or one.device_class != other.device_class


def is_cross(check: Check) -> bool:
    """Whether the renderer and the verifier are of different device classes (or either is unknown)."""
    return different_classes(check.renderer, check.verifier)


def yardstick_seed() -> int:
    """A fresh seed for a verifier's second render: the renderer cannot know it in advance."""
    return 1 + secrets.randbelow(YARDSTICK_SEEDS - 1)


def renders_agree(check: Check, other: Check) -> bool:
    """Whether ``check``'s kept render of its region could be an honest render of what ``other`` rendered there.

    A verifier is blamed for what it uploaded, never for a verdict alone: across device classes an honest render
    may pass a cheat (or an arbiter's may) where another fails it, and both renders are still honest. Judged by
    the check rule with ``other`` as the reference (its yardstick included); across classes without a yardstick
    nothing is proven, so they agree.
    """
    return _alike(check, other, unproven=True)


def proven_alike(check: Check, other: Check) -> bool:
    """Whether ``check``'s kept render of its region is shown to be what ``other``'s verifier rendered there, but for
    the noise of a device class: the rule of :func:`renders_agree`, except that across classes without a yardstick
    of ``other``'s nothing is proven, so they are not. Only ``other``'s yardstick measures ``check``'s render (one
    below ``check``'s own render, which its verifier chose, never widens what that render may be); a yardstick of
    two identical renders measures nothing, and then only the strict rule can pass (frame_analysis.judge_region).
    """
    return _alike(check, other, unproven=False)


def _alike(check: Check, other: Check, unproven: bool) -> bool:
    limit = current_app.config["FRAMEHIVE_MAX_FRAME_PIXELS"]
    mine, theirs = _region_render(check, limit), _region_render(other, limit)
    cross = different_classes(check.verifier, other.verifier)
    if cross and theirs[1] is None:
        return unproven
    return fa.judge_region(mine[0], theirs[0], theirs[1], cross).passed


def _region_render(check: Check, limit: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A check's kept upload, cut to its region: (job-seed render, yardstick render or None)."""
    with storage().open(check.result_sha256 or "") as handle:
        rendered = fa.decode(handle.read(), limit)
    rect = fa.Region.from_list(check.render_rect)
    top, bottom = fa.split_yardstick(rendered, rect.height)
    inner = fa.Region.from_list(check.region).relative_to(rect)
    return fa.crop(top, inner), None if bottom is None else fa.crop(bottom, inner)
