"""Just enough of PNG to look at a browser screenshot: 8-bit RGB/RGBA, not interlaced.

Why not an imaging library: the test needs pixel counts, not image processing, and
``zlib`` + ``struct`` decode what Chromium writes without another dependency.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}  # colour type -> bytes per pixel at bit depth 8


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    #: Bytes per pixel: 3 (RGB) or 4 (RGBA).
    channels: int
    #: Unfiltered rows, ``width * channels`` bytes each.
    rows: list[bytes]

    def colours(self, step: int = 1) -> Counter[tuple[int, int, int]]:
        """How many pixels have each RGB colour (every ``step``-th pixel of every row)."""
        counts: Counter[tuple[int, int, int]] = Counter()
        stride = self.channels * step
        for row in self.rows:
            r, g, b = row[0::stride], row[1::stride], row[2::stride]
            counts.update(zip(r, g, b, strict=True))
        return counts


def decode(data: bytes) -> Image:
    """Decode ``data``; ValueError for anything this small decoder does not handle."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file (bad signature)")
    offset, header, idat = len(SIGNATURE), None, bytearray()
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length  # length, type, body, CRC
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without an IHDR chunk")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or colour_type not in _CHANNELS or interlace:
        raise ValueError(
            f"unsupported PNG: bit depth {depth}, colour type {colour_type}, "
            f"interlace {interlace} (expected 8-bit RGB or RGBA, not interlaced)"
        )
    channels = _CHANNELS[colour_type]
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise ValueError(f"PNG data is {len(raw)} bytes, expected {height * (stride + 1)}")
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = _unfilter(
            raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, channels
        )
        rows.append(row)
        previous = row
    return Image(width, height, channels, rows)


def _unfilter(kind: int, row: bytearray, above: bytes, bpp: int) -> bytes:
    """Undo one row's filter (PNG specification, section 9)."""
    n = len(row)
    if kind == 0:
        pass
    elif kind == 1:  # Sub
        for i in range(bpp, n):
            row[i] = (row[i] + row[i - bpp]) & 0xFF
    elif kind == 2:  # Up
        row = bytearray((a + b) & 0xFF for a, b in zip(row, above, strict=True))
    elif kind == 3:  # Average
        for i in range(n):
            left = row[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + ((left + above[i]) >> 1)) & 0xFF
    elif kind == 4:  # Paeth
        for i in range(n):
            a = row[i - bpp] if i >= bpp else 0
            b = above[i]
            c = above[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            row[i] = (row[i] + predictor) & 0xFF
    else:
        raise ValueError(f"unknown PNG filter type {kind}")
    return bytes(row)
