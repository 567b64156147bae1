"""Provider balances for the panel, fetched on a worker thread when the artist asks."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future

import bpy

from ..core.errors import MarionetteError
from . import session

log = logging.getLogger(__name__)

_futures: dict[str, Future[float | None]] = {}
_text: dict[str, str] = {}


def refresh(provider_id: str) -> None:
    if provider_id in _futures:
        return
    current = session.get()
    provider = current.providers[provider_id]
    config = current.config(provider_id)
    online = bpy.app.online_access
    future: Future[float | None] = Future()

    def work() -> None:
        from ..core.http import ApiClient  # requests: loaded on first use

        client = ApiClient(config, auth_header=provider.auth_header, online_access=lambda: online,
                           timing=current.runner.timing)
        try:
            future.set_result(provider.balance(client))
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            client.close()

    _futures[provider_id] = future
    _text[provider_id] = "Checking..."
    threading.Thread(target=work, name=f"marionette-balance-{provider_id}", daemon=True).start()


def pump() -> bool:
    changed = False
    for provider_id, future in list(_futures.items()):
        if not future.done():
            continue
        del _futures[provider_id]
        provider = session.get().providers[provider_id]
        try:
            value = future.result()
        except MarionetteError as exc:
            _text[provider_id] = f"Balance unavailable: {exc}"
        except Exception as exc:
            log.exception("balance of %s", provider_id)
            _text[provider_id] = f"Balance unavailable: {exc.__class__.__name__}"
        else:
            unit = provider.balance_unit
            _text[provider_id] = (f"Balance: {value:g} {unit}" if value is not None
                                  else f"{provider.label} does not report a balance")
        changed = True
    return changed


def text(provider_id: str) -> str | None:
    return _text.get(provider_id)


def wait(provider_id: str, timeout: float = 30.0) -> str | None:
    """For scripts and tests: block until the balance request has finished."""
    future = _futures.get(provider_id)
    if future is not None:
        try:
            future.result(timeout)
        except Exception as exc:  # reported by pump()
            log.debug("balance of %s failed: %s", provider_id, exc)
    pump()
    return text(provider_id)


def reset() -> None:
    _futures.clear()
    _text.clear()
