"""Streaming, resumable, validated downloads into a job's folder.

Bytes go to `<name>.part` and are renamed only once complete and recognised (GLB/FBX/PNG/JPEG by
magic), so a half-written or wrong file never looks like a result. No API key is ever sent here:
asset hosts are not the API host.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Collection
from pathlib import Path

import requests

from . import netpolicy
from .errors import DownloadError, TransientError
from .formats import sniff_file
from .http import USER_AGENT, Pacer, Timing

log = logging.getLogger(__name__)

CHUNK = 1 << 20
DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB: far above any character, far below a full disk
_SUFFIX = {"glb": ".glb", "fbx": ".fbx", "png": ".png", "jpeg": ".jpg"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def safe_filename(name: str, default: str = "result.bin") -> str:
    """A file name that stays inside its folder on every OS, whatever the server sent."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip("._") or default
    stem = base.split(".", 1)[0]
    if stem.upper() in _RESERVED:
        base = "_" + base
    return base[:120]


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
    on_progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Fetch `url` into `dest`. Resumes a previous `.part` with HTTP Range where the server allows it.

    Raises TransientError for network trouble (worth retrying), DownloadError for content that is
    wrong (a retry would not help), and lets Cancelled/Shutdown through between chunks.
    """
    netpolicy.check_allowed(url, online_access())
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        with requests.get(
            url, headers=headers, stream=True, timeout=(timing.connect_timeout, timing.read_timeout)
        ) as response:
            if response.status_code == 416 and have:  # our .part is already whole, or stale
                part.unlink()
                raise TransientError("The partial download did not match; starting over")
            if response.status_code in (401, 403, 404, 410):
                raise DownloadError(
                    f"The result link was refused (HTTP {response.status_code}); it may have expired"
                )
            if response.status_code >= 400:
                raise TransientError(f"Download failed with HTTP {response.status_code}",
                                     status=response.status_code)
            if response.status_code != 206:
                have = 0  # the server ignored Range: start over
            total = _expected_total(response, have)
            if total is not None and total > max_bytes:
                raise DownloadError(f"The result is {total} bytes, over the {max_bytes}-byte limit")
            with open(part, "ab" if have else "wb") as fh:
                received = have
                for chunk in response.iter_content(CHUNK):
                    pacer.checkpoint()
                    fh.write(chunk)
                    received += len(chunk)
                    if received > max_bytes:
                        raise DownloadError(f"The result is over the {max_bytes}-byte limit")
                    if on_progress:
                        on_progress(received, total)
                fh.flush()
                os.fsync(fh.fileno())
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"The download was interrupted: {exc.__class__.__name__}") from exc
    if total is not None and received < total:
        raise TransientError(f"The download stopped at {received} of {total} bytes")
    kind = sniff_file(part)
    if kind not in expect:
        part.unlink(missing_ok=True)
        wanted = "/".join(e.upper() for e in expect)
        raise DownloadError(f"The downloaded file is not a valid {wanted} (got {kind or 'unknown data'})")
    # Name the file after what it is, not what the link said (an importer picks by extension too).
    suffix = _SUFFIX[str(kind)]
    if dest.suffix.lower() not in ((suffix, ".jpeg") if kind == "jpeg" else (suffix,)):
        dest = dest.with_suffix(suffix)
    os.replace(part, dest)
    log.info("downloaded %s (%d bytes)", dest.name, dest.stat().st_size)
    return dest


def _expected_total(response: requests.Response, have: int) -> int | None:
    length = response.headers.get("Content-Length")
    if length is None or not length.isdigit():
        return None
    return int(length) + (have if response.status_code == 206 else 0)
