"""HTTP to a provider's API: one requests.Session per job, the key sent only to the API's own origin,
errors turned into typed exceptions, and a retry helper that knows which requests are safe to repeat.

Also the guard that keeps keys out of logs and messages: every configured key is registered here,
`redact` removes them from any text, and `SecretFilter` does the same to log records.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urljoin

import requests
from urllib3 import exceptions as u3

from . import netpolicy
from .errors import (
    AuthError,
    Cancelled,
    ConfigError,
    ProtocolError,
    ProviderError,
    QuotaError,
    RateLimited,
    TransientError,
)
from .redaction import key_problem, redact, register_secret

log = logging.getLogger(__name__)

USER_AGENT = "Marionette-Blender/0.1"
T = TypeVar("T")

# A Retry-After longer than this is not believed: the job would look dead.
MAX_RETRY_AFTER = 600.0


# -- configuration -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderConfig:
    """Where a provider lives and how to authenticate. Kept in memory only, never persisted."""

    base_url: str
    api_key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        netpolicy.parse(self.base_url)  # raises ConfigError on a malformed or ambiguous URL
        register_secret(self.api_key)  # even a refused key: nothing may ever show it
        problem = key_problem(self.api_key)
        if problem:
            raise ConfigError(f"The API key cannot be used: {problem}. Copy it again from the provider's "
                              "dashboard (only letters, digits and punctuation, no spaces).")


@dataclass
class Timing:
    """Timeouts and retry pacing; tests shrink these, the defaults suit real providers."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    poll_interval: float = 3.0
    max_poll_interval: float = 15.0
    retry_base: float = 1.0
    retry_max: float = 60.0
    max_transient_retries: int = 8


class ConnectFailed(TransientError):
    """The connection could not be opened (refused, unreachable, connect timeout). Nothing was sent,
    so any request may be repeated, even one that creates a paid task."""


class SlotWait(RateLimited):
    """The account's queue of concurrent tasks is full: nothing was created and nothing failed; the job
    waits locally and sends the request again when a slot frees. The message says so to the artist."""


class ApiClient:
    """Calls one provider's API. `online_access` is read at every request (the main thread keeps it fresh)."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        auth_header: Callable[[str], dict[str, str]],
        online_access: Callable[[], bool],
        timing: Timing,
    ) -> None:
        self.config = config
        self._auth_header = auth_header
        self._online_access = online_access
        self.timing = timing
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.trust_env = False  # proxies and .netrc from the environment must not see our keys
        self.max_answer_bytes = MAX_ANSWER_BYTES

    def url(self, path: str) -> str:
        return urljoin(self.config.base_url.rstrip("/") + "/", path.lstrip("/"))

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        """Send one request and read its answer whole, within MAX_ANSWER_BYTES on the wire and after
        decompression. The URL is checked and sent in the one form `netpolicy.parse` reads."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        target = netpolicy.check_allowed(url, self._online_access())
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Accept-Encoding", ANSWER_ENCODINGS)  # only what read_answer can bound
        if self.config.api_key and netpolicy.same_origin(target.url, self.config.base_url):
            headers.update(self._auth_header(self.config.api_key))
        host = target.host
        try:
            response = self.session.request(
                method,
                target.url,
                headers=headers,
                timeout=(self.timing.connect_timeout, self.timing.read_timeout),
                allow_redirects=False,  # a redirect must never carry the key to another host
                stream=True,  # the body is read by read_answer, never whole into memory unchecked
                **kwargs,
            )
            try:
                read_answer(response, host, self.max_answer_bytes)
            finally:
                response.close()
        except requests.ConnectionError as exc:
            if nothing_sent(exc):
                raise ConnectFailed(f"Could not connect to {host} ({connection_problem(exc)})") from exc
            if _timed_out(exc):
                raise TransientError(f"{host} did not answer in time") from exc
            raise TransientError(f"The connection to {host} broke ({connection_problem(exc)})") from exc
        except requests.Timeout as exc:
            raise TransientError(f"{host} did not answer in time") from exc
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            raise TransientError(f"The answer from {host} was cut off") from exc
        raise_for_status(response)
        if _is_web_page(response):
            # A proxy, captive portal or error page answering in the API's place: not an answer.
            raise TransientError(f"{host} answered with a web page instead of data (HTTP {response.status_code})")
        return response

    def close(self) -> None:
        self.session.close()


# API answers (status, task lists, balances: a few KB) are read whole into memory, so they are bounded:
# at most this many bytes on the wire and this many after decompression. Downloads have their own limit.
MAX_ANSWER_BYTES = 8 << 20
ANSWER_ENCODINGS = "gzip, deflate"
_READ = 64 << 10


def read_answer(response: requests.Response, host: str, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """Read a streamed response's body into `response.content`, decompressing it here (gzip, deflate or
    none) with at most `limit` bytes on the wire and `limit` bytes after decompression, and never more
    than a chunk's worth of inflated data in memory beyond what is kept. ProtocolError when it is
    larger or in an encoding Marionette did not ask for."""
    raw: Any = response.raw
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        inflater: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        inflater = _Deflate()
    elif encoding in ("identity", ""):
        inflater = None
    else:
        raise ProtocolError(f"{host} answered in an encoding Marionette did not ask for ({encoding[:40]})",
                            code="bad_encoding")
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > limit:
        raise _too_big(host, limit, "")
    body = bytearray()
    wire = 0
    while True:
        try:
            chunk = raw.read(_READ, decode_content=False)
        except u3.ReadTimeoutError as exc:  # the mapping requests' own body reading does
            raise requests.ConnectionError(exc) from exc
        except (u3.ProtocolError, OSError) as exc:
            raise requests.exceptions.ChunkedEncodingError(exc) from exc
        if not chunk:
            break
        wire += len(chunk)
        if wire > limit:
            raise _too_big(host, limit, "")
        if inflater is None:
            body += chunk
            continue
        data = chunk
        while data:
            try:
                body += inflater.decompress(data, limit + 1 - len(body))
            except zlib.error as exc:
                raise requests.exceptions.ContentDecodingError(exc) from exc
            if len(body) > limit:
                raise _too_big(host, limit, " once decompressed")
            data = inflater.unconsumed_tail
            if getattr(inflater, "eof", False):
                break
    if inflater is not None:
        try:
            body += inflater.flush()[: limit + 1 - len(body)]
        except zlib.error as exc:
            raise requests.exceptions.ContentDecodingError(exc) from exc
        if len(body) > limit:
            raise _too_big(host, limit, " once decompressed")
    response._content = bytes(body)  # what .json() and .text read
    response._content_consumed = True  # type: ignore[attr-defined]
    return response._content


class _Deflate:
    """HTTP "deflate" is zlib-wrapped by the standard and raw in some servers: take either."""

    def __init__(self) -> None:
        self._inner: Any = None
        self.unconsumed_tail = b""
        self.eof = False

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS)
        try:
            out: bytes = self._inner.decompress(data, max(1, max_length))
        except zlib.error as exc:
            raise requests.exceptions.ContentDecodingError(exc) from exc
        self.unconsumed_tail, self.eof = self._inner.unconsumed_tail, self._inner.eof
        return out

    def flush(self) -> bytes:
        return self._inner.flush() if self._inner is not None else b""


def _too_big(host: str, limit: int, how: str) -> ProtocolError:
    return ProtocolError(f"{host} sent an answer larger than {limit >> 20} MB{how}, far more than any status "
                         "or task answer; it was not read. The provider's tasks are kept: press Retry later.",
                         code="answer_too_large")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (requests wraps urllib3 in args), and its causes."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        reason = getattr(item, "reason", None)
        for inner in (reason, *item.args, item.__cause__, item.__context__):
            if isinstance(inner, BaseException):
                todo.append(inner)


_NAME_RESOLUTION: type[BaseException] | None = getattr(u3, "NameResolutionError", None)  # urllib3 2 only


def nothing_sent(exc: BaseException) -> bool:
    """True when the connection was never established, so the request cannot have reached the server."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    return any(isinstance(item, u3.NewConnectionError | u3.ConnectTimeoutError | ConnectionRefusedError)
               for item in _chain(exc))


def _timed_out(exc: BaseException) -> bool:
    return any(isinstance(item, u3.ReadTimeoutError | TimeoutError) for item in _chain(exc))


def connection_problem(exc: BaseException) -> str:
    """A few words for what went wrong with a connection, without the URL soup requests puts in."""
    chain = list(_chain(exc))
    # The operating system's own reason first: urllib3 wraps a refusal in a "connect timeout" class.
    for item in chain:
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, ConnectionResetError):
            return "connection reset"
    for item in chain:
        if _NAME_RESOLUTION is not None and isinstance(item, _NAME_RESOLUTION):
            return "host name not found"
        if isinstance(item, u3.SSLError):
            return "TLS certificate problem"
        if isinstance(item, u3.ReadTimeoutError | TimeoutError | u3.ConnectTimeoutError):
            return "timed out"
    return exc.__class__.__name__


def _is_web_page(response: requests.Response) -> bool:
    kind = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    return kind in ("text/html", "application/xhtml+xml")


def error_message(response: requests.Response) -> str:
    """The provider's own words for an error, from the usual JSON shapes, else the HTTP reason."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code} {response.reason}"
    if isinstance(body, dict):
        for key in ("message", "error_message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return redact(value)
            if isinstance(value, dict):
                nested = value.get("message") or value.get("error_message")
                if isinstance(nested, str) and nested:
                    return redact(nested)
    return f"HTTP {response.status_code} {response.reason}"


def raise_for_status(response: requests.Response) -> None:
    status = response.status_code
    if status < 400:
        if 300 <= status < 400:
            location = response.headers.get("Location") or ""
            try:
                where = f" to {netpolicy.host_of(urljoin(response.url, location))}" if location else ""
            except Exception:
                where = ""
            raise ProviderError(f"The provider answered with a redirect{where} (HTTP {status}); Marionette does "
                                "not follow redirects with your key. Check the provider's base URL.", status=status)
        return
    message = error_message(response)
    if status in (401, 403):
        raise AuthError(f"The API key was rejected ({status}): {message}", status=status)
    if status == 402:
        raise QuotaError(f"Not enough credits ({status}): {message}", status=status)
    if status == 429:
        raise RateLimited(f"Rate limited: {message}", retry_after=_retry_after(response), code=message)
    if status >= 500:
        raise TransientError(f"The provider had a server error ({status}): {message}", status=status)
    raise ProviderError(f"{message} (HTTP {status})", status=status)


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds, from either of its forms (delta-seconds or an HTTP date)."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


class Pacer:
    """Sleeps that a cancel or a shutdown interrupts at once, and the hooks that break a blocked read."""

    def __init__(self, cancel: threading.Event, stop: threading.Event) -> None:
        self.cancel = cancel
        self.stop = stop
        self._hooks: dict[int, Callable[[], None]] = {}
        self._lock = threading.Lock()
        self._next = 0

    def checkpoint(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("Cancelled")
        if self.stop.is_set():
            raise Shutdown()

    def sleep(self, seconds: float) -> None:
        self.checkpoint()
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            # Short waits so that a shutdown (the other event) is noticed quickly too.
            if self.cancel.wait(min(0.05, remaining)) or self.stop.is_set():
                break
        self.checkpoint()

    @contextlib.contextmanager
    def abortable(self, abort: Callable[[], None]) -> Iterator[None]:
        """While inside, a cancel or a shutdown also calls `abort` (e.g. to close a socket that a read is
        blocked on), so that the worker stops at once instead of after the read timeout."""
        with self._lock:
            self._next += 1
            token = self._next
            self._hooks[token] = abort
        try:
            if self.cancel.is_set() or self.stop.is_set():
                _quietly(abort)
            yield
        finally:
            with self._lock:
                self._hooks.pop(token, None)

    def abort(self) -> None:
        """Called by whoever set `cancel` or `stop`: run the abort hooks of reads in progress."""
        with self._lock:
            hooks = list(self._hooks.values())
        for hook in hooks:
            _quietly(hook)


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as exc:  # best effort: the read then ends by its own timeout
        log.debug("abort hook failed: %s", exc)


class Shutdown(Exception):
    """Blender is closing or the add-on is being disabled: stop work, keep the job resumable."""


def with_retries(
    fn: Callable[[], T],
    *,
    pacer: Pacer,
    timing: Timing,
    notice: Callable[[str | None], None],
    repeatable: bool = True,
    queued: Callable[[bool], None] | None = None,
) -> T:
    """Run `fn`, retrying rate limits and transient failures with capped exponential backoff.

    A create request is not `repeatable` once it may have reached the provider: then only answers
    that say "not accepted" (429, 5xx with a body) and connections that never opened are retried,
    never a connection lost mid-request. `queued(True/False)` is told when the provider's queue is full
    (SlotWait) and when it took the request.
    """
    attempt = 0
    transient = 0
    waiting_for_slot = False
    while True:
        pacer.checkpoint()
        try:
            result = fn()
            if waiting_for_slot and queued is not None:
                queued(False)
            notice(None)
            return result
        except SlotWait as exc:
            wait = exc.retry_after if exc.retry_after is not None else _backoff(attempt, timing)
            if not waiting_for_slot and queued is not None:
                queued(True)
            waiting_for_slot = True
            notice(f"{exc}; asking again in {wait:.0f} s")
            log.info("queue full (%s), waiting %.1f s", exc.code, wait)
        except RateLimited as exc:
            wait = exc.retry_after if exc.retry_after is not None else _backoff(attempt, timing)
            notice(f"Rate limited by the provider ({exc.code or '429'}); retrying in {wait:.0f} s")
            log.info("rate limited (%s), waiting %.1f s", exc.code, wait)
        except TransientError as exc:
            if not repeatable and exc.status is None and not isinstance(exc, ConnectFailed):
                raise
            if transient >= timing.max_transient_retries:
                raise
            transient += 1
            wait = _backoff(attempt, timing)
            notice(f"{exc} - retrying in {wait:.0f} s")
            log.info("transient error: %s; waiting %.1f s", exc, wait)
        attempt += 1
        pacer.sleep(wait)


def _backoff(attempt: int, timing: Timing) -> float:
    return float(min(timing.retry_max, timing.retry_base * (2 ** min(attempt, 30))) * random.uniform(0.8, 1.0))
