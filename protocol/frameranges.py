"""Frame range specs such as ``"1-24"``, ``"1-10,20,30-32"`` and ``"5"``.

Parsing is strict: a bad spec raises :class:`FrameRangeError` with a message fit for an end user.
"""

from __future__ import annotations

MAX_FRAMES = 100_000


class FrameRangeError(ValueError):
    """The frame range text cannot be understood."""


def parse(spec: str) -> list[int]:
    """Return the sorted, de-duplicated frame numbers of ``spec``."""
    if not isinstance(spec, str) or not spec.strip():
        raise FrameRangeError("frame range is empty; use e.g. '1-24' or '1,5,10-12'")
    frames: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        if not part:
            raise FrameRangeError(f"empty item in frame range {spec!r}")
        start_text, sep, end_text = part.partition("-")
        if sep and start_text == "":  # a negative start such as "-3-5"
            raise FrameRangeError(f"negative frames are not supported: {part!r}")
        try:
            start = int(start_text)
            end = int(end_text) if sep else start
        except ValueError:
            raise FrameRangeError(f"not a frame or range: {part!r}") from None
        if end < start:
            raise FrameRangeError(f"range {part!r} ends before it starts")
        if end - start + 1 + len(frames) > MAX_FRAMES:
            raise FrameRangeError(f"more than {MAX_FRAMES} frames")
        frames.update(range(start, end + 1))
    return sorted(frames)


def format_frames(frames: list[int]) -> str:
    """The shortest spec for ``frames`` (inverse of :func:`parse`)."""
    parts: list[str] = []
    ordered = sorted(set(frames))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)
