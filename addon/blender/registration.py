"""Registers every Blender class of the extension and starts/stops the session and the pump."""

from __future__ import annotations

import bpy

from . import account, engine_export, library, operators, preferences, session, settings, thumbnails, timer, ui

_classes = (*preferences.classes, *settings.classes, *library.classes, *operators.classes, *engine_export.classes,
            *ui.classes)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(_classes)


def register() -> None:
    session.start()
    _register_classes()
    settings.register_properties()
    library.register_properties()
    engine_export.register_menu()
    timer.ensure_running()


def unregister() -> None:
    # Workers stop first (jobs stay in the journal and resume at the next start), then the pump.
    session.stop()
    timer.stop()
    engine_export.unregister_menu()
    library.unregister_properties()
    settings.unregister_properties()
    _unregister_classes()
    thumbnails.clear()
    account.reset()
