"""Registers every Blender class of the extension and the pump; stops the session at unregister.

Registering only registers: the modules imported here are light (their heavy parts load on first use, see
lazy.py), and the session (core, journal, threads) starts on first use or at the pump's first tick."""

from __future__ import annotations

import bpy

from . import (
    engine_export,
    library,
    operators,
    operators_generate,
    operators_jobs,
    operators_library,
    preferences,
    retarget_jobs,
    retarget_ui,
    session,
    settings,
    thumbnails,
    timer,
    ui,
)

_classes = (*preferences.classes, *settings.classes, *library.classes, *operators.classes,
            *operators_generate.classes, *operators_library.classes, *operators_jobs.classes, *engine_export.classes,
            *ui.classes, *retarget_ui.classes, *retarget_jobs.classes)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(_classes)


def register() -> None:
    session.enable()
    _register_classes()
    settings.register_properties()
    library.register_properties()
    engine_export.register_menu()
    retarget_ui.register_properties()
    timer.start()  # the one pump, registered once (persistent) for the whole time Marionette is enabled


def unregister() -> None:
    # Workers stop first (jobs stay in the journal and resume at the next start), then the pump.
    session.stop()
    timer.stop()
    engine_export.unregister_menu()
    library.unregister_properties()
    retarget_ui.unregister_properties()
    retarget_jobs.reset()
    settings.unregister_properties()
    _unregister_classes()
    thumbnails.clear()
