"""The session's background (addon/core/background.py): work off the main thread, results handed back
only by drain(), on the thread that drains; lanes in order and independent of each other."""

from __future__ import annotations

import threading
import time

import pytest

from addon.core.background import Background, Outcome


def test_results_are_handed_back_only_by_drain_on_the_draining_thread() -> None:
    bg = Background("test")
    got: list[tuple[int, str]] = []
    ran_on: list[str] = []

    def work(n: int) -> int:
        ran_on.append(threading.current_thread().name)
        return n * 10

    def done(outcome: Outcome[int]) -> None:
        got.append((outcome.get(), threading.current_thread().name))

    for n in range(3):
        assert bg.submit("lane", lambda n=n: work(n), done)  # type: ignore[misc]
    assert bg.wait("lane", 10)
    assert got == []  # nothing applied until the main thread drains
    assert bg.drain() == 3
    assert got == [(0, "MainThread"), (10, "MainThread"), (20, "MainThread")]  # in order, on this thread
    assert ran_on and all(name == "test-lane" for name in ran_on)
    assert bg.drain() == 0 and not bg.busy()
    time.sleep(0.05)
    assert not any(t.name == "test-lane" for t in threading.enumerate())  # the lane's thread ended when idle


def test_a_blocked_lane_does_not_hold_up_another() -> None:
    bg = Background("test")
    release = threading.Event()
    got: list[str] = []
    bg.submit("slow", lambda: release.wait(10) and "slow", lambda o: got.append(str(o.get())))
    bg.submit("fast", lambda: "fast", lambda o: got.append(str(o.get())))
    assert bg.wait("fast", 10)
    assert bg.busy("slow") and not bg.busy("fast") and bg.busy()
    bg.drain()
    assert got == ["fast"]
    release.set()
    assert bg.wait(None, 10)
    bg.drain()
    assert got == ["fast", "slow"]


def test_errors_reach_the_callback_and_a_failing_callback_spares_the_others() -> None:
    bg = Background("test")
    outcomes: list[Outcome[int]] = []

    def boom() -> int:
        raise ValueError("no balance")

    def bad_callback(_o: Outcome[int]) -> None:
        raise RuntimeError("a bug in the panel code")

    bg.submit("a", boom, outcomes.append)
    bg.submit("a", lambda: 1, bad_callback)
    bg.submit("a", lambda: 2, outcomes.append)
    assert bg.wait("a", 10)
    assert bg.drain() == 3
    assert [o.error.__class__ for o in outcomes] == [ValueError, type(None)] and outcomes[1].get() == 2
    with pytest.raises(ValueError, match="no balance"):
        outcomes[0].get()


def test_stop_drops_queued_work_and_takes_no_more() -> None:
    bg = Background("test")
    release = threading.Event()
    ran: list[str] = []
    bg.submit("a", lambda: release.wait(10), None)
    bg.submit("a", lambda: ran.append("queued"), None)
    bg.stop()
    release.set()
    assert bg.wait("a", 10)
    assert ran == [] and bg.drain() == 0
    assert bg.submit("a", lambda: ran.append("late"), None) is False
    assert not bg.busy()
