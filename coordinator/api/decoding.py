"""Gates in front of every decode of an uploaded PNG (frames, check crops): its size, then a decode slot.

A PNG of a few hundred kilobytes can claim 13000x13000 pixels and take gigabytes once decoded. So the width
and height are read from the header (nothing decompressed) and compared with what the job or the check
expects first; the body may not be bigger than a PNG of that size can honestly be; and only a few decodes run
at once (``FRAMEHIVE_DECODE_SLOTS``), so many honest frames of a big job arriving together cannot add up either.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app

from .. import frame_analysis as fa
from ..errors import ApiError

_SLOTS_KEY = "framehive_decode_slots"


def upload_limit(width: int, height: int) -> int:
    """The most bytes a PNG upload of ``width`` x ``height`` may take (and never more than a frame may)."""
    return min(current_app.config["FRAMEHIVE_MAX_FRAME_BYTES"], fa.png_byte_bound(width, height))


def expect_size(data: bytes, width: int, height: int, code: str) -> None:
    """400 unless the PNG's header says ``width`` x ``height``; ``code`` for a body that is not a PNG at all."""
    try:
        size = fa.png_size(data)
    except fa.BadImage as exc:
        raise ApiError(400, code, str(exc)) from None
    if size != (width, height):
        raise ApiError(400, "wrong_resolution", f"the PNG's header says {size[0]}x{size[1]}, but "
                                                f"{width}x{height} is expected; nothing was decoded")


@contextmanager
def decode_slot() -> Iterator[None]:
    """Hold one of the app's decode slots; 503 ``busy`` if none frees up within ``FRAMEHIVE_DECODE_WAIT``."""
    config = current_app.config
    slots = current_app.extensions.setdefault(_SLOTS_KEY, threading.BoundedSemaphore(config["FRAMEHIVE_DECODE_SLOTS"]))
    if not slots.acquire(timeout=config["FRAMEHIVE_DECODE_WAIT"]):
        raise ApiError(503, "busy", "the coordinator is decoding as many images as it allows; try again shortly")
    try:
        yield
    finally:
        slots.release()
