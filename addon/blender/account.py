"""Provider balances for the panel, asked for in the background when the artist asks.

The request runs on the session's background (a lane per provider); the timer pump drains it and the
answer lands in the session's :class:`Balances` on the main thread.
"""

from __future__ import annotations

import logging

import bpy

from ..core.background import Outcome
from ..core.errors import MarionetteError
from . import session

log = logging.getLogger(__name__)


class Balances:
    """What the panel says about each provider's balance (provider id -> text). Owned by the session."""

    def __init__(self) -> None:
        self.text: dict[str, str] = {}


def _lane(provider_id: str) -> str:
    return f"balance-{provider_id}"


def refresh(provider_id: str) -> None:
    current = session.get()
    if current.background.busy(_lane(provider_id)):
        return
    provider = current.providers[provider_id]
    config = current.config(provider_id)
    online = bpy.app.online_access
    timing = current.runner.timing
    balances = current.balances

    def work() -> float | None:  # on the worker: no bpy
        from ..core.http import ApiClient  # requests: loaded on first use

        client = ApiClient(config, auth_header=provider.auth_header, online_access=lambda: online, timing=timing)
        try:
            return provider.balance(client)
        finally:
            client.close()

    def done(outcome: Outcome[float | None]) -> None:  # main thread, from the pump
        try:
            value = outcome.get()
        except MarionetteError as exc:
            balances.text[provider_id] = f"Balance unavailable: {exc}"
        except Exception as exc:
            log.error("balance of %s", provider_id, exc_info=exc)
            balances.text[provider_id] = f"Balance unavailable: {exc.__class__.__name__}"
        else:
            unit = provider.balance_unit
            balances.text[provider_id] = (f"Balance: {value:g} {unit}" if value is not None
                                          else f"{provider.label} does not report a balance")

    balances.text[provider_id] = "Checking..."
    current.background.submit(_lane(provider_id), work, done)


def text(provider_id: str) -> str | None:
    current = session.get_or_none()
    return current.balances.text.get(provider_id) if current is not None else None


def wait(provider_id: str, timeout: float = 30.0) -> str | None:
    """For scripts and tests: block until the balance request has finished, and take its answer."""
    current = session.get()
    current.background.wait(_lane(provider_id), timeout)
    current.background.drain()
    return text(provider_id)
