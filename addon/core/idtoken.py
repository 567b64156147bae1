"""image3d.io's "key" is a Firebase ID token, a JWT that "expire[s] after 1 hour" (seed 003). Its expiry
is read from the token itself (the `exp` claim of its payload, base64url JSON), without verifying the
signature: Marionette only needs to know how long the token has left, never to trust what it says.
"""

from __future__ import annotations

import base64
import binascii
import json
import time

# A submit is warned about when the token has less than this left: a generation takes 10 s to a minute
# (seed 003's tiers), but a job may wait in the account's queue first.
SUBMIT_MARGIN = 10 * 60.0
# Clock skew allowed when deciding that a token has expired.
SKEW = 30.0


def expiry(token: str) -> float | None:
    """The token's `exp` (seconds since the epoch), or None when it is not a JWT with one."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")).decode("utf-8"))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


def remaining(token: str, now: float | None = None) -> float | None:
    """Seconds the token has left (negative once expired), or None when it carries no expiry."""
    exp = expiry(token)
    return None if exp is None else exp - (time.time() if now is None else now)


def expired(token: str, now: float | None = None) -> bool:
    left = remaining(token, now)
    return left is not None and left <= SKEW


def _minutes(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    if minutes >= 120:
        return f"{minutes // 60} h"
    return f"{minutes} min" if minutes else f"{int(abs(seconds))} s"


def describe(token: str, now: float | None = None) -> str:
    """How long the token has left, for the preferences and the panel."""
    if not token.strip():
        return "No ID token"
    left = remaining(token, now)
    if left is None:
        return "The ID token carries no expiry (is it a Firebase ID token?)"
    if left <= SKEW:
        return f"The ID token expired {_minutes(left)} ago: paste a fresh one"
    return f"The ID token expires in {_minutes(left)}"


def submit_warning(token: str, now: float | None = None, margin: float = SUBMIT_MARGIN) -> str | None:
    """A warning for a submit likely to outlive the token, or None."""
    left = remaining(token, now)
    if left is None or left > margin:
        return None
    if left <= SKEW:
        return ("image3d.io's ID token has expired: the job waits until a fresh ID token is pasted in "
                "Preferences > Add-ons > Marionette, then goes on by itself")
    return (f"image3d.io's ID token expires in {_minutes(left)}: the job may outlive it. If it does, the job waits "
            "for a fresh ID token (Preferences > Add-ons > Marionette) and goes on by itself")


def waiting_notice() -> str:
    return ("image3d.io's ID token expired (tokens last one hour): paste a fresh ID token in Preferences > "
            "Add-ons > Marionette; the job goes on by itself when it is saved")
