"""Provider settings from the preferences, overridden by environment variables for scripts and CI:
MARIONETTE_<ID>_API_KEY and MARIONETTE_<ID>_BASE_URL (e.g. MARIONETTE_MESHY_BASE_URL)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from . import netpolicy
from .downloads import DEFAULT_MAX_BYTES
from .errors import ConfigError
from .http import ProviderConfig, Timing
from .providers.base import Provider
from .redaction import key_problem, register_secret


def env_name(provider_id: str, what: str) -> str:
    return f"MARIONETTE_{provider_id.upper()}_{what}"


def resolve(provider: Provider, pref_key: str, pref_base_url: str,
            environ: Mapping[str, str] | None = None) -> ProviderConfig:
    env = os.environ if environ is None else environ
    env_key = env.get(env_name(provider.id, "API_KEY"))
    key = (env_key or pref_key).strip()
    register_secret(key)  # hidden from every message even when it is refused below
    problem = key_problem(key)
    if problem:
        where = env_name(provider.id, "API_KEY") if env_key else "Preferences > Add-ons > Marionette"
        raise ConfigError(f"The {provider.label} {provider.key_label} in {where} cannot be used: {problem}. "
                          "Copy it again from the provider's dashboard (letters, digits and punctuation only, "
                          "no spaces).")
    base = env.get(env_name(provider.id, "BASE_URL")) or pref_base_url or provider.default_base_url
    try:
        return ProviderConfig(base_url=base.strip(), api_key=key)
    except ConfigError as exc:
        raise ConfigError(f"{provider.label} base URL is not valid: {exc}") from None


def problem(provider: Provider, config: ProviderConfig, online_access: bool) -> str | None:
    """Why a job cannot be sent now, in the artist's words, or None. Checks only; sends nothing."""
    try:
        loopback = netpolicy.is_loopback_url(config.base_url)
    except ConfigError as exc:
        return f"{provider.label} base URL is not valid: {exc}"
    if not config.api_key and not loopback:
        return (f"No {provider.label} {provider.key_label}: add it in Preferences > Add-ons > Marionette "
                f"(or set {env_name(provider.id, 'API_KEY')})")
    if not loopback and not online_access:
        return "Online access is off. " + netpolicy.ONLINE_ACCESS_HINT
    return None


def timing_from_env(environ: Mapping[str, str] | None = None) -> Timing:
    """MARIONETTE_POLL_INTERVAL and MARIONETTE_RETRY_BASE (seconds) speed up tests and demos."""
    env = os.environ if environ is None else environ
    timing = Timing()
    if value := env.get("MARIONETTE_POLL_INTERVAL"):
        timing.poll_interval = float(value)
        timing.max_poll_interval = max(float(value), float(value) * 4)
    if value := env.get("MARIONETTE_RETRY_BASE"):
        timing.retry_base = float(value)
        timing.retry_max = float(value) * 8
    return timing


DOWNLOAD_LIMIT_ENV = "MARIONETTE_MAX_DOWNLOAD_MB"


def download_limit(pref_mb: int | None, environ: Mapping[str, str] | None = None) -> int:
    """The largest download accepted, in bytes: MARIONETTE_MAX_DOWNLOAD_MB, else the preference, else
    2 GiB. A value that is not a positive whole number is an error, not a silent default."""
    env = os.environ if environ is None else environ
    raw = env.get(DOWNLOAD_LIMIT_ENV)
    if raw is not None and raw.strip():
        try:
            megabytes = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{DOWNLOAD_LIMIT_ENV} must be a whole number of megabytes, not {raw!r}") from None
    elif pref_mb:
        megabytes = pref_mb
    else:
        return DEFAULT_MAX_BYTES
    if megabytes < 1:
        raise ConfigError(f"The download limit must be at least 1 MB, not {megabytes}")
    return megabytes << 20
