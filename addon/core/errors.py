"""Typed errors. Every message here may be shown to an artist: say what happened and what to do."""

from __future__ import annotations


class MarionetteError(Exception):
    """Base of every error Marionette raises on purpose."""


class InputError(MarionetteError):
    """The artist's input cannot be sent (no image, unreadable file, bad option). Nothing was spent."""


class ConfigError(MarionetteError):
    """Missing key, bad base URL, online access off. Nothing was sent."""


class OfflineError(ConfigError):
    """A request to a non-loopback host while Blender's online access is off."""


class ProviderError(MarionetteError):
    """The provider answered with an error. `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AuthError(ProviderError):
    """401/403: the key is missing, wrong or expired."""


class QuotaError(ProviderError):
    """402: not enough credits."""


class RateLimited(ProviderError):
    """429: slow down. `retry_after` is in seconds when the provider said."""

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(message, status=429, code=code)
        self.retry_after = retry_after


class TransientError(ProviderError):
    """5xx, connection refused or reset, timeouts: worth retrying with backoff."""


class ProtocolError(ProviderError):
    """The provider answered, but not in a form Marionette can read (a wrong shape, an oversized or
    bomb-like body). Not retried on its own: the job fails saying so, its tasks kept for Retry."""


class TaskFailed(ProviderError):
    """The provider ran the task and it FAILED; carries the provider's message and code."""


class Cancelled(MarionetteError):
    """The job was cancelled by the artist."""


class DownloadError(MarionetteError):
    """A result could not be downloaded or is not what it claims to be."""


class ImportFailed(MarionetteError):
    """A downloaded result could not be imported; the scene was left as it was."""
