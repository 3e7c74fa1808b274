"""Catch verifiers that passed a cheater's frames, once those frames have been rendered again honestly.

A verifier uploads the pixels it rendered, and they are kept. When a caught renderer's frames are rendered
again by someone else and accepted, every earlier *passed* check of those frames is compared with the new
frame: an honest verifier's region matches the honest re-render (it rendered the truth); a verifier that
forged a pass (copying the cheater's pixels) does not. No commits: callers commit.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from .. import frame_analysis as fa
from ..db import db
from ..models import Check, Frame
from ..storage_access import storage
from . import comparison, penalties

#: The passed checks whose verifiers a re-render can contradict.
REEXAMINED_KINDS = ("verify", "spot", "audit")


def reexamine(frame: Frame, checks: list[Check] | None = None) -> None:
    """``checks``: every check of the frame's task, when the caller has read them (checks.task_checks: a frame's
    checks are of its task); else the frame's are read here."""
    if checks is None:
        checks = list(db.session.execute(select(Check).where(Check.frame_id == frame.id)).scalars())
    stale = [c for c in checks if c.frame_id == frame.id and c.verdict == "pass" and c.kind in REEXAMINED_KINDS
             and c.reexamined is False and c.renderer_sha256 is not None
             and c.renderer_sha256 != frame.blob_sha256 and c.result_sha256 is not None]
    for check in stale:
        check.reexamined = True
        if check.verifier is not None and not _matches(check, frame):
            penalties.verifier_caught(check.verifier, f"check {check.id} passed a frame the honest re-render "
                                                      "contradicts")


def _matches(check: Check, frame: Frame) -> bool:
    limit = current_app.config["FRAMEHIVE_MAX_FRAME_PIXELS"]
    with storage().open(check.result_sha256 or "") as handle:
        theirs_full = fa.decode(handle.read(), limit)
    with storage().open(frame.blob_sha256 or "") as handle:
        honest = fa.decode(handle.read(), limit)
    rect, region = fa.Region.from_list(check.render_rect), fa.Region.from_list(check.region)
    top, bottom = fa.split_yardstick(theirs_full, rect.height)
    inner = region.relative_to(rect)
    cross = comparison.different_classes(frame.worker, check.verifier)
    if cross and bottom is None:
        return True  # its render has another class's noise and no yardstick to measure it by: no proof of a lie
    return fa.judge_region(fa.crop(honest, region), fa.crop(top, inner),
                           None if bottom is None else fa.crop(bottom, inner), cross).passed
