"""Which hosts Marionette may talk to. Loopback is always allowed (the local emulator); anything else
only while Blender's online access is on.

One URL parser for every check: `parse` reads a URL exactly as the HTTP stack will connect with it
(requests prepares the URL, urllib3's `parse_url` splits it, and the connection pool connects to that
host and port). The online-access check, the loopback test, the key's same-origin test, download hosts
and redirects all use it, and the request is sent to the URL it returns, so a check can never see one
host while the connection goes to another (`urlsplit` reads `http://a\\@b/` as host b, urllib3 as a).
A backslash, user-info (`user@host`), control characters and schemes other than http(s) are refused
outright.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import requests
from urllib3.util import parse_url

from .errors import ConfigError, OfflineError

ONLINE_ACCESS_HINT = "Enable it in Preferences > System > Network > Allow Online Access."
_DEFAULT_PORTS = {"http": 80, "https": 443}


class BadURL(ConfigError):
    """A URL Marionette will not use (malformed, a backslash, user-info, not http(s)). Nothing was sent."""


@dataclass(frozen=True)
class Target:
    url: str  # the URL as it is sent (requests' prepared form)
    scheme: str
    host: str  # lower case; an IPv6 address without brackets
    port: int  # the explicit port or the scheme's default

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def _shown(url: str) -> str:
    text = url if len(url) <= 120 else url[:117] + "..."
    return repr(text)


def parse(url: str) -> Target:
    """The URL as requests/urllib3 will connect with it; BadURL for anything Marionette does not use."""
    if not isinstance(url, str) or not url.strip():
        raise BadURL(f"Not an http(s) URL: {url!r}")
    if "\\" in url:
        raise BadURL(f"Refused the URL {_shown(url)}: it holds a backslash, which URL parsers read differently")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise BadURL(f"Refused the URL {_shown(url)}: it holds a control character")
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url.strip(), None)
        parts = parse_url(prepared.url or "")
    except (requests.exceptions.RequestException, ValueError) as exc:
        raise BadURL(f"Not a valid URL {_shown(url)}: {exc.__class__.__name__}") from None
    except Exception as exc:  # urllib3's LocationParseError and the like
        raise BadURL(f"Not a valid URL {_shown(url)}: {exc.__class__.__name__}") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in _DEFAULT_PORTS:
        raise BadURL(f"Not an http(s) URL: {_shown(url)}")
    if parts.auth is not None or "@" in (parts.netloc or ""):
        raise BadURL(f"Refused the URL {_shown(url)}: it names a user (user@host), which is never needed")
    host = (parts.host or "").lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise BadURL(f"Not an http(s) URL: {_shown(url)} has no host")
    return Target(url=str(prepared.url), scheme=scheme, host=host, port=parts.port or _DEFAULT_PORTS[scheme])


def host_of(url: str) -> str:
    return parse(url).host


def _loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    return _loopback_host(parse(url).host)


def check_allowed(url: str, online_access: bool) -> Target:
    """The parsed URL; OfflineError unless the request may leave (loopback always, others only online)."""
    target = parse(url)
    if not _loopback_host(target.host) and not online_access:
        raise OfflineError(f"Online access is off, so Marionette will not contact {target.host}. "
                           + ONLINE_ACCESS_HINT)
    return target


def same_origin(a: str, b: str) -> bool:
    try:
        return parse(a).origin == parse(b).origin
    except BadURL:
        return False
