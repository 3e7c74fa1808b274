"""Image analysis for frame verification: pure functions on PNG bytes and numpy arrays.

This is the coordinator's one place that looks at pixels. It holds no state, knows nothing about Flask or the
database, and every threshold is a module-level constant that says where its number comes from. The numbers
cited as "research §N" were measured while verification was designed (320x180 job, Cycles CPU, 64 spp, measured
with scikit-image); those notes are not part of this repository, and BENCHMARKS.md re-measures what the shipped
rules rest on with benchmarks/verification.py and benchmarks/comparison.py. The rest come from this module's
tests (the 64x36, 8 spp sample scene); a per-job calibration script re-derives the cross-device tolerances
(:class:`CrossTolerance`) from trusted renders, so the defaults here are starting values.

Typical use::

    frame = decode(png_bytes, max_pixels=job_pixels)        # refuses non-PNG, bombs, truncated data
    if is_uniform(frame): ...                                # tier 0: blank frame, escalate
    hashes = tile_hashes(frame)                              # tier 0: copy index, see COPY_MAX_TILE_DISTANCE
    region = draw_region(secrets.SystemRandom(), w, h)       # tier 2: where the verifier re-renders
    verdict = compare(crop(frame, region), verifier_crop, "strict")

Coordinates: a :class:`Region` is in pixels with its origin at the TOP-LEFT of the image as stored in the PNG
(row 0 is the first row of the file). Blender's render border counts from the BOTTOM-left, as fractions; use
:meth:`Region.blender_border` to convert.
"""

from __future__ import annotations

import io
import math
import random
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import imagehash
import numpy as np
from PIL import Image
from scipy import fftpack, ndimage, sparse

__all__ = [
    "BadImage",
    "COPY_MAX_TILE_DISTANCE",
    "CrossTolerance",
    "DEFAULT_CROSS_TOLERANCE",
    "Region",
    "Verdict",
    "calibrate_cross",
    "compare",
    "crop",
    "cross_metrics",
    "decide",
    "decode",
    "downscale_linear",
    "draw_region",
    "encode_png",
    "is_uniform",
    "judge_region",
    "luma_spread",
    "png_byte_bound",
    "png_size",
    "split_yardstick",
    "ssim",
    "strict_metrics",
    "tile_distance",
    "tile_hashes",
    "yardstick_metrics",
]

# --- thresholds -----------------------------------------------------------------------------------------------

#: Tier 0 copy index: a frame whose 4x4 tile pHashes are all within this many bits (of 64) of another frame's is
#: a copy. Research §2: honest re-renders (other seed, 32-128 spp) stay within 2 bits per tile; §3: the nearest
#: distinct frame (adjacent frame, 0.1-frame shift) is at 4+ bits.
COPY_MAX_TILE_DISTANCE = 2

#: :func:`is_uniform` flags a frame whose luminance spread (99.5th minus 0.5th percentile, in 8-bit levels) is
#: at most this. Blender's default dither (+-1 per channel, research §5) gives a flat fill a spread of exactly 2
#: levels (measured: a mean-colour fill with +-1 noise per channel); 3 leaves room for rounding. Honest renders
#: are far away: 128-162 levels over every honest render in this module's tests (frames 1/6/7, other seeds,
#: 64 spp, denoised, transparent, half resolution). A frame that is honestly blank (a fade to black, an empty sky) is
#: flagged too: treat the flag as "escalate to a re-render check", not as "reject".
UNIFORM_MAX_LUMA_SPREAD = 3.0

#: Percentiles used for the luminance spread: a few stray pixels cannot make a flat frame look busy.
UNIFORM_PERCENTILES = (0.5, 99.5)

#: Strict mode (same device class, seed, settings and Blender build). Research §2/§4a: crops are bit-identical
#: with dither 0 and no denoiser (this module's tests measure maxabs 0); with OIDN and a 16 px margin the inner
#: region differs by at most 2/255 (§4a; measured here too: maxabs 2, 0% over 4, vs maxabs 27 and 36% over 4
#: without the margin). 4/255 leaves headroom for that; every cheat overlapping the crop in research §4b had at
#: least 1.9% of pixels over 4/255 (here, on a 24x14 crop over the cube: a 6x5 px mean-filled rectangle 2.1%,
#: 1 spp 72%, half resolution upscaled 85%, adjacent frame 62%, another seed 57%), and 0.1% tolerates a handful
#: of OIDN edge pixels.
STRICT_MAX_ABS = 4
STRICT_MAX_FRAC_OVER = 0.001
#: The per-pixel difference (any channel, 8-bit levels) counted by ``frac_over_4``.
STRICT_PIXEL_TOLERANCE = 4

#: PSNR reported for identical images (instead of infinity, so metrics stay valid JSON).
PSNR_IDENTICAL = 100.0

#: Tile grids never cut tiles smaller than this many pixels on a side (pHash of a 4x4 px tile is noise).
MIN_TILE_SIDE = 8

#: Fixed background that transparent pixels are composited onto before hashing or cross comparison. Research
#: §5: imagehash drops alpha, so alpha forced to 0 or 255 hashed 0 bits apart; over a loud colour it is 31.
ALPHA_BACKGROUND = (255, 0, 255)


@dataclass(frozen=True)
class CrossTolerance:
    """Pass limits for a cross-device comparison (CPU vs GPU, or different seeds): honest noise, not bit-exact.

    The defaults are starting values from research (320x180, denoised 64 spp, seed 0 vs seed 1 standing in for
    cross-device noise). A job rendered with few samples, no denoiser or fine detail is noisier and needs its own
    values from :func:`calibrate_cross` (run by the calibration script on trusted renders). Measured on the 64x36
    sample scene: honest 1/16 crops reach only 36-37 dB even at 64 spp with OIDN, and 22.5 dB at its own 8 spp
    without a denoiser, so the defaults would reject every honest worker of that job.
    """

    #: Research §4b: honest crop PSNR >= 40.4 dB with OIDN (35.8 dB without); §6 recommends >= ~40 dB (dn).
    min_psnr: float = 40.0
    #: Research §2: honest whole-frame SSIM >= 0.996 (dn) / 0.971 (nd); adjacent frame 0.747, 1 spp+OIDN 0.979.
    min_ssim: float = 0.97
    #: Research §3: honest tile4_psnr_min >= 39.8 dB (dn) / 33.9 (nd) whole-frame; tampers fall to 16-24 dB.
    #: Crops are smaller than frames, so one tile is a few hundred pixels and noisier: a few dB below §4b.
    min_tile_psnr: float = 36.0
    #: Research §3/§6: honest pairs stay within 2 bits per tile, hash-only comparison flags >= 4 bits.
    max_tile_phash: int = 3


DEFAULT_CROSS_TOLERANCE = CrossTolerance()

#: :func:`calibrate_cross` puts the PSNR floors this far below the worst honest pair (research §6: "calibrated
#: honest baseline minus about 1-3 dB"; tier 1 used 1 dB). Measured on the 8 spp sample scene: calibrating on
#: 200 drawn 1/16 crops of each of two honest seed pairs (frames 1 and 7), then checking 40 fresh crops of three
#: other honest pairs of frame 6, 10 times over, the worst honest crop fell at most 1.34 dB below the calibrated
#: worst. With only 40 calibration crops per pair it fell up to 2.75 dB below: the worst case is a tail
#: statistic, so calibrate on hundreds of regions.
CALIBRATION_MARGIN_DB = 2.0
#: ... lets the dissimilarity ``1 - SSIM`` grow by this factor over the worst honest pair (same measurement: at
#: most a factor of 1.13; 3.5 with only 40 calibration crops, since SSIM of a 16x9 crop of a noisy render is
#: itself noisy) ...
CALIBRATION_SSIM_SLACK = 1.5
#: ... and allows this many pHash bits per tile above the worst honest pair (same measurement: never above it;
#: research §3: honest pairs within 2 bits, cheats 4 and more).
CALIBRATION_PHASH_SLACK = 2

# Luma weights (Rec. 709) applied to the 8-bit stored values for the uniformity test.
_LUMA = np.array([0.2126, 0.7152, 0.0722])

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class BadImage(ValueError):
    """The bytes are not an acceptable PNG: not a PNG, too many pixels, truncated or corrupt."""


# --- decoding -------------------------------------------------------------------------------------------------


def decode(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode PNG ``data`` into a ``uint8`` array, HxWx3 (RGB) or HxWx4 (RGBA when the PNG has alpha).

    Nothing is trusted before it is checked: the signature and the IHDR header (dimensions at most
    ``max_pixels``, checked before any pixel data is decompressed) first, then every chunk's CRC and the IEND
    marker (Pillow's ``verify``), then the full decode. Animated PNGs are refused (a viewer may show another
    frame than the one compared). Greyscale and palette images are expanded to RGB/RGBA; 16-bit samples are
    reduced to their high byte. Pillow's own bomb guard (``Image.MAX_IMAGE_PIXELS``, an error above twice that)
    is left as it is, so the effective limit is the smaller of the two; this function changes no global state.

    Raises :class:`BadImage` for anything else.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BadImage("expected bytes")
    data = bytes(data)
    if not data.startswith(_PNG_SIGNATURE):
        raise BadImage("not a PNG file")
    width, height, bit_depth = _read_ihdr(data)
    if width * height > max_pixels:
        raise BadImage(f"the header claims {width}x{height}, more than {max_pixels} pixels")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.verify()  # CRC of every chunk, and the data must reach IEND: catches truncation and corruption
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.size != (width, height):
                raise BadImage("the decoder disagrees with the PNG header")
            if getattr(image, "is_animated", False):
                raise BadImage("animated PNGs are not accepted")
            image.load()
            return _to_array(image, bit_depth)
    except BadImage:
        raise
    except Exception as exc:  # Pillow raises many kinds of error on hostile input
        raise BadImage(f"the PNG does not decode: {exc}") from None


def png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from the PNG signature and IHDR header alone: nothing is decompressed, so a caller can
    compare the size with what it expects before any decode. Raises :class:`BadImage` for a bad header."""
    if not bytes(data[:8]) == _PNG_SIGNATURE:
        raise BadImage("not a PNG file")
    width, height, _bit_depth = _read_ihdr(bytes(data[:33]))
    return width, height


#: Room in :func:`png_byte_bound` for a PNG's ancillary chunks (Blender writes its metadata as text chunks).
PNG_ANCILLARY_BYTES = 1024 * 1024


def png_byte_bound(width: int, height: int) -> int:
    """The most bytes an honest PNG of ``width`` x ``height`` takes: 16-bit RGBA stored uncompressed (zlib's
    stored blocks cost 5 bytes in 65535), a filter byte per row, and :data:`PNG_ANCILLARY_BYTES` of metadata.
    An upload for a frame of that size needs no more, so a bigger one is refused before it is read."""
    raw = height * (1 + width * 8)
    return raw + 5 * (raw // 65535 + 1) + PNG_ANCILLARY_BYTES


def _read_ihdr(data: bytes) -> tuple[int, int, int]:
    """Width, height and bit depth from the IHDR chunk, which the PNG spec requires to come first."""
    if len(data) < 33:
        raise BadImage("truncated PNG: no complete IHDR chunk")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise BadImage("the first PNG chunk is not a valid IHDR")
    body = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    if zlib.crc32(kind + body) != crc:
        raise BadImage("the PNG header is corrupt (IHDR CRC mismatch)")
    width, height, bit_depth = struct.unpack(">IIB", body[:9])
    if width == 0 or height == 0:
        raise BadImage("the PNG header claims an empty image")
    return width, height, bit_depth


def _to_array(image: Image.Image, bit_depth: int) -> np.ndarray:
    mode = image.mode
    if mode in ("RGB", "RGBA"):
        return np.array(image, dtype=np.uint8)
    if mode.startswith("I"):  # 16-bit greyscale: Pillow keeps the full 0..65535 range
        grey = np.array(image).astype(np.uint32)
        grey = (grey >> 8 if bit_depth == 16 else grey).clip(0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = "A" in mode or "transparency" in image.info
    return np.array(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8)


def encode_png(array: np.ndarray) -> bytes:
    """Encode a ``uint8`` HxW, HxWx3 or HxWx4 array as PNG bytes (greyscale, RGB or RGBA)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 array, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"expected HxW, HxWx3 or HxWx4, got shape {array.shape}")
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(out, format="PNG")
    return out.getvalue()


# --- regions --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """A rectangle of pixels; ``(x, y)`` is its top-left corner, origin at the top-left of the stored image."""

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("x", "y", "width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool):
                raise ValueError(f"Region.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.x < 0 or self.y < 0 or self.width < 1 or self.height < 1:
            raise ValueError(f"not a valid region: {self}")

    @property
    def area(self) -> int:
        return self.width * self.height

    def fits(self, image_w: int, image_h: int) -> bool:
        """Whether the region lies entirely inside a ``image_w`` x ``image_h`` image."""
        return self.x + self.width <= image_w and self.y + self.height <= image_h

    def expanded(self, margin: int, image_w: int, image_h: int) -> Region:
        """The region grown by ``margin`` pixels on every side, clamped to the image (for a denoiser margin)."""
        if margin < 0:
            raise ValueError("margin must not be negative")
        if not self.fits(image_w, image_h):
            raise ValueError(f"{self} does not fit a {image_w}x{image_h} image")
        x0, y0 = max(0, self.x - margin), max(0, self.y - margin)
        x1 = min(image_w, self.x + self.width + margin)
        y1 = min(image_h, self.y + self.height + margin)
        return Region(x0, y0, x1 - x0, y1 - y0)

    def relative_to(self, outer: Region) -> Region:
        """This region in the coordinates of a crop of ``outer`` (cut the inner part out of a margin render).

        ``crop(margin_crop, inner.relative_to(inner.expanded(m, w, h)))`` is the inner region's pixels.
        """
        rel = Region(max(0, self.x - outer.x), max(0, self.y - outer.y), self.width, self.height)
        if self.x < outer.x or self.y < outer.y or not rel.fits(outer.width, outer.height):
            raise ValueError(f"{self} is not inside {outer}")
        return rel

    def blender_border(self, image_w: int, image_h: int) -> tuple[float, float, float, float]:
        """``(border_min_x, border_max_x, border_min_y, border_max_y)`` for Blender's render border.

        Blender's border is a fraction of the frame with its origin at the BOTTOM-left, and Blender turns it
        back into pixels by multiplying a 32-bit float and truncating. Exact fractions ``x / width`` therefore
        land one pixel short for some positions (measured at 1920x1080: 2 of 24 crops were shifted by a
        pixel). Each edge is nudged a quarter pixel inwards of the next pixel, which is right whether Blender
        truncates or rounds. With ``use_border`` and ``use_crop_to_border`` the render is then exactly
        this region (bit-identical to the full frame's pixels with dither 0 and no denoiser). ``image_w`` and
        ``image_h`` are the output size in pixels (after ``resolution_percentage``).
        """
        if not self.fits(image_w, image_h):
            raise ValueError(f"{self} does not fit a {image_w}x{image_h} image")
        bottom = image_h - self.y - self.height  # rows counted from the bottom of the image

        def edge(pixel: int, size: int) -> float:
            return min(1.0, (pixel + 0.25) / size)

        return (
            edge(self.x, image_w),
            edge(self.x + self.width, image_w),
            edge(bottom, image_h),
            edge(bottom + self.height, image_h),
        )

    def as_list(self) -> list[int]:
        """``[x, y, width, height]``, for JSON."""
        return [self.x, self.y, self.width, self.height]

    @classmethod
    def from_list(cls, values: Any) -> Region:
        """Inverse of :meth:`as_list`; raises ``ValueError`` on anything but four valid integers."""
        if not isinstance(values, list | tuple) or len(values) != 4:
            raise ValueError(f"a region is [x, y, width, height], got {values!r}")
        return cls(*values)


def draw_region(rng: random.Random, width: int, height: int, fraction: float = 1 / 16) -> Region:
    """Draw a crop of about ``fraction`` of a ``width`` x ``height`` frame, with the frame's aspect ratio.

    The crop is at least 8x8 px (or the whole frame if smaller) and at most the frame. Its position is drawn
    so that every pixel, corners included, is covered with at least the probability of a central pixel: the
    start is uniform over every position where the crop overlaps the frame, then clamped into the frame. (A
    start uniform over in-frame positions would almost never cover the corners, where a cheater could then
    tamper safely.) Pass ``secrets.SystemRandom()`` in production; a seeded ``random.Random`` in tests.
    """
    if width < 1 or height < 1:
        raise ValueError("the frame must have at least one pixel")
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    scale = math.sqrt(fraction)
    w = min(width, max(min(MIN_TILE_SIDE, width), round(width * scale)))
    h = min(height, max(min(MIN_TILE_SIDE, height), round(height * scale)))
    return place_region(rng, width, height, w, h)


def place_region(rng: random.Random, width: int, height: int, w: int, h: int) -> Region:
    """A ``w`` x ``h`` crop of a ``width`` x ``height`` frame, placed as :func:`draw_region` places its crops."""
    x = min(max(rng.randrange(-(w - 1), width), 0), width - w)
    y = min(max(rng.randrange(-(h - 1), height), 0), height - h)
    return Region(x, y, w, h)


def crop(image: np.ndarray, region: Region) -> np.ndarray:
    """The pixels of ``region`` (a view into ``image``); raises ``ValueError`` if it does not fit."""
    h, w = image.shape[:2]
    if not region.fits(w, h):
        raise ValueError(f"{region} does not fit a {w}x{h} image")
    return image[region.y : region.y + region.height, region.x : region.x + region.width]


# --- tier 0: no rendering -------------------------------------------------------------------------------------


def _flatten(image: np.ndarray) -> np.ndarray:
    """RGB ``uint8``: alpha composited onto :data:`ALPHA_BACKGROUND`, greyscale expanded."""
    image = np.asarray(image)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2).astype(np.uint8)
    if image.shape[2] == 3:
        return image.astype(np.uint8, copy=False)
    if image.shape[2] != 4:
        raise ValueError(f"expected an RGB or RGBA image, got shape {image.shape}")
    alpha = image[:, :, 3:4].astype(np.float64) / 255.0
    background = np.array(ALPHA_BACKGROUND, dtype=np.float64)
    mixed = image[:, :, :3].astype(np.float64) * alpha + background * (1.0 - alpha)
    return np.rint(mixed).astype(np.uint8)


def luma_spread(image: np.ndarray) -> float:
    """Robust luminance range of ``image`` in 8-bit levels (see :data:`UNIFORM_PERCENTILES`)."""
    luma = _flatten(image).astype(np.float64) @ _LUMA
    low, high = np.percentile(luma, UNIFORM_PERCENTILES)
    return float(high - low)


def is_uniform(image: np.ndarray) -> bool:
    """Whether ``image`` is blank: black, white, one colour or a mean-colour fill (transparent counts too)."""
    return luma_spread(image) <= UNIFORM_MAX_LUMA_SPREAD


def _grid_edges(size: int, parts: int) -> list[int]:
    return [i * size // parts for i in range(parts + 1)]


def _tiles(image: np.ndarray, grid: int) -> list[np.ndarray]:
    """Row-major tiles of a ``grid`` x ``grid`` split (edges at ``i * size // grid``)."""
    h, w = image.shape[:2]
    if grid < 1 or h < grid or w < grid:
        raise ValueError(f"cannot split a {w}x{h} image into a {grid}x{grid} grid")
    ys, xs = _grid_edges(h, grid), _grid_edges(w, grid)
    return [image[ys[r] : ys[r + 1], xs[c] : xs[c + 1]] for r in range(grid) for c in range(grid)]


def _crop_grid(image: np.ndarray, grid: int = 4) -> int:
    """``grid``, reduced so that no tile is smaller than :data:`MIN_TILE_SIDE` (at least 1)."""
    h, w = image.shape[:2]
    return max(1, min(grid, h // MIN_TILE_SIDE, w // MIN_TILE_SIDE))


#: imagehash.phash's defaults: a tile is scaled to 32x32, and the 8x8 lowest frequencies of its DCT make 64 bits.
PHASH_SIDE, PHASH_BITS_SIDE = 32, 8


def tile_hashes(image: np.ndarray, grid: int = 4) -> list[str]:
    """imagehash pHash (64-bit, hex) of each tile of a ``grid`` x ``grid`` split, row-major.

    RGBA is composited onto :data:`ALPHA_BACKGROUND` first so that transparency differences change the hash.
    The tiles' DCTs, medians and bits are taken in one batch (issue 16: half the time of a call per tile at 64x36);
    the hashes are imagehash.phash's bit for bit (``tests/coordinator/test_frame_analysis.py``), so hashes stored
    before still compare.
    """
    small = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(tile)).convert("L")
                                 .resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS))
                      for tile in _tiles(_flatten(image), grid)])
    dct = fftpack.dct(fftpack.dct(small, axis=1), axis=2)[:, :PHASH_BITS_SIDE, :PHASH_BITS_SIDE]
    low = dct.reshape(len(small), PHASH_BITS_SIDE * PHASH_BITS_SIDE)
    bits = low > np.median(low, axis=1, keepdims=True)
    return [bytes(row).hex() for row in np.packbits(bits, axis=1)]


def tile_distance(a: list[str], b: list[str]) -> int:
    """Largest Hamming distance between corresponding tile hashes of two :func:`tile_hashes` results."""
    if len(a) != len(b) or not a:
        raise ValueError("tile hash lists must be non-empty and of the same length")
    return max(imagehash.hex_to_hash(x) - imagehash.hex_to_hash(y) for x, y in zip(a, b, strict=True))


# --- comparisons against a re-render --------------------------------------------------------------------------


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two images of the same size with the same channels (RGB gains an opaque alpha next to RGBA)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")

    def rgba(x: np.ndarray) -> np.ndarray:
        if x.ndim == 3 and x.shape[2] == 4:
            return x
        rgb = _flatten(x)
        return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)], axis=2)

    if a.ndim == 3 and b.ndim == 3 and a.shape[2] == b.shape[2] == 3:
        return a, b
    return rgba(a), rgba(b)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0:
        return PSNR_IDENTICAL
    return min(PSNR_IDENTICAL, 10.0 * math.log10(255.0**2 / mse))


def strict_metrics(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Bit-exactness metrics of two same-size crops, over every channel including alpha.

    ``maxabs``: largest difference of any channel (8-bit levels); ``frac_over_4``: fraction of pixels with
    any channel off by more than :data:`STRICT_PIXEL_TOLERANCE`; ``psnr`` in dB (:data:`PSNR_IDENTICAL` if
    identical).
    """
    a, b = _pair(a, b)
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {
        "maxabs": int(diff.max()),
        "frac_over_4": float(np.mean(np.any(diff > STRICT_PIXEL_TOLERANCE, axis=-1))),
        "psnr": _psnr(a, b),
    }


def ssim(a: np.ndarray, b: np.ndarray, win_size: int = 7) -> float:
    """Mean SSIM of two 8-bit images (Wang et al. 2004), averaged over channels.

    Same definition as scikit-image's default ``structural_similarity`` (which the research numbers were
    measured with): a ``win_size`` x ``win_size`` uniform window, sample covariance, K1 = 0.01, K2 = 0.03,
    data range 255, reflected borders and the mean taken over the interior (a half-window in from each edge).
    The window shrinks (to an odd size) for crops smaller than it.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    win = min(win_size, a.shape[0], a.shape[1])
    win -= 1 - win % 2  # odd
    if win < 1:
        raise ValueError("images are empty")
    npix = win * win
    cov_norm = npix / (npix - 1) if npix > 1 else 1.0
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    pad = (win - 1) // 2
    scores = []
    for ch in range(a.shape[2]):
        x, y = a[:, :, ch], b[:, :, ch]

        def mean(img: np.ndarray) -> np.ndarray:
            return ndimage.uniform_filter(img, size=win, mode="reflect")

        ux, uy = mean(x), mean(y)
        vx = cov_norm * (mean(x * x) - ux * ux)
        vy = cov_norm * (mean(y * y) - uy * uy)
        vxy = cov_norm * (mean(x * y) - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        interior = s[pad : s.shape[0] - pad, pad : s.shape[1] - pad]
        scores.append(float(interior.mean()))
    return float(np.mean(scores))


def cross_metrics(a: np.ndarray, b: np.ndarray, grid: int = 4) -> dict[str, float]:
    """Noise-tolerant metrics of two same-size crops from different devices or seeds.

    Alpha is composited onto :data:`ALPHA_BACKGROUND` first. ``psnr`` and ``ssim`` over the crop;
    ``tile_psnr_min`` (lowest per-tile PSNR) and ``tile_phash_max`` (largest per-tile pHash distance) over a
    ``grid`` x ``grid`` split, reduced for small crops so that tiles are at least :data:`MIN_TILE_SIDE` px;
    ``grid`` reports the split used.
    """
    a, b = _pair(a, b)
    fa, fb = _flatten(a), _flatten(b)
    g = _crop_grid(fa, grid)
    tiles_a, tiles_b = _tiles(fa, g), _tiles(fb, g)
    return {
        "psnr": _psnr(fa, fb),
        "ssim": ssim(fa, fb),
        "tile_psnr_min": min(_psnr(x, y) for x, y in zip(tiles_a, tiles_b, strict=True)),
        "tile_phash_max": tile_distance(tile_hashes(fa, g), tile_hashes(fb, g)),
        "grid": g,
    }


def calibrate_cross(honest: Iterable[dict[str, Any]], margin_db: float = CALIBRATION_MARGIN_DB) -> CrossTolerance:
    """A job's :class:`CrossTolerance` from :func:`cross_metrics` of honest pairs (what the calibration script does).

    Feed it crops of trusted frames rendered twice independently, the way verification will differ: on the two
    device classes, or with two seeds as a stand-in; hundreds of :func:`draw_region` crops per pair (the worst
    honest crop is a tail statistic, see :data:`CALIBRATION_MARGIN_DB`). Each limit is the worst honest value
    loosened by :data:`CALIBRATION_MARGIN_DB`, :data:`CALIBRATION_SSIM_SLACK` or :data:`CALIBRATION_PHASH_SLACK`.
    Raises ``ValueError`` if there are no pairs or all are identical (not independent renders).
    """
    pairs = list(honest)
    if not pairs:
        raise ValueError("calibration needs at least one honest pair")
    if all(m["psnr"] >= PSNR_IDENTICAL for m in pairs):
        raise ValueError("every calibration pair is identical: render them with another seed or device")
    return CrossTolerance(
        min_psnr=min(m["psnr"] for m in pairs) - margin_db,
        min_ssim=1.0 - CALIBRATION_SSIM_SLACK * (1.0 - min(m["ssim"] for m in pairs)),
        min_tile_psnr=min(m["tile_psnr_min"] for m in pairs) - margin_db,
        max_tile_phash=max(int(m["tile_phash_max"]) for m in pairs) + CALIBRATION_PHASH_SLACK,
    )


@dataclass
class Verdict:
    """Outcome of :func:`decide`: whether the frame passed, a short human reason, and the metrics used."""

    passed: bool
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)


def decide(metrics: dict[str, Any], mode: str, tolerance: CrossTolerance | None = None) -> Verdict:
    """Judge :func:`strict_metrics` (``mode="strict"``) or :func:`cross_metrics` (``mode="cross"``) output.

    Strict passes when ``maxabs <= STRICT_MAX_ABS`` and ``frac_over_4 <= STRICT_MAX_FRAC_OVER``. Cross passes
    when every limit of ``tolerance`` (default :data:`DEFAULT_CROSS_TOLERANCE`, normally the job's calibrated
    one) holds. The reason lists every failed limit.
    """
    try:
        if mode == "strict":
            checks = [
                ("maxabs", metrics["maxabs"] <= STRICT_MAX_ABS, f"{metrics['maxabs']} > {STRICT_MAX_ABS}"),
                (
                    "frac_over_4",
                    metrics["frac_over_4"] <= STRICT_MAX_FRAC_OVER,
                    f"{metrics['frac_over_4']:.4f} > {STRICT_MAX_FRAC_OVER}",
                ),
            ]
        elif mode == "cross":
            t = tolerance or DEFAULT_CROSS_TOLERANCE
            checks = [
                ("psnr", metrics["psnr"] >= t.min_psnr, f"{metrics['psnr']:.1f} dB < {t.min_psnr}"),
                ("ssim", metrics["ssim"] >= t.min_ssim, f"{metrics['ssim']:.4f} < {t.min_ssim}"),
                (
                    "tile_psnr_min",
                    metrics["tile_psnr_min"] >= t.min_tile_psnr,
                    f"{metrics['tile_psnr_min']:.1f} dB < {t.min_tile_psnr}",
                ),
                (
                    "tile_phash_max",
                    metrics["tile_phash_max"] <= t.max_tile_phash,
                    f"{metrics['tile_phash_max']} > {t.max_tile_phash}",
                ),
            ]
        else:
            raise ValueError(f"unknown comparison mode {mode!r} (expected 'strict' or 'cross')")
    except KeyError as exc:
        raise ValueError(f"metrics for {mode!r} mode lack {exc}") from None
    failed = [f"{name} {why}" for name, ok, why in checks if not ok]
    reason = f"{mode}: " + ("; ".join(failed) if failed else "within tolerance")
    return Verdict(passed=not failed, reason=reason, metrics=dict(metrics))


def compare(a: np.ndarray, b: np.ndarray, mode: str, tolerance: CrossTolerance | None = None) -> Verdict:
    """Shorthand: the worker's crop ``a`` against the verifier's re-render ``b`` in ``mode``."""
    if mode == "strict":
        return decide(strict_metrics(a, b), mode)
    if mode == "cross":
        return decide(cross_metrics(a, b), mode, tolerance)
    raise ValueError(f"unknown comparison mode {mode!r} (expected 'strict' or 'cross')")


# --- yardstick: a region's own noise as the measure ----------------------------------------------------------

#: A verifier that renders the region twice, with the job's seed and with another one (its "yardstick"), uploads
#: the two renders stacked: the job-seed render on top, the yardstick below, each the size of the render rect.
YARDSTICK_RENDERS = 2
#: The yardstick of a region is ``MSE(top, bottom) / 2``: an estimate of one render's noise variance there,
#: measured on the very pixels under test, so a noisy region gets room and a clean one none. This floor (in
#: squared 8-bit levels) is added to it: where both renders are exact (flat sky, no noise) 8-bit rounding,
#: dither (+-2 levels, measured on bpy 5.0.1) and a denoiser's crop-context shift still differ a little.
YARDSTICK_FLOOR = 2.0
#: A crop passes when its mean squared distance to the mean of the verifier's two renders is at most this many
#: yardsticks. For an honest crop with noise independent of the verifier's (another device class) the expected
#: ratio is 1.5 (noise of the crop plus half the noise of the mean); same seed and device gives about 0.5; the
#: tail is long where a region is tiny (the yardstick itself is then estimated from few pixels). Calibrated on
#: CPU with seeds standing for devices (benchmarks/verification.py part d, BENCHMARKS.md): the worst of 5 600
#: honest other-seed crops (64x36 and 192x108; plain, dithered, denoised) was 5.16 (a 16x9 crop of the
#: denoised 64x36 scene; 3.9 without the denoiser, 2.0 at 192x108), so 4 rejected 1 of 1 500 there; 6 rejects
#: none, and a held-out run with other regions checks it. Cheats: a blank frame or another scene lies at 50 and
#: far above, a half-resolution upscale at a median of 7-21, 1/8 of the samples at 5-12.
YARDSTICK_MAX_RATIO = 6.0
#: Within one device class the renderer's crop should be the verifier's job-seed render but for what a denoiser
#: makes of the region's edge; ``same_ratio`` = MSE(ours, top) / (the yardstick + floor) measures that, and this
#: is its limit for a same-class check that failed the strict rule (a denoised scene). Measured (part d): honest
#: same-seed denoised crops reached 0.83 (64x36) and 0.24 (192x108) over 1 900 checks (none above 1.0 in 1 900
#: more, of other regions); a render with other noise
#: (another seed) a median of 1.0-1.9; 1/8 of the samples at least 1.67, the other whole-frame cheats far more
#: (checked again at 1.5 on other regions, BENCHMARKS.md). 1.5 leaves the honest tail room.
YARDSTICK_SAME_CLASS_MAX_RATIO = 1.5


def split_yardstick(rendered: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A verifier's upload as ``(job-seed render, yardstick render or None)``: one render rect ``height`` tall,
    or two stacked (see :data:`YARDSTICK_RENDERS`). Raises :class:`BadImage` for any other height."""
    if rendered.shape[0] == height:
        return rendered, None
    if rendered.shape[0] == YARDSTICK_RENDERS * height:
        return rendered[:height], rendered[height:]
    raise BadImage(f"the region render is {rendered.shape[0]} px tall, expected {height} "
                   f"(or {YARDSTICK_RENDERS * height} with a yardstick)")


def yardstick_metrics(ours: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> dict[str, float]:
    """How far the renderer's crop ``ours`` lies from the verifier's two renders, in units of their own distance.

    ``ratio`` = MSE(ours, (top + bottom) / 2) / (MSE(top, bottom) / 2 + :data:`YARDSTICK_FLOOR`), over every
    channel (alpha composited onto :data:`ALPHA_BACKGROUND`); ``same_ratio`` the same with MSE(ours, top), for
    a renderer of the verifier's own class; ``yardstick`` is the denominator's MSE part.
    """
    a, t = _pair(ours, top)
    _, b = _pair(ours, bottom)
    fa_, ft, fb = (_flatten(x).astype(np.float64) for x in (a, t, b))
    spread = float(np.mean((ft - fb) ** 2)) / 2.0
    distance = float(np.mean((fa_ - (ft + fb) / 2.0) ** 2))
    same = float(np.mean((fa_ - ft) ** 2))
    return {"ratio": distance / (spread + YARDSTICK_FLOOR), "same_ratio": same / (spread + YARDSTICK_FLOOR),
            "yardstick": spread, "distance": distance}


def judge_region(ours: np.ndarray, top: np.ndarray, bottom: np.ndarray | None, cross: bool) -> Verdict:
    """The coordinator's rule for a region check: the renderer's crop ``ours`` against the verifier's renders.

    Same device class (``cross`` false): the strict rule (:func:`decide` ``"strict"``) against ``top``; when it
    fails and the verifier rendered a yardstick (it does for a denoised scene: OIDN sees the whole image, so a
    region render differs from the full frame by up to 16 levels however wide its margin), the crop may still
    pass within :data:`YARDSTICK_SAME_CLASS_MAX_RATIO` yardsticks of ``top``. Another device class: within
    :data:`YARDSTICK_MAX_RATIO` yardsticks of the two renders' mean, and a yardstick is required. Two
    bit-identical renders give no yardstick: then only the strict rule can pass.
    """
    metrics: dict[str, Any] = strict_metrics(ours, top)
    strict = decide(metrics, "strict")
    if bottom is None:
        if cross:
            return Verdict(False, "cross: the verifier rendered no yardstick", metrics)
        return strict
    metrics.update(yardstick_metrics(ours, top, bottom))
    if not cross and strict.passed:
        return Verdict(True, strict.reason, metrics)
    mode = "cross" if cross else "strict"
    if metrics["yardstick"] == 0:
        return Verdict(strict.passed, f"{mode}: the two renders are identical, no yardstick; {strict.reason}",
                       metrics)
    ratio, limit = (metrics["ratio"], YARDSTICK_MAX_RATIO) if cross \
        else (metrics["same_ratio"], YARDSTICK_SAME_CLASS_MAX_RATIO)
    passed = ratio <= limit
    reason = f"{mode}: " + (f"within {limit} yardsticks ({ratio:.2f})" if passed
                            else f"{ratio:.2f} yardsticks > {limit}")
    return Verdict(passed, reason, metrics)


# --- tier 1: low-resolution checks ----------------------------------------------------------------------------


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


# _srgb_to_linear of every 8-bit value, the same float64 operations on the same inputs (bit for bit): a lookup is
# 0.3 ms for a 384x216 frame where the power takes 7 (a tier-1 check result's judgement, frame after frame).
_SRGB_TO_LINEAR_8BIT = _srgb_to_linear(np.arange(256, dtype=np.float64) / 255.0)


def _linear_to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def _box_matrix(size: int, out: int) -> sparse.csr_matrix:
    """``out`` x ``size`` area-averaging weights: output pixel i covers input span [i, i+1) * size / out."""
    scale = size / out
    rows, cols, vals = [], [], []
    for i in range(out):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(math.floor(lo)), min(size, int(math.ceil(hi)))):
            overlap = min(hi, j + 1) - max(lo, j)
            if overlap > 0:
                rows.append(i)
                cols.append(j)
                vals.append(overlap / scale)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(out, size))


def downscale_linear(image: np.ndarray, factor: int) -> np.ndarray:
    """Box-filter downscale by an integer ``factor`` in linear light (research §4c), ``uint8`` out.

    sRGB-decode, average (alpha-weighted for RGBA: Blender's PNG alpha is straight), re-encode. The output is
    ``(H // factor) x (W // factor)``, the size Blender renders at ``resolution_percentage = 100 // factor``;
    when ``factor`` does not divide the size, each output pixel averages the exact (fractional) area of the
    frame it covers. Compare it with a verifier render made with ``cycles.pixel_filter_type = 'BOX'``.
    """
    image = np.asarray(image)
    if not isinstance(factor, int) or factor < 1:
        raise ValueError("factor must be a positive integer")
    h, w = image.shape[:2]
    oh, ow = h // factor, w // factor
    if oh < 1 or ow < 1:
        raise ValueError(f"a {w}x{h} image is too small to downscale by {factor}")
    squeeze = image.ndim == 2
    img = image[:, :, None] if squeeze else image
    channels = img.shape[2]
    if channels not in (1, 3, 4):
        raise ValueError(f"expected a greyscale, RGB or RGBA image, got shape {image.shape}")
    rgb = img[:, :, : min(channels, 3)]
    color = _SRGB_TO_LINEAR_8BIT[rgb] if rgb.dtype == np.uint8 else _srgb_to_linear(rgb.astype(np.float64) / 255.0)
    alpha = img[:, :, 3:4].astype(np.float64) / 255.0 if channels == 4 else None
    if alpha is not None:
        color = color * alpha

    if h % factor == 0 and w % factor == 0:

        def box(x: np.ndarray) -> np.ndarray:
            return x.reshape(oh, factor, ow, factor, x.shape[2]).mean(axis=(1, 3))
    else:
        my, mx = _box_matrix(h, oh), _box_matrix(w, ow)

        def box(x: np.ndarray) -> np.ndarray:
            c = x.shape[2]
            rows = (my @ x.reshape(h, w * c)).reshape(oh, w, c)
            cols = mx @ rows.transpose(1, 0, 2).reshape(w, oh * c)
            return cols.reshape(ow, oh, c).transpose(1, 0, 2)

    color = box(color)
    if alpha is not None:
        a = box(alpha)
        color = np.divide(color, a, out=np.zeros_like(color), where=a > 0)
        out = np.concatenate([_linear_to_srgb(color), a], axis=2)
    else:
        out = _linear_to_srgb(color)
    out = np.rint(out * 255.0).clip(0, 255).astype(np.uint8)
    return out[:, :, 0] if squeeze else out
