"""The one way Marionette runs short work off the main thread (jobs excepted: the runner runs those).

Balances, the animation library's fetch and the library's previews go through a :class:`Background`
owned by the session. Work is submitted on a *lane*: the work of one lane runs in order on one daemon
thread (started when the lane gets work, ended when it has none left), different lanes run at the same
time. The work itself never touches bpy. What it returned (or raised) is kept until the main thread
calls :meth:`Background.drain` (the timer pump does, every tick), which hands each result to the
callback given at submit, on the main thread, in the order the work finished.

Plain Python: nothing here imports bpy, so it is unit-tested without Blender.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a piece of work returned, or the exception it raised."""

    value: T | None = None
    error: BaseException | None = None

    def get(self) -> T:
        """The value, or the work's exception raised again."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # None is a value when the work returned None


@dataclass
class _Work:
    run: Callable[[], Any]
    done: Callable[[Outcome[Any]], None] | None


class Background:
    """Lanes of work off the main thread; finished results handed back by :meth:`drain` (main thread)."""

    def __init__(self, name: str = "marionette") -> None:
        self.name = name
        self._lock = threading.Condition()
        self._queued: dict[str, deque[_Work]] = {}
        self._running: set[str] = set()  # lanes whose thread is working (or about to hand a result over)
        self._finished: deque[tuple[_Work, Outcome[Any]]] = deque()
        self._stopped = False

    def submit(self, lane: str, run: Callable[[], T], done: Callable[[Outcome[T]], None] | None = None) -> bool:
        """Queue `run` on `lane`; `done(outcome)` is called by a later :meth:`drain`. False (nothing queued)
        once stopped."""
        with self._lock:
            if self._stopped:
                return False
            self._queued.setdefault(lane, deque()).append(_Work(run, done))  # type: ignore[arg-type]
            if lane in self._running:
                return True
            self._running.add(lane)
        threading.Thread(target=self._lane, args=(lane,), name=f"{self.name}-{lane}", daemon=True).start()
        return True

    def busy(self, lane: str | None = None) -> bool:
        """Work queued or running on `lane` (on any lane when None)."""
        with self._lock:
            if lane is None:
                return bool(self._running)
            return lane in self._running

    def wait(self, lane: str | None = None, timeout: float = 30.0) -> bool:
        """For scripts and tests: block until `lane` (every lane when None) has no work left; True if so.
        The results still need a :meth:`drain`."""
        with self._lock:
            return self._lock.wait_for(lambda: not (self._running if lane is None else lane in self._running),
                                       timeout)

    def drain(self) -> int:
        """Main thread: call the callbacks of the finished work. How many there were."""
        count = 0
        while True:
            try:
                work, outcome = self._finished.popleft()
            except IndexError:
                return count
            count += 1
            if work.done is None:
                continue
            try:
                work.done(outcome)
            except Exception:  # one callback's bug must not keep the others' results from the panel
                log.exception("a background result could not be applied")

    def stop(self) -> None:
        """Take no more work and drop what is queued; work already running ends on its own."""
        with self._lock:
            self._stopped = True
            self._queued.clear()
            self._finished.clear()

    def _lane(self, lane: str) -> None:
        while True:
            with self._lock:
                queue = self._queued.get(lane)
                if not queue:
                    self._queued.pop(lane, None)
                    self._running.discard(lane)
                    self._lock.notify_all()
                    return
                work = queue.popleft()
            try:
                outcome: Outcome[Any] = Outcome(value=work.run())
            except BaseException as exc:  # handed to the main thread, raised there by Outcome.get
                outcome = Outcome(error=exc)
            with self._lock:
                if not self._stopped:
                    self._finished.append((work, outcome))
