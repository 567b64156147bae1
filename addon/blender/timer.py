"""The single main-thread pump: the only code that writes Blender data for running jobs.

It drains the runner's events within a small time budget, applies the results of the session's other
background work (balances, the animation library, previews), keeps the runner's view of online access
fresh, resumes unfinished jobs once, redraws the panel, and imports finished jobs of this session.
Registered once, persistently, at register (`start`); `bpy.app.timers` do not fire in background mode,
so `api.pump` / `api.wait` call `pump()` themselves.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import TYPE_CHECKING

import bpy

from ..core.errors import MarionetteError
from . import library, retarget_jobs, session
from .lazy import lazy_import

if TYPE_CHECKING:
    from . import jobs
else:  # the job logic loads on first use, not when Marionette is enabled
    jobs = lazy_import(".jobs", __package__)

log = logging.getLogger(__name__)

BUDGET_SECONDS = 0.002
BUSY_INTERVAL = 0.1
IDLE_INTERVAL = 1.0


def pump() -> float | None:
    """One tick. Never raises: Blender drops a timer that raises, and with it every later import.

    The first tick (shortly after Blender has started, never during its start) starts the session:
    that loads the core, reads the journal and resumes the jobs left running at the last quit."""
    try:
        current = session.get()
    except RuntimeError:  # Marionette was disabled
        return None
    try:
        return _tick(current)
    except Exception:
        log.exception("Marionette's timer hit an error; it keeps running")
        return BUSY_INTERVAL


def _tick(current: session.Session) -> float:
    current.runner.online_access = bpy.app.online_access
    if not current.resumed:
        current.resume_jobs()
    current.sync()  # other Blender windows on the same user folder
    changed: set[str] = set()
    deadline = time.perf_counter() + BUDGET_SECONDS
    while time.perf_counter() < deadline:
        try:
            changed.add(current.runner.events.get_nowait())
        except queue.Empty:
            break
    if current.background.drain() | library.pump():  # balances, the library, previews: results applied here
        changed.add("panel")
    if changed:
        _redraw()
    _import_ready(current)
    if retarget_jobs.pump():  # Animate My Rig: retarget what a job just imported
        _redraw()
    busy = current.runner.running_count() > 0 or not current.runner.events.empty()
    return BUSY_INTERVAL if busy else IDLE_INTERVAL


def _import_ready(current: session.Session) -> None:
    prefs = current.preferences()
    if prefs is not None and not getattr(prefs, "auto_import", True):
        return
    # A look at the stored jobs without copying them: this runs every tick, with any number of jobs.
    for job_id in sorted(current.auto_import):
        job = current.store.peek(job_id)
        if job is None or not job.ready_to_import or job.cancel_requested:
            continue
        name = job.request.name
        try:
            jobs.import_job(job_id)  # takes the job off the auto-import list first: a failure is not retried
        except MarionetteError as exc:
            log.error("Marionette could not import %s: %s", name, exc)
        except Exception as exc:  # a bug of ours or of an importer: said on the job, the files kept
            log.exception("Marionette could not import %s", name)
            jobs.record_import_error(job_id, f"The import failed unexpectedly ({exc.__class__.__name__}: {exc}); "
                                             "the files are kept: press Import to try again")
        return  # one import per tick keeps the interface responsive


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


# The first tick waits this long, so that the session (core, journal, resumed jobs) starts once Blender is
# up, not while it starts.
FIRST_TICK_DELAY = 1.0


def start() -> None:
    """Register the pump (at register; it stays registered across file loads until unregister)."""
    if not bpy.app.timers.is_registered(pump):
        bpy.app.timers.register(pump, first_interval=FIRST_TICK_DELAY, persistent=True)


def stop() -> None:
    if bpy.app.timers.is_registered(pump):
        bpy.app.timers.unregister(pump)
