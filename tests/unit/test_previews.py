"""Animation previews: the GIF first-frame decoder (against GIFs this test encodes with a real LZW
encoder, plain and interlaced, with transparency) and the background fetcher against the emulator's
asset host (cached on disk, never blocking, online access respected)."""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from addon.core import previews
from addon.core.formats import PNG_MAGIC
from addon.core.png import encode_rgba8
from tests.emulator import Emulator

PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]


def lzw_encode(indices: bytes, min_code_size: int) -> bytes:
    """GIF's LZW, the textbook encoder (growing codes up to 12 bits, a clear code when the table fills)."""
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    size = min_code_size + 1
    table = {bytes([i]): i for i in range(clear)}
    next_code = end + 1
    bits, count, out = 0, 0, bytearray()

    def emit(code: int) -> None:
        nonlocal bits, count
        bits |= code << count
        count += size
        while count >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            count -= 8

    emit(clear)
    word = b""
    for value in indices:
        candidate = word + bytes([value])
        if candidate in table:
            word = candidate
            continue
        emit(table[word])
        if next_code < 4096:
            table[candidate] = next_code
            next_code += 1
            if next_code > (1 << size) and size < 12:
                size += 1
        else:
            emit(clear)
            table = {bytes([i]): i for i in range(clear)}
            next_code, size = end + 1, min_code_size + 1
        word = bytes([value])
    if word:
        emit(table[word])
    emit(end)
    if count:
        out.append(bits & 0xFF)
    return bytes(out)


def make_gif(width: int, height: int, pixel: Callable[[int, int], int], *, interlaced: bool = False,
             transparent: int | None = None, frames: int = 2) -> bytes:
    rows = [bytes(pixel(x, y) for x in range(width)) for y in range(height)]
    order = ([*range(0, height, 8), *range(4, height, 8), *range(2, height, 4), *range(1, height, 2)]
             if interlaced else list(range(height)))
    table = b"".join(bytes(c) for c in PALETTE)
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80 | 0x01, 0, 0) + table)
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # an application extension first, like real GIFs
    for frame in range(frames):
        flags = 0x01 if transparent is not None else 0
        out += b"\x21\xf9\x04" + bytes([flags]) + b"\x05\x00" + bytes([transparent or 0]) + b"\x00"
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0x40 if interlaced else 0)
        data = b"".join(rows[y] for y in order) if frame == 0 else bytes(width * height)
        code = lzw_encode(data, 2)
        out += b"\x02"
        for start in range(0, len(code), 255):
            piece = code[start:start + 255]
            out += bytes([len(piece)]) + piece
        out += b"\x00"
    return bytes(out + b"\x3b")


def expected_rgba(width: int, height: int, pixel: Callable[[int, int], int],
                  transparent: int | None = None) -> bytes:
    out = bytearray()
    for y in range(height):
        for x in range(width):
            index = pixel(x, y)
            out += bytes((*PALETTE[index], 0 if index == transparent else 255))
    return bytes(out)


def pattern(x: int, y: int) -> int:
    return (x // 3 + y * 7 + (x * y) % 5) % 4


@pytest.mark.parametrize(("width", "height", "interlaced", "transparent"), [
    (7, 5, False, None),
    (64, 48, False, None),  # long enough for the codes to grow past 9 bits
    (90, 90, False, 3),  # fills the 4096-entry table: a clear code mid-stream
    (33, 19, True, None),
    (16, 16, True, 0),
])
def test_gif_first_frame(width: int, height: int, interlaced: bool, transparent: int | None) -> None:
    gif = make_gif(width, height, pattern, interlaced=interlaced, transparent=transparent)
    w, h, rgba = previews.gif_first_frame(gif)
    assert (w, h) == (width, height)
    assert rgba == expected_rgba(width, height, pattern, transparent)
    png = previews.to_png(gif)
    assert png.startswith(PNG_MAGIC)
    assert png == encode_rgba8(width, height, rgba)


@pytest.mark.parametrize("data", [b"", b"GIF89a", b"not an image at all", b"GIF89a" + b"\x00" * 20])
def test_bad_previews_are_refused(data: bytes) -> None:
    with pytest.raises((previews.PreviewError, struct.error)):
        previews.to_png(data)


def png_bytes() -> bytes:
    return encode_rgba8(2, 2, bytes([255, 0, 0, 255] * 4))


def wait_idle(fetcher: previews.PreviewFetcher, timeout: float = 10.0) -> None:
    """Until every queued preview is fetched (or failed), then hand the results over as the pump does."""
    deadline = time.monotonic() + timeout
    while not fetcher.idle() or fetcher.background.busy():
        assert time.monotonic() < deadline, "the preview fetcher did not finish"
        time.sleep(0.01)
    fetcher.background.drain()


def test_fetcher_caches_without_blocking(emu: Emulator, tmp_path: Path) -> None:
    gif = make_gif(20, 10, pattern)
    emu.files.put("previews", "Idle.gif", data=gif)
    emu.files.put("previews", "Walk.png", data=png_bytes())
    gif_url = emu.files.url("previews", "Idle.gif", 3600)
    png_url = emu.files.url("previews", "Walk.png", 3600)
    missing_url = emu.files.url("previews", "Nope.gif", 3600)
    arrived: list[str] = []
    fetcher = previews.PreviewFetcher(tmp_path / "previews", lambda: False, arrived.append)
    started = time.perf_counter()
    assert fetcher.path(gif_url) is None and fetcher.path(png_url) is None and fetcher.path(missing_url) is None
    assert time.perf_counter() - started < 0.5  # queued, not fetched, by the caller (None above: no picture yet)
    wait_idle(fetcher)
    assert sorted(arrived) == sorted([gif_url, png_url])
    cached = fetcher.path(gif_url)
    assert cached is not None and cached.suffix == ".png"
    assert cached.read_bytes() == previews.to_png(gif)
    cached_png = fetcher.path(png_url)
    assert cached_png is not None and cached_png.read_bytes() == png_bytes()
    assert "HTTP 4" in str(fetcher.failure(missing_url))
    requests_made = len(emu.requests)
    # Cached: a new fetcher on the same folder answers from disk, without a request.
    again = previews.PreviewFetcher(tmp_path / "previews", lambda: False)
    assert again.path(gif_url) == cached
    assert fetcher.path(missing_url) is None  # a failed URL is not tried again
    wait_idle(fetcher)
    assert len(emu.requests) == requests_made
    fetcher.stop()


def test_fetcher_respects_online_access(tmp_path: Path) -> None:
    url = "https://cdn.meshy.ai/webapp-assets/feature-demo/animation/preview/biped/Idle.gif"
    fetcher = previews.PreviewFetcher(tmp_path / "previews", lambda: False)
    assert fetcher.path(url) is None
    wait_idle(fetcher)
    failure = fetcher.failure(url)
    assert failure is not None and "nline" in failure  # refused before any connection was made
    assert not (tmp_path / "previews").exists() or not list((tmp_path / "previews").iterdir())
    fetcher.stop()


def test_zlib_is_what_png_uses() -> None:  # the PNG the decoder writes is a real, inflatable PNG
    png = previews.to_png(make_gif(5, 4, pattern))
    length = struct.unpack(">I", png[33:37])[0]
    assert png[37:41] == b"IDAT"
    raw = zlib.decompress(png[41:41 + length])
    assert len(raw) == 4 * (1 + 5 * 4)
