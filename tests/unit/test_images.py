"""core/images.py without Blender: picture kind, size from the header, and damage found before a send."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import pytest

from addon.core import png
from addon.core.errors import InputError
from addon.core.images import (
    MAX_IMAGE_PIXELS,
    InputFile,
    check_images,
    image_kind,
    image_problem,
    image_size,
    jpeg_problem,
    png_problem,
)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _rgba(width: int, height: int) -> bytes:
    return png.encode_rgba8(width, height, bytes((x * 7) % 256 for x in range(width * height * 4)))


def _jpeg(width: int, height: int, *, frame_first: bool = True) -> bytes:
    """SOI, an APP0 segment, a baseline frame header (SOF0) and a scan header around it, then EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00" + b"\x12\x34"
    body = sof0 + sos if frame_first else sos + sof0
    return b"\xff\xd8" + app0 + body + b"\xff\xd9"


def test_kind_is_told_by_the_first_bytes() -> None:
    assert image_kind(_rgba(2, 2)) == "png"
    assert image_kind(_jpeg(4, 3)) == "jpeg"
    assert image_kind(b"glTF\x02\x00\x00\x00") is None
    assert image_kind(b"<html>") is None


def test_size_from_the_png_header_and_the_jpeg_frame_header() -> None:
    assert image_size(_rgba(5, 3)) == (5, 3)
    assert image_size(_jpeg(640, 480)) == (640, 480)
    # fill bytes before a marker are skipped
    data = _jpeg(33, 17)
    assert image_size(data[:2] + b"\xff" + data[2:]) == (33, 17)


def test_size_unknown_when_the_header_does_not_say() -> None:
    assert image_size(_jpeg(64, 64, frame_first=False)) is None  # scan data before any frame header
    assert image_size(b"\xff\xd8\xff\xe0\x00") is None  # cut before a frame header
    assert image_size(png.PNG_MAGIC + b"\x00" * 4) is None
    assert image_size(b"GIF89a" + b"\x00" * 20) is None


def test_a_whole_png_has_no_problem() -> None:
    assert png_problem(_rgba(7, 5)) is None
    assert image_problem(_rgba(1, 1)) is None


@pytest.mark.parametrize(("damage", "problem"), [
    (lambda d: d[:-6], "the file is cut short"),
    (lambda d: d[:20] + bytes([d[20] ^ 0xFF]) + d[21:], "its IHDR chunk is corrupt"),
    (lambda d: d[:8] + _chunk(b"IDAT", b"") + d[8:], "it has no PNG header"),
])
def test_png_damage_is_named(damage: Callable[[bytes], bytes], problem: str) -> None:
    assert png_problem(damage(_rgba(4, 4))) == problem


def test_png_header_beyond_the_pixel_limit_is_malformed() -> None:
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1
    header = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    data = png.PNG_MAGIC + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00")) + _chunk(b"IEND", b"")
    assert png_problem(data) == "its PNG header is malformed"


def test_png_data_must_match_the_size_the_header_announces() -> None:
    header = struct.pack(">IIBBBBB", 2, 2, 8, 6, 0, 0, 0)
    short_rows = zlib.compress(b"\x00" + b"\x10" * 8)  # one row of two RGBA pixels, not two
    data = png.PNG_MAGIC + _chunk(b"IHDR", header) + _chunk(b"IDAT", short_rows) + _chunk(b"IEND", b"")
    assert png_problem(data) == "its image data does not match its size"


def test_interlaced_png_size_counts_every_adam7_pass() -> None:
    # 3x3 8-bit grey, Adam7: passes 1 (1x1), 2 (none: x0=4), 3 (none: y0=4), 4 (1x1), 5 (2x1), 6 (1x2), 7 (3x1)
    raw = (2 + 2 + 3 + 2 * 2 + 4)
    header = struct.pack(">IIBBBBB", 3, 3, 8, 0, 0, 0, 1)
    good = png.PNG_MAGIC + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00" * raw)) \
        + _chunk(b"IEND", b"")
    assert png_problem(good) is None
    bad = png.PNG_MAGIC + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00" * (raw + 1))) \
        + _chunk(b"IEND", b"")
    assert png_problem(bad) == "its image data does not match its size"


def test_a_jpeg_must_end_with_its_end_marker() -> None:
    assert jpeg_problem(_jpeg(8, 8)) is None
    assert jpeg_problem(_jpeg(8, 8)[:-2]) == "the file is cut short"
    assert image_problem(_jpeg(8, 8)[:-2]) == "the file is cut short"


def test_check_images_names_the_damaged_file_and_passes_other_data() -> None:
    check_images([InputFile("ok.png", _rgba(2, 2)), InputFile("model.glb", b"glTF"), InputFile("ok.jpg", _jpeg(2, 2))])
    with pytest.raises(InputError, match=r"The image cut\.jpg is damaged \(the file is cut short\)"):
        check_images([InputFile("ok.png", _rgba(2, 2)), InputFile("cut.jpg", _jpeg(2, 2)[:-2])])
