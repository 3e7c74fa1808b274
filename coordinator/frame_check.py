"""Decode an uploaded frame with limits before anyone trusts it."""

from __future__ import annotations

import io
import warnings

from PIL import Image


class BadFrame(ValueError):
    """Not a decodable PNG of the expected size."""


def check_png(data: bytes, width: int, height: int, max_pixels: int) -> None:
    """Raise :class:`BadFrame` unless ``data`` is a PNG of exactly ``width`` x ``height`` that decodes."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise BadFrame("not a PNG file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > max_pixels:
                    raise BadFrame(f"{image.width}x{image.height} is more pixels than allowed")
                if (image.width, image.height) != (width, height):
                    raise BadFrame(f"frame is {image.width}x{image.height}, the job renders {width}x{height}")
                image.load()  # full decode: catches truncated or corrupt data
    except BadFrame:
        raise
    except Exception as exc:  # Pillow raises many kinds on hostile input
        raise BadFrame(f"the PNG does not decode: {exc}") from None
