"""Stack two PNGs of one width and format into one, the first on top: a verifier's job-seed render and its yardstick.

The worker has no image library (it installs no Pillow), and needs none: a PNG's image data is one zlib stream of
rows, each led by its filter byte, so two images become one by joining their rows. Only the first row of the
lower image must change: its filter may refer to the row above, which for it was a row of zeros; it is
unfiltered here and stored with filter 0 (None). Ancillary chunks (Blender's metadata) are dropped.
"""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Bits per sample times samples per pixel, by PNG colour type (greyscale, RGB, palette, grey+alpha, RGBA).
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


class PngStackError(ValueError):
    """The files are not two PNGs that can be stacked (other width, depth or colour type, or broken)."""


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(SIGNATURE):
        raise PngStackError("not a PNG file")
    out, pos = [], len(SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4 or zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise PngStackError(f"a broken {kind!r} chunk")
        out.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            return out
    raise PngStackError("no IEND chunk")


def _read(data: bytes) -> tuple[bytes, bytes, int, bytes]:
    """(IHDR body, PLTE body or b'', height, raw filtered rows)."""
    chunks = _chunks(data)
    if not chunks or chunks[0][0] != b"IHDR":
        raise PngStackError("the first chunk is not IHDR")
    header = chunks[0][1]
    if header[12] != 0:
        raise PngStackError("interlaced PNGs are not stacked")
    palette = b"".join(body for kind, body in chunks if kind == b"PLTE")
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    return header, palette, struct.unpack(">I", header[4:8])[0], raw


def _unfilter_first_row(row: bytes, bpp: int) -> bytes:
    """The first row of an image, with its filter undone (the row above it is all zeros), led by filter 0."""
    kind, line = row[0], bytearray(row[1:])
    if kind in (0, 2):  # None; Up adds the zero row above
        return b"\x00" + bytes(line)
    for i in range(bpp, len(line)):  # Sub, Average and Paeth all reduce to the left neighbour over zeros
        left = line[i - bpp]
        line[i] = (line[i] + (left // 2 if kind == 3 else left)) & 0xFF
    if kind not in (1, 3, 4):
        raise PngStackError(f"unknown PNG filter {kind}")
    return b"\x00" + bytes(line)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def stack(top: bytes, bottom: bytes) -> bytes:
    """One PNG: ``top``'s rows, then ``bottom``'s. Both must agree on width, bit depth and colour type."""
    header, palette, top_height, top_raw = _read(top)
    header2, palette2, bottom_height, bottom_raw = _read(bottom)
    if header[:4] + header[8:] != header2[:4] + header2[8:] or palette != palette2:
        raise PngStackError("the two PNGs differ in width, depth, colour type or palette")
    width, depth, colour = struct.unpack(">I", header[:4])[0], header[8], header[9]
    bpp = max(1, depth * _CHANNELS.get(colour, 0) // 8)
    stride = 1 + (width * depth * _CHANNELS.get(colour, 0) + 7) // 8
    if colour not in _CHANNELS or len(top_raw) != stride * top_height or len(bottom_raw) != stride * bottom_height:
        raise PngStackError("the image data does not fit the header")
    rows = top_raw + _unfilter_first_row(bottom_raw[:stride], bpp) + bottom_raw[stride:]
    new_header = header[:4] + struct.pack(">I", top_height + bottom_height) + header[8:]
    chunks = [_chunk(b"IHDR", new_header)]
    if palette:
        chunks.append(_chunk(b"PLTE", palette))
    chunks += [_chunk(b"IDAT", zlib.compress(rows, 6)), _chunk(b"IEND", b"")]
    return SIGNATURE + b"".join(chunks)
