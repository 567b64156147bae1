"""Streaming, resumable, validated downloads into a job's folder.

Bytes go to `<name>.part` and are renamed only once complete and recognised (GLB/FBX/PNG/JPEG by
magic, and for GLB its header and JSON chunk), so a half-written or wrong file never looks like a
result. No API key is ever sent here: asset hosts are not the API host, redirects are followed one hop
at a time (each hop checked against the online-access policy) and never carry credentials.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from urllib3 import exceptions as u3

from . import gltf, netpolicy
from .errors import DownloadError, TransientError
from .formats import sniff_file
from .http import USER_AGENT, Pacer, Timing, connection_problem

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# Every this many bytes, the disk write of what came in is started while the download goes on, so the
# final fsync has little left to wait for (a large file otherwise waits for all of it at the end).
WRITE_BEHIND = 8 << 20
DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB: far above any character, far below a full disk
MAX_REDIRECTS = 5
_SUFFIX = {"glb": ".glb", "fbx": ".fbx", "png": ".png", "jpeg": ".jpg"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
# Credentials a session could add on its own: always removed from download requests.
_NO_CREDENTIALS: dict[str, str | None] = {"Authorization": None, "X-API-Key": None, "Proxy-Authorization": None,
                                          "Cookie": None}


class CorruptDownload(DownloadError):
    """The bytes are not what the link promised (an HTML error page, a broken or cut GLB/FBX). A later
    attempt may get the right file; this one is deleted and never imported."""


class LinkRefused(DownloadError):
    """The file host refused the link (401/403/404/410): signed links expire, so ask for a fresh one."""


class TooLarge(DownloadError):
    """The file is larger than the configured download limit; nothing of it is kept."""


def safe_filename(name: str, default: str = "result.bin") -> str:
    """A file name that stays inside its folder on every OS, whatever the server sent."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip("._") or default
    stem = base.split(".", 1)[0]
    if stem.upper() in _RESERVED:
        base = "_" + base
    return base[:120]


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def download(
    session: requests.Session,
    url: str,
    dest: Path,
    *,
    pacer: Pacer,
    timing: Timing,
    online_access: Callable[[], bool],
    expect: Collection[str] = ("glb", "fbx"),
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Path:
    """Fetch `url` into `dest`. Resumes a previous `.part` with HTTP Range where the server allows it.

    Raises TransientError for network trouble (worth retrying; the `.part` is kept for a resume),
    LinkRefused for a refused link, CorruptDownload for content that is wrong, TooLarge over
    `max_bytes`, and lets Cancelled/Shutdown through between chunks (a cancel or shutdown also breaks a
    read that is blocked on a stalled server).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers: dict[str, str | None] = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **_NO_CREDENTIALS}
    if have:
        headers["Range"] = f"bytes={have}-"
    total: int | None = None
    received = have
    try:
        response = _get(session, url, headers, timing, online_access)
        with response, pacer.abortable(lambda: _break(response)):
            if response.status_code == 416 and have:  # our .part is already whole, or stale
                part.unlink()
                raise TransientError("The partial download did not match; starting over")
            if response.status_code in (401, 403, 404, 410):
                raise LinkRefused(f"The result link was refused (HTTP {response.status_code}); it may have expired")
            if response.status_code >= 400:
                raise TransientError(f"Download failed with HTTP {response.status_code}",
                                     status=response.status_code)
            if response.status_code == 206 and not _resumes_at(response, have):
                part.unlink(missing_ok=True)
                raise TransientError("The server resumed the download at the wrong place; starting over")
            if response.status_code != 206:
                have = 0  # the server ignored Range (or there was none): start over
            received = have
            total = _expected_total(response, have)
            if total is not None and total > max_bytes:
                part.unlink(missing_ok=True)
                raise TooLarge(_too_large(total, max_bytes))
            # Unbuffered: every received chunk is in the file at once, so a crash or a quit keeps it for a resume.
            with open(part, "ab" if have else "wb", buffering=0) as fh:
                flushed = received  # bytes of the file whose write to disk has been started
                for chunk in _chunks(response):
                    pacer.checkpoint()
                    view = memoryview(chunk)
                    while view:  # a raw file may take fewer bytes than offered
                        written = fh.write(view)
                        if not written:
                            raise OSError(f"Could not write {part.name} to disk")
                        view = view[written:]
                    received += len(chunk)
                    if received > max_bytes:
                        fh.close()
                        part.unlink(missing_ok=True)
                        raise TooLarge(_too_large(received, max_bytes, at_least=True))
                    if received - flushed >= WRITE_BEHIND:
                        _start_writeback(fh.fileno(), flushed, received - flushed)
                        flushed = received
                os.fsync(fh.fileno())  # the result is paid for: on disk before the journal says so
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError) as exc:
        pacer.checkpoint()  # a cancel or shutdown that broke the read is not a network problem
        got = f" at {human_size(received)}" + (f" of {human_size(total)}" if total else "") if received else ""
        raise TransientError(f"The download was interrupted{got} ({connection_problem(exc)})") from exc
    if total is not None and received < total:
        pacer.checkpoint()  # the body ended early because a cancel or shutdown broke the connection
        raise TransientError(f"The download stopped at {human_size(received)} of {human_size(total)}")
    kind = sniff_file(part)
    problem = _content_problem(part, kind, expect)
    if problem:
        part.unlink(missing_ok=True)
        raise CorruptDownload(problem)
    # Name the file after what it is, not what the link said (an importer picks by extension too).
    suffix = _SUFFIX[str(kind)]
    if dest.suffix.lower() not in ((suffix, ".jpeg") if kind == "jpeg" else (suffix,)):
        dest = dest.with_suffix(suffix)
    os.replace(part, dest)
    log.info("downloaded %s (%d bytes)", dest.name, dest.stat().st_size)
    return dest


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a written range to disk without waiting for it. On Linux,
    POSIX_FADV_DONTNEED starts the write-back of dirty pages (they stay cached until written); elsewhere
    there is no such call and the final fsync does all of it."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _get(session: requests.Session, url: str, headers: dict[str, str | None], timing: Timing,
         online_access: Callable[[], bool]) -> requests.Response:
    """GET with redirects followed by hand: every hop is checked against the online-access policy."""
    for _hop in range(MAX_REDIRECTS + 1):
        # Checked and sent in the one form netpolicy.parse reads (the form urllib3 connects with).
        target = netpolicy.check_allowed(url, online_access())
        response = session.get(target.url, headers=headers, stream=True, allow_redirects=False,
                               timeout=(timing.connect_timeout, timing.read_timeout))
        location = response.headers.get("Location")
        if response.status_code in (301, 302, 303, 307, 308) and location:
            response.close()
            url = urljoin(target.url, location)
            continue
        return response
    raise DownloadError(f"The result link redirected more than {MAX_REDIRECTS} times")


def _chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives. `read1` hands over whatever has come in (up to CHUNK), so when the server
    stalls every byte received so far is already on disk for the resume; iter_content would sit on a
    partly filled chunk until the read timeout and lose it."""
    raw: Any = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None or getattr(raw, "chunked", False):  # urllib3 1.x, or a chunked body
        yield from response.iter_content(CHUNK)
        return
    while True:
        try:
            data = read1(CHUNK)
        except u3.ReadTimeoutError as exc:  # the same mapping requests' iter_content does
            raise requests.ConnectionError(exc) from exc
        except (u3.ProtocolError, OSError) as exc:
            raise requests.exceptions.ChunkedEncodingError(exc) from exc
        except u3.DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(exc) from exc
        if not data:
            return
        yield data


def _break(response: requests.Response) -> None:
    """Shut the response's socket down so that a read blocked on it returns at once."""
    raw: Any = response.raw
    sock = None
    for holder in (getattr(raw, "connection", None), getattr(raw, "_connection", None)):
        sock = getattr(holder, "sock", None)
        if sock is not None:
            break
    if sock is None:  # http.client's file object: fp (a SocketIO) -> its socket
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _resumes_at(response: requests.Response, have: int) -> bool:
    match = re.match(r"\s*bytes\s+(\d+)-", response.headers.get("Content-Range") or "")
    return match is None or int(match.group(1)) == have  # no Content-Range: trust the 206


def _too_large(size: int, limit: int, at_least: bool = False) -> str:
    return (f"The result is {'over ' if at_least else ''}{human_size(size)}, larger than the download limit of "
            f"{human_size(limit)}; nothing was kept. Raise Download Limit in Marionette's preferences "
            f"(or MARIONETTE_MAX_DOWNLOAD_MB) and retry: the provider's task is reused, not paid again.")


def _expected_total(response: requests.Response, have: int) -> int | None:
    length = response.headers.get("Content-Length")
    if length is None or not length.isdigit():
        return None
    return int(length) + (have if response.status_code == 206 else 0)


def _content_problem(path: Path, kind: str | None, expect: Collection[str]) -> str | None:
    """Why the file is not a usable result, or None."""
    wanted = "/".join(e.upper() for e in expect)
    if kind not in expect:
        with open(path, "rb") as fh:
            head = fh.read(512).lstrip().lower()
        if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
            return f"The server sent a web page instead of the {wanted} file"
        if head[:4] == b"gltf":
            return f"The {wanted} file is damaged or cut short"
        return f"The downloaded file is not a valid {wanted} (got {kind or 'unknown data'})"
    if kind == "glb":
        return _glb_problem(path)
    if kind == "fbx" and path.stat().st_size < 27:
        return "The FBX file is cut short"
    return None


def _glb_problem(path: Path) -> str | None:
    """The GLB header checks out (sniff_file); its first chunk must be a readable glTF JSON document."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        first = gltf.first_chunk(fh.read(gltf.HEADER_SIZE + gltf.CHUNK_HEADER_SIZE))
        if first is None:
            return "The GLB file is cut short"
        length, chunk_type = first
        start = gltf.HEADER_SIZE + gltf.CHUNK_HEADER_SIZE
        if chunk_type != gltf.JSON_CHUNK or length == 0 or start + length > size:
            return "The GLB file is damaged (no glTF JSON chunk)"
        if length > gltf.MAX_JSON_BYTES:
            return "The GLB file is damaged (its JSON chunk is implausibly large)"
        try:
            doc = gltf.load_json(fh.read(length))
        except ValueError:  # UnicodeDecodeError is one
            return "The GLB file is damaged (its glTF JSON does not parse)"
    if not isinstance(doc, dict) or not isinstance(doc.get("asset"), dict):
        return "The GLB file is damaged (its glTF JSON has no asset description)"
    return None
