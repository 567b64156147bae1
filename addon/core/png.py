"""A minimal PNG writer (8-bit RGBA), so any Blender image can be sent as PNG without saving or
changing the artist's image datablock. zlib and struct are all it needs."""

from __future__ import annotations

import struct
import zlib

from .images import PNG_MAGIC


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_rgba8(width: int, height: int, rows_top_down: bytes) -> bytes:
    """PNG bytes for `height` rows of `width` RGBA pixels, top row first."""
    stride = width * 4
    if width <= 0 or height <= 0 or len(rows_top_down) != stride * height:
        raise ValueError(f"expected {stride * height} bytes for {width}x{height} RGBA, got {len(rows_top_down)}")
    raw = b"".join(b"\x00" + rows_top_down[y * stride:(y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return PNG_MAGIC + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")
