"""Which hosts Marionette may talk to. Loopback is always allowed (the local emulator); anything else
only while Blender's online access is on."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .errors import ConfigError, OfflineError

ONLINE_ACCESS_HINT = "Enable it in Preferences > System > Network > Allow Online Access."


def host_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"Not an http(s) URL: {url!r}")
    return parts.hostname


def is_loopback_url(url: str) -> bool:
    host = host_of(url)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_allowed(url: str, online_access: bool) -> None:
    """Raise OfflineError unless the request may leave: loopback always, other hosts only online."""
    if not is_loopback_url(url) and not online_access:
        raise OfflineError(f"Online access is off, so Marionette will not contact {host_of(url)}. "
                           + ONLINE_ACCESS_HINT)


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
