"""Animation previews for the library picker: fetched in the background, one at a time, cached on disk as PNG.

Meshy's catalog gives each animation a ``previewUrl`` (an animated GIF on its CDN). Blender cannot read
GIF, so the first frame is decoded here (plain Python: GIF's LZW, interlacing, transparency) and
written as PNG; PNG and JPEG previews are kept as they are. Nothing here touches bpy and nothing blocks
the caller: :meth:`PreviewFetcher.path` answers from the disk cache, or queues the URL for the worker and
answers None; the panel asks again on its next draw. Online access is respected (a non-loopback URL is
refused while it is off) and a URL that failed is not tried again until :meth:`PreviewFetcher.forget`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin

import requests

from . import netpolicy
from .background import Background, Outcome
from .formats import PNG_MAGIC
from .http import USER_AGENT
from .png import encode_rgba8

log = logging.getLogger(__name__)

MAX_PREVIEW_BYTES = 16 * 1024 * 1024
MAX_PIXELS = 4096 * 4096
_JPEG_MAGIC = b"\xff\xd8\xff"


class PreviewError(ValueError):
    """A preview that cannot be used (not an image we can read, too large)."""


# --------------------------------------------------------------------------------------------------
# GIF: the first frame, as RGBA
# --------------------------------------------------------------------------------------------------


def _lzw_decode(data: bytes, min_code_size: int, pixel_count: int) -> bytes:
    """GIF's variable-length-code LZW: the colour indices of one frame."""
    if not 2 <= min_code_size <= 11:
        raise PreviewError("bad GIF LZW code size")
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    table: list[bytes] = [bytes([i]) for i in range(clear)] + [b"", b""]
    size = min_code_size + 1
    out = bytearray()
    previous: bytes | None = None
    bits = 0
    count = 0
    for byte in data:
        bits |= byte << count
        count += 8
        while count >= size:
            code = bits & ((1 << size) - 1)
            bits >>= size
            count -= size
            if code == clear:
                del table[end + 1:]
                size = min_code_size + 1
                previous = None
                continue
            if code == end:
                return bytes(out[:pixel_count])
            if code < len(table):
                entry = table[code]
                if previous is not None:
                    table.append(previous + entry[:1])
            elif code == len(table) and previous is not None:
                entry = previous + previous[:1]
                table.append(entry)
            else:
                raise PreviewError("corrupt GIF image data")
            out += entry
            previous = entry
            if len(table) == (1 << size) and size < 12:
                size += 1
            if len(out) >= pixel_count:
                return bytes(out[:pixel_count])
    return bytes(out[:pixel_count])


def _colour_table(data: bytes, offset: int, flags: int) -> tuple[list[tuple[int, int, int]], int]:
    if not flags & 0x80:
        return [], offset
    entries = 2 << (flags & 0x07)
    raw = data[offset:offset + 3 * entries]
    if len(raw) < 3 * entries:
        raise PreviewError("truncated GIF colour table")
    return [(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3)], offset + 3 * entries


def _sub_blocks(data: bytes, offset: int) -> tuple[bytes, int]:
    parts: list[bytes] = []
    while True:
        if offset >= len(data):
            raise PreviewError("truncated GIF")
        length = data[offset]
        offset += 1
        if length == 0:
            return b"".join(parts), offset
        parts.append(data[offset:offset + length])
        offset += length


def gif_first_frame(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, RGBA rows top-down) of the first frame of a GIF, on the logical screen."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise PreviewError("not a GIF")
    width, height, flags, background, _aspect = struct.unpack_from("<HHBBB", data, 6)
    if not width or not height or width * height > MAX_PIXELS:
        raise PreviewError("GIF too large or empty")
    global_table, offset = _colour_table(data, 13, flags)
    transparent: int | None = None
    while offset < len(data):
        block = data[offset]
        offset += 1
        if block == 0x21:  # extension
            label = data[offset]
            body, offset = _sub_blocks(data, offset + 1)
            if label == 0xF9 and len(body) >= 4 and body[0] & 0x01:
                transparent = body[3]
        elif block == 0x2C:  # image descriptor
            left, top, w, h, image_flags = struct.unpack_from("<HHHHB", data, offset)
            offset += 9
            table, offset = _colour_table(data, offset, image_flags)
            table = table or global_table
            if not table:
                raise PreviewError("GIF without a colour table")
            min_code = data[offset]
            body, offset = _sub_blocks(data, offset + 1)
            indices = _lzw_decode(body, min_code, w * h)
            if image_flags & 0x40:  # interlaced: rows come in four passes
                order = [*range(0, h, 8), *range(4, h, 8), *range(2, h, 4), *range(1, h, 2)]
                rows = [b""] * h
                for i, y in enumerate(order):
                    rows[y] = indices[i * w:(i + 1) * w]
                indices = b"".join(rows)
            indices = indices.ljust(w * h, b"\x00")
            palette = [bytes((*table[i], 0 if i == transparent else 255)) if i < len(table) else b"\0\0\0\0"
                       for i in range(256)]
            canvas = bytearray(width * height * 4)
            for y in range(min(h, height - top)):
                row = b"".join(palette[i] for i in indices[y * w:y * w + min(w, width - left)])
                start = ((top + y) * width + left) * 4
                canvas[start:start + len(row)] = row
            return width, height, bytes(canvas)
        elif block == 0x3B:  # trailer
            break
        else:
            raise PreviewError("corrupt GIF block")
    del background
    raise PreviewError("GIF without an image")


def to_png(data: bytes) -> bytes:
    """PNG bytes for a preview: PNG as it is, GIF's first frame converted. JPEG is refused here (see
    :func:`cache_name`: it is stored as .jpg)."""
    if data.startswith(PNG_MAGIC):
        return data
    width, height, rgba = gif_first_frame(data)
    return encode_rgba8(width, height, rgba)


# --------------------------------------------------------------------------------------------------
# The cache and the background fetcher
# --------------------------------------------------------------------------------------------------


def cache_name(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]


class PreviewFetcher:
    """Fetches preview URLs into `folder`, one at a time on the "previews" lane of `background` (its own
    when none is given). `on_arrival(url)` is called after each new file by the background's
    :meth:`~.background.Background.drain` (the timer pump: the main thread), e.g. to redraw the list."""

    LANE = "previews"

    def __init__(self, folder: Path, online_access: Callable[[], bool],
                 on_arrival: Callable[[str], None] | None = None, timeout: float = 20.0,
                 background: Background | None = None) -> None:
        self.folder = Path(folder)
        self.online_access = online_access
        self.on_arrival = on_arrival
        self.timeout = timeout
        self.background = background if background is not None else Background()
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._failed: dict[str, str] = {}
        self._stop = False

    def cached(self, url: str) -> Path | None:
        for suffix in (".png", ".jpg"):
            path = self.folder / (cache_name(url) + suffix)
            if path.is_file():
                return path
        return None

    def path(self, url: str) -> Path | None:
        """The cached preview of `url`, else None (and the URL is queued, once). Never blocks."""
        if not url:
            return None
        found = self.cached(url)
        if found is not None:
            return found
        with self._lock:
            if url in self._pending or url in self._failed or self._stop:
                return None
            self._pending.add(url)
        if not self.background.submit(self.LANE, lambda: self._run(url), self._arrived):
            with self._lock:
                self._pending.discard(url)
        return None

    def failure(self, url: str) -> str | None:
        with self._lock:
            return self._failed.get(url)

    def forget(self) -> None:
        """Try the URLs that failed again (after online access was turned on, for example)."""
        with self._lock:
            self._failed.clear()

    def stop(self) -> None:
        """Queue nothing more (what is queued is still fetched, unless the background stops)."""
        with self._lock:
            self._stop = True

    def idle(self) -> bool:
        with self._lock:
            return not self._pending

    def _run(self, url: str) -> str | None:
        """On the worker: the URL when its preview arrived, None when it failed (the failure is kept)."""
        try:
            if self._stop:
                return None
            self._fetch(url)
        except Exception as exc:  # any failure: remembered, the list shows no picture
            with self._lock:
                self._failed[url] = f"{exc.__class__.__name__}: {exc}"
            log.debug("preview %s failed: %s", url, exc)
            return None
        finally:
            with self._lock:
                self._pending.discard(url)
        return url

    def _arrived(self, outcome: Outcome[str | None]) -> None:
        url = outcome.get()
        if url is not None and self.on_arrival is not None:
            self.on_arrival(url)

    def _fetch(self, url: str) -> None:
        target_url = url
        for _hop in range(4):  # redirects followed by hand, each checked against online access first
            netpolicy.check_allowed(target_url, self.online_access())
            response = requests.get(target_url, headers={"User-Agent": USER_AGENT}, timeout=(10, self.timeout),
                                    stream=True, allow_redirects=False)
            if response.is_redirect and response.headers.get("Location"):
                target_url = urljoin(target_url, response.headers["Location"])
                response.close()
                continue
            break
        else:
            raise PreviewError("too many redirects")
        with response:
            if response.status_code != 200:
                raise PreviewError(f"HTTP {response.status_code}")
            chunks: list[bytes] = []
            total = 0
            for chunk in response.iter_content(64 * 1024):
                total += len(chunk)
                if total > MAX_PREVIEW_BYTES:
                    raise PreviewError("preview larger than 16 MB")
                chunks.append(chunk)
        data = b"".join(chunks)
        if data.startswith(_JPEG_MAGIC):
            body, suffix = data, ".jpg"
        else:
            body, suffix = to_png(data), ".png"
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / (cache_name(url) + suffix)
        tmp = target.with_name(target.name + f".{threading.get_ident()}.tmp")
        tmp.write_bytes(body)
        os.replace(tmp, target)
