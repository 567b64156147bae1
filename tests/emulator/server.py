"""Generic part of the local provider emulator: a loopback HTTP server, signed asset URLs, a request
log and fault injection. Provider behaviour lives in its own module (``meshy.py``, ``rodin.py``,
``claythis.py``, ``image3d.py``, ``claid.py``, on the shared plumbing of ``tasks.py``) and is plugged
in as an :class:`App`; their paths do not collide, so one server speaks all of them.

Stdlib only. The server binds 127.0.0.1 and never opens an outgoing connection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import re
import socket
import struct
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

if TYPE_CHECKING:
    from .claid import ClaidState
    from .claythis import ClaythisState
    from .image3d import Image3DState
    from .meshy import MeshyState
    from .rodin import RodinState

LOOPBACK = "127.0.0.1"

# File names looked up by ``assets_from_dir`` (asset kind -> file name).
ASSET_FILES: dict[str, str] = {
    "model": "model.glb",
    "rigged": "rigged.glb",
    "rigged_fbx": "rigged.fbx",
    "walking": "walking.glb",
    "running": "running.glb",
    "animation": "animation.glb",
}
_ANIM_OVERRIDE = re.compile(r"^anim_(\d+)\.glb$")


# -- request / response ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request. Header names are lower-cased."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> list[FormPart]:
        """The body as form parts (multipart/form-data or urlencoded); ValueError when it is neither."""
        return parse_form(self.header("content-type") or "", self.body)


@dataclass(frozen=True)
class FormPart:
    """One field of a form: text parts have no filename."""

    name: str
    value: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.value.decode("utf-8", "replace")


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    main, *rest = value.split(";")
    params: dict[str, str] = {}
    for item in rest:
        key, _, val = item.strip().partition("=")
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        params[key.strip().lower()] = val
    return main.strip().lower(), params


def parse_form(content_type: str, body: bytes) -> list[FormPart]:
    """Parse a multipart/form-data or application/x-www-form-urlencoded body, keeping repeated fields."""
    kind, params = _header_params(content_type)
    if kind == "application/x-www-form-urlencoded":
        return [FormPart(k, v.encode()) for k, v in parse_qsl(body.decode("utf-8"), keep_blank_values=True)]
    if kind != "multipart/form-data" or not params.get("boundary"):
        raise ValueError(f"not a form body ({kind or 'no content type'})")
    delimiter = b"--" + params["boundary"].encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ValueError("malformed multipart body")
    parts: list[FormPart] = []
    for chunk in chunks[1:-1]:
        chunk = chunk.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, sep, value = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("malformed multipart part")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, val = line.partition(":")
            headers[name.strip().lower()] = val.strip()
        _disp, disp = _header_params(headers.get("content-disposition", ""))
        if "name" not in disp:
            raise ValueError("multipart part without a name")
        parts.append(FormPart(disp["name"], value, disp.get("filename"), headers.get("content-type")))
    return parts


# -- tiny valid files the provider apps serve when no asset file was configured --------------------


def tiny_glb(tag: str = "emulator") -> bytes:
    """A minimal valid GLB (header and one JSON chunk); ``tag`` goes in asset.generator."""
    doc = json.dumps({"asset": {"version": "2.0", "generator": tag}}).encode()
    doc += b" " * (-len(doc) % 4)
    return struct.pack("<4sII", b"glTF", 2, 20 + len(doc)) + struct.pack("<I4s", len(doc), b"JSON") + doc


def tiny_fbx() -> bytes:
    """The start of a binary FBX (magic and version): enough for a client's format check."""
    return b"Kaydara FBX Binary  \x00\x1a\x00" + struct.pack("<I", 7400) + b"\x00" * 160


def tiny_png(width: int, height: int, rgba: tuple[int, ...] = (128, 128, 128, 255)) -> bytes:
    """A valid PNG of one colour: RGBA, or RGB when ``rgba`` has three values."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgba) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 6 if len(rgba) == 4 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))


def sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"glTF":
        return "glb"
    if data.startswith(b"Kaydara FBX Binary"):
        return "fbx"
    return None


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    scheme, _, token = (request.header("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class Response:
    """What the emulator answers. ``stream`` (an iterable of chunks) is written as it is produced and
    the connection is closed afterwards; ``reset`` closes the connection without any answer."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[bytes] | None = None
    reset: bool = False


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    out = {"Content-Type": "application/json"}
    out.update(headers or {})
    return Response(status, body, out)


def canned_response(status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> Response:
    """A response from loose test input: dict/list -> JSON, str -> text, bytes -> raw, None -> empty."""
    if isinstance(body, dict | list):
        return json_response(status, body, headers)
    out: dict[str, str] = {}
    if isinstance(body, str):
        data = body.encode("utf-8")
        out["Content-Type"] = "text/plain; charset=utf-8"
    elif isinstance(body, bytes | bytearray):
        data = bytes(body)
        out["Content-Type"] = "application/octet-stream"
    elif body is None:
        data = b""
    else:
        raise TypeError(f"canned body must be dict, list, str, bytes or None, not {type(body).__name__}")
    out.update(headers or {})
    return Response(status, data, out)


@dataclass(frozen=True)
class RequestRecord:
    """One line of the request log. Header values (API keys) are never stored."""

    method: str
    path: str
    query: dict[str, str]
    status: int  # 0 when the connection was reset without an answer
    had_auth: bool
    body_size: int
    time: float
    range: str | None = None  # the Range header, when the client asked for part of a file


class App(Protocol):
    """A provider plugged into the emulator."""

    def owns(self, path: str) -> bool: ...

    def base_headers(self) -> dict[str, str]: ...

    def handle(self, request: Request) -> Response: ...


@dataclass(kw_only=True)
class _Armed:
    """Armed for the next ``remaining`` requests whose method is ``method`` ("*": any) and whose path
    matches ``pattern`` (``re.search``)."""

    method: str
    pattern: re.Pattern[str]
    remaining: int


_ArmedT = TypeVar("_ArmedT", bound=_Armed)


@dataclass(kw_only=True)
class _Injection(_Armed):
    response: Response


# Faults that change how a real answer travels (``Emulator.inject_fault``):
FAULT_KINDS = (
    "truncate",      # the full Content-Length is announced, only ``keep`` of the body is sent, then close
    "stall",         # ``keep`` of the body, then nothing for ``seconds``, then the rest
    "delay",         # the request is handled (a create creates), the answer waits ``seconds``
    "reset_after",   # the request is handled (a create creates), then the connection is reset unanswered
    "ignore_range",  # the Range header is dropped: 200 with the whole file, as servers without Range do
    "html",          # HTTP 200 with an HTML error page instead of the answer (not handled at all)
    "corrupt",       # the body is replaced by garbage of the same length
    "garble",        # the body keeps its first 20 bytes (a GLB's header) and the rest is damaged
    "unsized",       # the body is sent without a Content-Length (the end of the connection ends it)
    "down",          # the server stops listening for ``seconds`` (connections refused) and resets this one
    "gzip_bomb",     # HTTP 200, Content-Encoding gzip: a small body that inflates to ``keep`` bytes (default 1 GiB)
    "reshape",       # the real JSON answer with the top-level fields of ``patch`` put in (wrong types, ...)
)
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
             b"<p>The upstream server is temporarily unavailable.</p></body></html>\n")


@dataclass(kw_only=True)
class _Fault(_Armed):
    kind: str
    keep: int | float | None  # bytes (int) or a fraction (float) of the body; None: half
    seconds: float
    patch: dict[str, Any] | None = None

    def kept(self, size: int) -> int:
        if isinstance(self.keep, float):
            return int(size * self.keep)
        return min(size, self.keep) if self.keep is not None else size // 2


# -- signed asset files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes | None:
        if self.data is not None:
            return self.data
        if self.path is not None and self.path.is_file():
            return self.path.read_bytes()
        return None


def _s3_error(status: int, code: str, message: str, extra: Mapping[str, str] | None = None) -> Response:
    parts = [f"<Code>{code}</Code>", f"<Message>{message}</Message>"]
    parts += [f"<{k}>{v}</{k}>" for k, v in (extra or {}).items()]
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>").encode("utf-8")
    return Response(status, body, {"Content-Type": "application/xml"})


def _content_type(filename: str) -> str:
    lower = filename.lower()
    if lower.endswith(".glb"):
        return "model/gltf-binary"
    if lower.endswith(".png"):
        return "image/png"
    if lower.endswith((".jpg", ".jpeg")):
        return "image/jpeg"
    if lower.endswith(".webp"):
        return "image/webp"
    return "application/octet-stream"


class AssetStore:
    """Files served under ``/assets/{task_id}/{filename}?Expires={unix seconds}``, like signed S3 URLs.

    A URL past its ``Expires`` answers 403 AccessDenied; supports HEAD and ``Range: bytes=...``.
    """

    def __init__(self, emulator: Emulator) -> None:
        self._emu = emulator
        self._lock = threading.Lock()
        self._files: dict[tuple[str, str], StoredFile] = {}

    def put(self, task_id: str, filename: str, *, path: Path | None = None, data: bytes | None = None) -> None:
        with self._lock:
            self._files[(task_id, filename)] = StoredFile(path=path, data=data)

    def drop_task(self, task_id: str) -> None:
        """Forget every file of a task (a deleted task's links answer 404 NoSuchKey from now on)."""
        with self._lock:
            for key in [k for k in self._files if k[0] == task_id]:
                del self._files[key]

    def get(self, task_id: str, filename: str) -> StoredFile | None:
        with self._lock:
            return self._files.get((task_id, filename))

    def url(self, task_id: str, filename: str, ttl_seconds: float) -> str:
        expires = int(self._emu.now() + ttl_seconds)
        base = self._emu.asset_base_url or self._emu.base_url
        return f"{base}/assets/{quote(task_id, safe='')}/{quote(filename, safe='')}?Expires={expires}"

    def fetch_local(self, url: str) -> tuple[bool, bytes | None]:
        """(is_ours, content). Content is None when the URL is ours but missing or expired."""
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self._emu.base_url:
            return False, None
        match = re.fullmatch(r"/assets/([^/]+)/([^/]+)", parts.path)
        if match is None:
            return True, None
        expires = dict(parse_qsl(parts.query)).get("Expires", "")
        if not expires.isdigit() or int(expires) < self._emu.now():
            return True, None
        stored = self.get(unquote(match.group(1)), unquote(match.group(2)))
        return True, stored.read() if stored else None

    def serve(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _s3_error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
        match = re.fullmatch(r"/assets/([^/]+)/([^/]+)", request.path)
        if match is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        expires = request.query.get("Expires", "")
        now = int(self._emu.now())
        if not expires.isdigit():
            return _s3_error(403, "AccessDenied", "Query-string authentication requires the Expires parameter")
        if int(expires) < now:
            return _s3_error(403, "AccessDenied", "Request has expired",
                             {"Expires": expires, "ServerTime": str(now)})
        filename = unquote(match.group(2))
        stored = self.get(unquote(match.group(1)), filename)
        content = stored.read() if stored else None
        if content is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        headers = {
            "Content-Type": _content_type(filename),
            "Accept-Ranges": "bytes",
            "ETag": '"' + hashlib.md5(content, usedforsecurity=False).hexdigest() + '"',
        }
        range_header = request.header("range")
        if not range_header:
            return Response(200, content, headers)
        span = _parse_range(range_header, len(content))
        if span is None:
            headers["Content-Range"] = f"bytes */{len(content)}"
            return Response(416, b"", headers)
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        return Response(206, content[start:end + 1], headers)


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """A single ``bytes=`` range -> inclusive (start, end), or None when unsatisfiable/malformed."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", value)
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    if not match.group(1):  # suffix: the last N bytes
        length = int(match.group(2))
        if length == 0 or size == 0:
            return None
        return max(0, size - length), size - 1
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


# -- HTTP plumbing --------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self._conn_lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._resets: set[int] = set()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, opened: bool) -> None:
        with self._conn_lock:
            if opened:
                self._open.add(conn)
            else:
                self._open.discard(conn)

    def mark_reset(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._conn_lock:
            self._resets.add(id(conn))

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            reset = id(request) in self._resets
            self._resets.discard(id(request))
        if reset:  # close with SO_LINGER 0 and no FIN first: the peer sees a connection reset
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MarionetteEmulator/1.0"
    sys_version = ""
    timeout = 60
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle + delayed ACK stall ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.emulator.verbose:
            sys.stderr.write("emulator: " + (format % args) + "\n")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        emu = self.server.emulator
        parts = urlsplit(self.path)
        body = self._read_body()
        request = Request(
            method=self.command.upper(),
            path=parts.path or "/",
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        response = emu.dispatch(request)
        emu._record(request, 0 if response.reset else response.status)
        if response.reset:
            self.server.mark_reset(self.connection)
            self.close_connection = True
            return
        try:
            self._write(request, response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # Every method is served the same way: the provider apps decide what each one means.
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def _write(self, request: Request, response: Response) -> None:
        self.send_response(response.status)
        headers = dict(response.headers)
        if response.stream is not None:
            headers["Connection"] = "close"
            self.close_connection = True
        else:  # HEAD too: the length of the body a GET would get
            headers["Content-Length"] = str(len(response.body))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if request.method == "HEAD":
            return
        if response.stream is None:
            self.wfile.write(response.body)
            return
        for chunk in response.stream:
            self.wfile.write(chunk)
            self.wfile.flush()


# -- the emulator ---------------------------------------------------------------------------------


class Emulator:
    """Local provider emulator on ``http://127.0.0.1:<free port>``, serving from a daemon thread.

    ``with Emulator(assets={"model": path, ...}) as emu: ...``; ``emu.meshy``, ``emu.rodin``,
    ``emu.claythis``, ``emu.image3d`` and ``emu.claid`` are the providers' states. ``api_key`` (None:
    open mode) is required by every provider, each in its own header.
    """

    def __init__(
        self,
        assets: Mapping[str, Path | str] | None = None,
        *,
        port: int = 0,
        api_key: str | None = None,
        verbose: bool = False,
    ) -> None:
        from .claid import ClaidState
        from .claythis import ClaythisState
        from .image3d import Image3DState
        from .meshy import MeshyState
        from .rodin import RodinState

        self.verbose = verbose
        self.clock_offset = 0.0
        self.errors: list[str] = []  # tracebacks of handler crashes (answered with 500)
        self._lock = threading.Lock()
        self._log: list[RequestRecord] = []
        self._injections: list[_Injection] = []
        self._faults: list[_Fault] = []
        self._closing = threading.Event()
        self._server_lock = threading.Lock()
        # Where signed asset links point (None: this server). A non-loopback value makes every provider
        # hand out links to a "CDN" that a client with online access off must not contact.
        self.asset_base_url: str | None = None
        self.files = AssetStore(self)
        self.meshy: MeshyState = MeshyState(self, assets=assets, api_key=api_key)
        self.rodin: RodinState = RodinState(self, assets=assets, api_key=api_key)
        self.claythis: ClaythisState = ClaythisState(self, assets=assets, api_key=api_key)
        self.image3d: Image3DState = Image3DState(self, assets=assets, api_key=api_key)
        self.claid: ClaidState = ClaidState(self, api_key=api_key)
        self._apps: list[App] = [self.meshy, self.rodin, self.claythis, self.image3d, self.claid]
        self._server = _Server((LOOPBACK, port), self)
        self.port: int = int(self._server.server_address[1])
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self._closed = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"emulator:{self.port}", daemon=True)
        self._thread.start()

    # lifecycle
    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._server_lock:
            if self._closed:
                return
            self._closed = True
            self._closing.set()
            server, thread = self._server, self._thread
        if thread.is_alive():
            server.shutdown()
        server.drop_connections()
        server.server_close()
        thread.join(timeout=5)

    def refuse_connections(self, seconds: float) -> None:
        """Stop listening for ``seconds``: connections are refused (nothing is sent, so a client may
        repeat even a create). Open connections are dropped too. Then listen again on the same port."""
        with self._server_lock:
            if self._closed:
                return
            server, thread = self._server, self._thread
            server.shutdown()
            server.drop_connections()
            server.server_close()
            thread.join(timeout=5)

        def reopen() -> None:
            if self._closing.wait(seconds):
                return
            with self._server_lock:
                if self._closed:
                    return
                self._server = _Server((LOOPBACK, self.port), self)
                self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                                name=f"emulator:{self.port}", daemon=True)
                self._thread.start()

        threading.Thread(target=reopen, name=f"emulator-reopen:{self.port}", daemon=True).start()

    # clock (tests may move it forward to expire URLs)
    def now(self) -> float:
        return time.time() + self.clock_offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def advance_clock(self, seconds: float) -> None:
        self.clock_offset += seconds

    # faults
    def inject(
        self,
        method: str,
        path_regex: str,
        *,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests matching (method, ``re.search`` on the path) with a canned
        response, before auth or any normal handling. ``method`` "*" matches every method."""
        response = canned_response(status, body, headers)
        with self._lock:
            self._injections.append(_Injection(method=method.upper(), pattern=re.compile(path_regex),
                                               remaining=times, response=response))

    def inject_reset(self, method: str, path_regex: str, times: int = 1) -> None:
        """Close the connection without answering (connection reset) on the next ``times`` matches."""
        with self._lock:
            self._injections.append(_Injection(method=method.upper(), pattern=re.compile(path_regex),
                                               remaining=times, response=Response(0, reset=True)))

    def inject_fault(
        self,
        method: str,
        path_regex: str,
        kind: str,
        *,
        times: int = 1,
        keep: int | float | None = None,
        seconds: float = 1.0,
        patch: Mapping[str, Any] | None = None,
    ) -> None:
        """Change how the real answer to the next ``times`` matching requests travels (see FAULT_KINDS):
        ``keep`` is how much of the body gets out (bytes, or a fraction; default half), ``seconds`` the
        length of a stall or delay. Canned injections (``inject``) are taken first."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(_Fault(method=method.upper(), pattern=re.compile(path_regex), remaining=times,
                                       kind=kind, keep=keep, seconds=seconds,
                                       patch=dict(patch) if patch is not None else None))

    def pending_faults(self) -> int:
        """Injected faults and canned answers not yet used."""
        with self._lock:
            return sum(f.remaining for f in self._faults) + sum(i.remaining for i in self._injections)

    def clear_injections(self) -> None:
        with self._lock:
            self._injections.clear()
            self._faults.clear()

    # request log
    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def count(self, method: str | None = None, path_regex: str | None = None) -> int:
        pattern = re.compile(path_regex) if path_regex is not None else None
        return sum(1 for r in self.requests
                   if (method is None or r.method == method.upper())
                   and (pattern is None or pattern.search(r.path)))

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, request: Request, status: int) -> None:
        had_auth = any(h in request.headers for h in ("authorization", "x-api-key"))
        record = RequestRecord(request.method, request.path, dict(request.query), status, had_auth,
                               len(request.body), self.now(), request.header("range"))
        with self._lock:
            self._log.append(record)

    # dispatch
    def _take(self, armed: list[_ArmedT], request: Request) -> _ArmedT | None:
        """The first of ``armed`` that matches the request, used once (and dropped when used up)."""
        with self._lock:
            for item in armed:
                if item.method not in ("*", request.method) or not item.pattern.search(request.path):
                    continue
                item.remaining -= 1
                if item.remaining <= 0:
                    armed.remove(item)
                return item
        return None

    def dispatch(self, request: Request) -> Response:
        try:
            app = next((a for a in self._apps if a.owns(request.path)), None)
            injection = self._take(self._injections, request)
            if injection is not None:
                injected = injection.response
                if injected.reset:
                    return injected
                headers = app.base_headers() if app else {}
                headers.update(injected.headers)
                return Response(injected.status, injected.body, headers)
            fault = self._take(self._faults, request)
            if fault is not None and fault.kind == "html":
                return Response(200, HTML_PAGE, {"Content-Type": "text/html; charset=utf-8"})
            if fault is not None and fault.kind == "gzip_bomb":
                size = int(fault.keep) if isinstance(fault.keep, int) else 1 << 30
                return Response(200, gzip_bomb(size), {"Content-Type": "application/json",
                                                       "Content-Encoding": "gzip"})
            if fault is not None and fault.kind == "ignore_range":
                request = dataclasses.replace(request, headers={k: v for k, v in request.headers.items()
                                                                if k != "range"})
            response = self._answer(request, app)
            return self._apply(fault, response) if fault is not None else response
        except Exception:
            self.errors.append(traceback.format_exc())
            if self.verbose:
                sys.stderr.write(self.errors[-1])
            return json_response(500, {"message": "Internal emulator error"})

    def _answer(self, request: Request, app: App | None) -> Response:
        if request.path.startswith("/assets/"):
            return self.files.serve(request)
        if app is None:
            return json_response(404, {"message": "Not found"})
        response = app.handle(request)
        headers = app.base_headers()
        headers.update(response.headers)
        response.headers = headers
        return response

    def _apply(self, fault: _Fault, response: Response) -> Response:
        """The real answer, damaged the way ``fault`` says."""
        if fault.kind in ("reset_after", "down"):
            if fault.kind == "down":  # listening stops before this reset reaches the client
                self.refuse_connections(fault.seconds)
            return Response(0, reset=True)
        if fault.kind == "delay":
            self._closing.wait(fault.seconds)
            return response
        if fault.kind == "ignore_range":
            return response
        body = response.body if response.stream is None else b"".join(response.stream)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        if fault.kind == "reshape":
            try:
                document = json.loads(body)
            except ValueError:
                return Response(response.status, body, headers)
            if isinstance(document, dict):
                document.update(fault.patch or {})
            return Response(response.status, json.dumps(document).encode(), headers)
        if fault.kind == "corrupt":
            garbage = bytes((i * 37 + 11) % 251 for i in range(len(body)))
            return Response(response.status, garbage, headers)
        if fault.kind == "garble":
            return Response(response.status, body[:20] + b"\xff" * max(0, len(body) - 20), headers)
        if fault.kind == "unsized":
            return Response(response.status, headers=headers, stream=iter([body]))
        kept = fault.kept(len(body))
        headers["Content-Length"] = str(len(body))  # announced in full either way
        if fault.kind == "truncate":
            return Response(response.status, headers=headers, stream=iter([body[:kept]]))
        return Response(response.status, headers=headers, stream=self._stalled(body, kept, fault.seconds))

    def _stalled(self, body: bytes, kept: int, seconds: float) -> Iterator[bytes]:
        yield body[:kept]
        if self._closing.wait(seconds):
            return
        yield body[kept:]


@functools.cache
def gzip_bomb(size: int) -> bytes:
    """A gzip stream of `size` zero bytes (about 1 KB per MB), made once per size."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = []
    left = size
    while left > 0:
        parts.append(packer.compress(block[:min(left, len(block))]))
        left -= len(block)
    parts.append(packer.flush())
    return b"".join(parts)


def assets_from_dir(directory: Path | str) -> dict[str, Path]:
    """The asset map for files present in ``directory`` (model.glb, rigged.glb, walking.glb,
    running.glb, animation.glb, optional rigged.fbx and anim_<action_id>.glb overrides)."""
    root = Path(directory)
    assets = {kind: root / name for kind, name in ASSET_FILES.items() if (root / name).is_file()}
    for path in sorted(root.glob("anim_*.glb")):
        match = _ANIM_OVERRIDE.match(path.name)
        if match:
            assets[f"animation:{int(match.group(1))}"] = path
    return assets
