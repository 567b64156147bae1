"""HTTP to a provider's API: one requests.Session per job, the key sent only to the API's own origin,
errors turned into typed exceptions, and a retry helper that knows which requests are safe to repeat."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin

import requests

from . import netpolicy
from .errors import (
    AuthError,
    Cancelled,
    ProviderError,
    QuotaError,
    RateLimited,
    TransientError,
)

log = logging.getLogger(__name__)

USER_AGENT = "Marionette-Blender/0.1"
T = TypeVar("T")


@dataclass(frozen=True)
class ProviderConfig:
    """Where a provider lives and how to authenticate. Kept in memory only, never persisted."""

    base_url: str
    api_key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        netpolicy.host_of(self.base_url)  # raises ConfigError on a malformed URL


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
        self.session.trust_env = False  # proxies from the environment must not see our keys

    def url(self, path: str) -> str:
        return urljoin(self.config.base_url.rstrip("/") + "/", path.lstrip("/"))

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        netpolicy.check_allowed(url, self._online_access())
        headers = dict(kwargs.pop("headers", None) or {})
        if self.config.api_key and netpolicy.same_origin(url, self.config.base_url):
            headers.update(self._auth_header(self.config.api_key))
        try:
            response = self.session.request(
                method,
                url,
                headers=headers,
                timeout=(self.timing.connect_timeout, self.timing.read_timeout),
                allow_redirects=False,  # a redirect must never carry the key to another host
                **kwargs,
            )
        except requests.ConnectionError as exc:
            raise TransientError(f"Could not reach {netpolicy.host_of(url)}: {_short(exc)}") from exc
        except requests.Timeout as exc:
            raise TransientError(f"{netpolicy.host_of(url)} did not answer in time") from exc
        raise_for_status(response)
        return response

    def close(self) -> None:
        self.session.close()


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."


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
                return value
            if isinstance(value, dict):
                nested = value.get("message") or value.get("error_message")
                if isinstance(nested, str) and nested:
                    return nested
    return f"HTTP {response.status_code} {response.reason}"


def raise_for_status(response: requests.Response) -> None:
    status = response.status_code
    if status < 400:
        if 300 <= status < 400:
            raise ProviderError(f"Unexpected redirect (HTTP {status}); not followed", status=status)
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
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class Pacer:
    """Sleeps that a cancel or a shutdown interrupts at once."""

    def __init__(self, cancel: threading.Event, stop: threading.Event) -> None:
        self.cancel = cancel
        self.stop = stop

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


class Shutdown(Exception):
    """Blender is closing or the add-on is being disabled: stop work, keep the job resumable."""


def with_retries(
    fn: Callable[[], T],
    *,
    pacer: Pacer,
    timing: Timing,
    notice: Callable[[str | None], None],
    repeatable: bool = True,
) -> T:
    """Run `fn`, retrying rate limits and transient failures with capped exponential backoff.

    A create request is not `repeatable` once it may have reached the provider: then only answers
    that say "not accepted" (429, 5xx with a body) are retried, never a lost connection mid-request.
    """
    attempt = 0
    while True:
        pacer.checkpoint()
        try:
            result = fn()
            notice(None)
            return result
        except RateLimited as exc:
            wait = exc.retry_after if exc.retry_after is not None else _backoff(attempt, timing)
            notice(f"Rate limited by the provider ({exc.code or '429'}); retrying in {wait:.0f} s")
            log.info("rate limited (%s), waiting %.1f s", exc.code, wait)
        except TransientError as exc:
            if not repeatable and exc.status is None:
                raise
            if attempt >= timing.max_transient_retries:
                raise
            wait = _backoff(attempt, timing)
            notice(f"{exc} - retrying in {wait:.0f} s")
            log.info("transient error: %s; waiting %.1f s", exc, wait)
        attempt += 1
        pacer.sleep(wait)


def _backoff(attempt: int, timing: Timing) -> float:
    return float(min(timing.retry_max, timing.retry_base * (2**attempt)) * random.uniform(0.8, 1.0))
