"""Operators: thin wrappers that read the panel, call jobs.*, and report. Each has a label and a
description so that operator search (F3) finds it.

This module holds what they share (running an operator's work and reporting it); the operators are in
operators_generate.py (sending work to a provider), operators_jobs.py (the job list and its results)
and operators_library.py (the animation library)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import bpy

from ..core.errors import MarionetteError
from ..core.redaction import redact  # stdlib only: cheap at start
from . import session

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


log = logging.getLogger(__name__)


def _settings(context: bpy.types.Context) -> Any:
    return context.scene.marionette


# What an operator's work says when it went well: a message for the status bar, or (level, message)
# when the artist must notice it ("WARNING": the input was changed to fit).
Said = str | tuple[Literal["INFO", "WARNING"], str] | None


def _run_and_report(op: bpy.types.Operator, action: Callable[[], Said]) -> set[OperatorReturnItems]:
    """Run an operator's work: its message goes to the status bar and the Info log; a MarionetteError
    (bad input, missing key, a provider's refusal) becomes an error report, never a traceback dialog.
    Errors and warnings also stay in the panel until the next action."""
    try:
        said = action()
    except MarionetteError as exc:
        op.report({"ERROR"}, str(exc))
        _tell_panel("ERROR", str(exc))
        return {"CANCELLED"}
    except Exception as exc:  # a bug of ours: a clear message and the traceback in the log, not a dialog
        log.exception("%s failed", op.bl_idname)
        detail = redact(str(exc))
        text = f"Marionette could not do this ({exc.__class__.__name__}: {detail}); see the system console"
        op.report({"ERROR"}, text)
        _tell_panel("ERROR", text)
        return {"CANCELLED"}
    level, message = said if isinstance(said, tuple) else ("INFO", said or "")
    if message:
        op.report({level}, message)
    _tell_panel(level if level != "INFO" else None, message)
    return {"FINISHED"}


def _tell_panel(level: str | None, message: str) -> None:
    current = session.active()
    if current is not None:
        current.panel_message = (level, message) if level else None

class MARIONETTE_OT_dismiss_message(bpy.types.Operator):
    """Hide the message Marionette shows in the panel"""

    bl_idname = "marionette.dismiss_message"
    bl_label = "Dismiss Marionette Message"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        _tell_panel(None, "")
        return {"FINISHED"}


classes = (MARIONETTE_OT_dismiss_message,)
