"""What the emulated providers share: the App plumbing (a lock over the state, errors raised while
routing answered in the provider's own shape), tasks that move one step each time the client polls
them, and signed result links that a test can ask to be handed out already expired.

Each provider keeps its own wire format: status names, fields and error bodies stay in its module.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .server import Request, Response, json_response

if TYPE_CHECKING:
    from .server import Emulator

# The stages of a polled task, before each provider names them in its own words.
PENDING, RUNNING, FINISHED = "pending", "running", "finished"
# The lifetime a stale link is signed with (``expired_links``): it ran out a minute ago.
EXPIRED_TTL = -60.0


class ApiError(Exception):
    """A refused request, answered with ``status`` and the body the provider's ``error_body`` makes of
    it. ``code`` is the provider's own error code, for the providers that send one."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(kw_only=True)
class PolledTask:
    """A task that moves one step each time the client polls it: ``pending_polls`` steps queued, then
    ``running_polls`` steps running with rising progress, then finished.

    Keyword-only so that each provider's own fields (positional, some without defaults) can follow.
    """

    pending_polls: int
    running_polls: int
    polls: int = 0

    def stage(self) -> tuple[str, int]:
        """(PENDING, RUNNING or FINISHED, progress in percent) at the current step."""
        step, pending, running = self.polls, self.pending_polls, self.running_polls
        if step <= pending:
            return PENDING, 0
        if step <= pending + running:
            return RUNNING, max(1, (step - pending) * 100 // (running + 1))
        return FINISHED, 100

    @property
    def finished(self) -> bool:
        return self.stage()[0] == FINISHED

    def advance(self) -> bool:
        """One step forward unless the task is finished; whether it moved."""
        if self.finished:
            return False
        self.polls += 1
        return True


class ProviderApp:
    """The parts of the emulator's App protocol every provider shares. Subclasses give ``owns`` and
    ``_route``, and ``error_body`` when their error answers are not ``{"message": ...}``."""

    def __init__(self, emulator: Emulator, api_key: str | None) -> None:
        self._emu = emulator
        self.lock = threading.RLock()
        self.api_key: str | None = api_key  # None: open mode, any or no key accepted
        self.expired_links: int = 0  # the next N result links (or lists of them) have already expired

    def owns(self, path: str) -> bool:
        raise NotImplementedError

    def base_headers(self) -> dict[str, str]:
        return {}

    def handle(self, request: Request) -> Response:
        try:
            return self._route(request)
        except ApiError as exc:
            return json_response(exc.status, self.error_body(exc))

    def _route(self, request: Request) -> Response:
        raise NotImplementedError

    def error_body(self, exc: ApiError) -> Any:
        return {"message": exc.message}

    def _link_ttl(self, ttl: float) -> float:
        """``ttl``, or a lifetime already past while ``expired_links`` asks for stale links."""
        if self.expired_links > 0:
            self.expired_links -= 1
            return EXPIRED_TTL
        return ttl

    def _store(self, task_id: str, filename: str, content: bytes | Path) -> None:
        """Serve ``content`` (bytes, or a file read when asked for) as the task's ``filename``."""
        if isinstance(content, Path):
            self._emu.files.put(task_id, filename, path=content)
        else:
            self._emu.files.put(task_id, filename, data=content)

    def _result_link(self, task_id: str, filename: str, content: bytes | Path, ttl: float) -> str:
        """Store a finished task's result file and sign a link to it (stale when asked for)."""
        self._store(task_id, filename, content)
        return self._emu.files.url(task_id, filename, self._link_ttl(ttl))
