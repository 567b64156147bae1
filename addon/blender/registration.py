"""Registers every Blender class of the extension and starts/stops the session and the pump."""

from __future__ import annotations

import bpy

from . import (
    account,
    library,
    operators,
    preferences,
    retarget_jobs,
    retarget_ui,
    session,
    settings,
    thumbnails,
    timer,
    ui,
)

_classes = (*preferences.classes, *settings.classes, *library.classes, *operators.classes, *ui.classes,
            *retarget_ui.classes, *retarget_jobs.classes)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(_classes)


def register() -> None:
    session.start()
    _register_classes()
    settings.register_properties()
    library.register_properties()
    retarget_ui.register_properties()
    timer.ensure_running()


def unregister() -> None:
    # Workers stop first (jobs stay in the journal and resume at the next start), then the pump.
    session.stop()
    timer.stop()
    library.unregister_properties()
    retarget_ui.unregister_properties()
    retarget_jobs.reset()
    settings.unregister_properties()
    _unregister_classes()
    thumbnails.clear()
    account.reset()
