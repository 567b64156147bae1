"""Large files for the emulator, streamed from disk: a 200 MB download without 200 MB in memory.

The emulator's signed asset store (``server.AssetStore``) reads a file whole before answering, which
is right for the small test characters and wrong for a benchmark that measures the memory a client
needs to download 200 MB. :class:`BigFiles` is an extra :class:`~tests.emulator.server.App` that
serves files under ``/big/<name>`` in chunks read from disk, with ``Content-Length``, ``HEAD`` and a
single ``Range: bytes=...`` (206 / 416), so resumable downloads can be measured too; ``rate`` paces every
response to that many bytes per second, like a real link (default: as fast as the socket takes)::

    with Emulator() as emu:
        big = mount(emu, {"big.glb": path})
        url = big.url("big.glb")

:func:`write_glb` writes a file of a given size that passes Marionette's GLB check (magic, version 2,
declared length = file size) without being a model anyone should import.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from .server import Request, Response, _parse_range

if TYPE_CHECKING:
    from .server import Emulator

PREFIX = "/big/"
CHUNK = 1 << 20


class BigFiles:
    """Serves registered files under ``/big/<name>`` straight from disk, ``CHUNK`` bytes at a time."""

    def __init__(self, base_url: str, files: Mapping[str, Path] | None = None, chunk: int = CHUNK) -> None:
        self.base_url = base_url
        self.chunk = chunk
        self.rate: float | None = None  # bytes per second per response (None: as fast as the socket takes)
        self._lock = threading.Lock()
        self._files: dict[str, Path] = {name: Path(path) for name, path in (files or {}).items()}
        self.served_bytes = 0  # body bytes written so far (all requests)

    def add(self, name: str, path: Path) -> str:
        with self._lock:
            self._files[name] = Path(path)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"{self.base_url}{PREFIX}{quote(name, safe='')}"

    # -- App protocol ------------------------------------------------------------------------------

    def owns(self, path: str) -> bool:
        return path.startswith(PREFIX)

    def base_headers(self) -> dict[str, str]:
        return {}

    def handle(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"method not allowed", {"Content-Type": "text/plain"})
        with self._lock:
            path = self._files.get(unquote(request.path[len(PREFIX):]))
        if path is None or not path.is_file():
            return Response(404, b"no such file", {"Content-Type": "text/plain"})
        size = path.stat().st_size
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        start, end, status = 0, size - 1, 200
        range_header = request.header("range")
        if range_header:
            span = _parse_range(range_header, size)
            if span is None:
                headers["Content-Range"] = f"bytes */{size}"
                return Response(416, b"", headers)
            start, end = span
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        # A stream (even an empty one for HEAD) keeps our Content-Length: the server sends it as given.
        body = iter(()) if request.method == "HEAD" else self._read(path, start, end)
        return Response(status, headers=headers, stream=body)

    def _read(self, path: Path, start: int, end: int) -> Iterator[bytes]:
        remaining = end - start + 1
        began, sent = time.monotonic(), 0
        with open(path, "rb") as fh:
            fh.seek(start)
            while remaining > 0:
                rate = self.rate
                if rate:  # paced like a real link: never ahead of `rate` bytes per second
                    ahead = began + sent / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                block = fh.read(min(self.chunk, remaining))
                if not block:
                    return
                remaining -= len(block)
                sent += len(block)
                self.served_bytes += len(block)
                yield block


def mount(emulator: Emulator, files: Mapping[str, Path] | None = None, chunk: int = CHUNK) -> BigFiles:
    """Plug a :class:`BigFiles` into a running emulator (checked before the Meshy app) and return it."""
    app = BigFiles(emulator.base_url, files, chunk)
    emulator._apps.insert(0, app)  # the emulator has no public hook for extra apps yet
    return app


def write_glb(path: Path, size: int) -> Path:
    """A sparse file of exactly `size` bytes that looks like a GLB (header, JSON chunk, BIN chunk)."""
    doc = json.dumps({"asset": {"version": "2.0", "generator": "marionette bench filler"}}).encode()
    doc += b" " * (-len(doc) % 4)
    header_len = 12 + 8 + len(doc) + 8
    if size < header_len or size % 4:
        raise ValueError(f"a GLB of {size} bytes cannot be made (at least {header_len}, a multiple of 4)")
    with open(path, "wb") as fh:
        fh.write(b"glTF" + struct.pack("<II", 2, size))
        fh.write(struct.pack("<I4s", len(doc), b"JSON") + doc)
        fh.write(struct.pack("<I4s", size - header_len, b"BIN\x00"))
        fh.truncate(size)
    return path
