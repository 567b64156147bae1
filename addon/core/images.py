"""Input pictures: what kind they are (PNG or JPEG, by their first bytes), their size from the header,
and whether their data is whole, so a damaged picture is refused before anything is sent. Plain Python
(struct and zlib): the Blender exporter and the runner both ask here."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InputError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
MAX_IMAGE_PIXELS = 1 << 28  # 16384 x 16384: larger headers are damage, not pictures

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


@dataclass(frozen=True)
class InputFile:
    name: str
    data: bytes


def image_kind(data: bytes) -> str | None:
    """'png' or 'jpeg' for the start of a file, else None."""
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    return None


def check_images(files: Sequence[InputFile]) -> None:
    """Refuse a PNG or JPEG that is damaged (a valid signature on broken data) before anything is sent:
    a provider would take the upload (and maybe the credits) and fail later, or make garbage of it."""
    for item in files:
        problem = image_problem(item.data)
        if problem:
            raise InputError(f"The image {item.name} is damaged ({problem}): open it in an image editor and save "
                             "it again, or pick another picture")


def image_problem(data: bytes) -> str | None:
    """What is wrong with a PNG or JPEG file, or None (also for anything that is neither)."""
    kind = image_kind(data[:8])
    if kind == "png":
        return png_problem(data)
    if kind == "jpeg":
        return jpeg_problem(data)
    return None


def png_problem(data: bytes) -> str | None:
    """What is wrong with a PNG file, or None: every chunk's length and CRC, the header, and that the
    image data decompresses to exactly the size the header announces."""
    pos, first, header = len(PNG_MAGIC), True, None
    inflate = zlib.decompressobj()
    produced = 0
    ended = False
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body_end = pos + 8 + length
        if body_end + 4 > len(data):
            return "the file is cut short"
        body = data[pos + 8:body_end]
        (crc,) = struct.unpack_from(">I", data, body_end)
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            return f"its {kind.decode('latin-1', 'replace')} chunk is corrupt"
        if first and kind != b"IHDR":
            return "it has no PNG header"
        first = False
        if kind == b"IHDR":
            if length != 13:
                return "its PNG header is malformed"
            header = struct.unpack(">IIBBBBB", body)
            width, height, depth, color, _compression, _filter, interlace = header
            if not 0 < width * height <= MAX_IMAGE_PIXELS or depth not in _PNG_DEPTHS.get(color, ()) \
                    or interlace not in (0, 1):
                return "its PNG header is malformed"
        elif kind == b"IDAT":
            try:
                while body and not inflate.eof:
                    produced += len(inflate.decompress(body, 1 << 20))
                    body = inflate.unconsumed_tail
            except zlib.error:
                return "its image data does not decompress"
        elif kind == b"IEND":
            ended = True
            break
        pos = body_end + 4
    if header is None:
        return "it has no PNG header"
    try:
        while not inflate.eof and (out := inflate.decompress(inflate.unconsumed_tail, 1 << 20)):
            produced += len(out)
    except zlib.error:
        return "its image data does not decompress"
    if not ended or not inflate.eof:
        return "the file is cut short"
    width, height, depth, color, _c, _f, interlace = header
    if produced != _png_raw_size(width, height, depth * _PNG_CHANNELS[color], interlace):
        return "its image data does not match its size"
    return None


def _png_raw_size(width: int, height: int, bits_per_pixel: int, interlace: int) -> int:
    """Bytes of filtered scanlines (a filter byte per row) the image data must inflate to."""
    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits_per_pixel + 7) // 8)

    if not interlace:
        return rows(width, height)
    total = 0
    for x0, y0, dx, dy in _ADAM7:
        pass_width = (width - x0 + dx - 1) // dx if width > x0 else 0
        pass_height = (height - y0 + dy - 1) // dy if height > y0 else 0
        total += rows(pass_width, pass_height)
    return total


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or JPEG from its header, or None when it cannot be told."""
    if data.startswith(PNG_MAGIC) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack_from(">II", data, 16)
        return int(width), int(height)
    if not data.startswith(JPEG_MAGIC):
        return None
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header: SOFn
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return int(width), int(height)
        if marker == 0xDA:  # scan data before any frame header
            return None
        pos += 2 + length
    return None


def jpeg_problem(data: bytes) -> str | None:
    """A JPEG must end its data with an EOI marker; a cut-off file does not."""
    if len(data) < 4 or data.rfind(b"\xff\xd9") < 2:
        return "the file is cut short"
    return None
