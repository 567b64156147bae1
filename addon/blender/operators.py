"""Operators: thin wrappers that read the panel, call jobs.*, and report. Each has a label and a
description so that operator search (F3) finds it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import bpy
from bpy.props import StringProperty

from ..core.errors import MarionetteError
from ..core.runner import InputFile
from . import jobs, session, settings, sources


def _settings(context: bpy.types.Context) -> Any:
    return context.scene.marionette  # type: ignore[attr-defined]


class MARIONETTE_OT_generate(bpy.types.Operator):
    """Send the image to the provider and import the rigged, animated character when it is ready"""

    bl_idname = "marionette.generate"
    bl_label = "Generate Rigged Character"
    bl_options = {"REGISTER"}

    filepath: StringProperty(  # type: ignore[valid-type]
        name="Image File", subtype="FILE_PATH", options={"SKIP_SAVE"},
        description="Send this image file instead of the panel's image source")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        current = session.get_or_none()
        if current is None or getattr(context.scene, "marionette", None) is None:
            return False
        problem = current.problem(_settings(context).provider)
        if problem:
            cls.poll_message_set(problem)
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        props = _settings(context)
        provider = session.get().providers[props.provider]
        try:
            name, data = sources.resolve(context, props, self.filepath)
            chosen = getattr(props, f"{provider.id}_animations", set()) if props.rig else set()
            animations = [c for c in provider.common_animations if str(c.action_id) in chosen]
            options = settings.options_of(props, provider)
            job = jobs.submit(provider.id, kind="image", name=props.job_name or Path(name).stem,
                              files=[InputFile(name, data)], rig=props.rig and provider.supports_rig,
                              animations=animations, options=options)
        except MarionetteError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        cost = provider.cost(job.request)
        spent = f", about {cost:g} credits" if cost is not None else ""
        self.report({"INFO"}, f"Marionette: {job.request.name} sent to {provider.label}{spent}")
        return {"FINISHED"}


class _JobOperator(bpy.types.Operator):
    job_id: StringProperty(name="Job", options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return session.get_or_none() is not None

    def run(self, context: bpy.types.Context) -> str:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        if self.job_id not in session.get().store:
            self.report({"ERROR"}, f"No Marionette job {self.job_id!r}")
            return {"CANCELLED"}
        try:
            message = self.run(context)
        except MarionetteError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}


class MARIONETTE_OT_cancel_job(_JobOperator):
    """Stop a Marionette job: polling stops, unfinished tasks are cancelled on the provider, nothing is imported"""

    bl_idname = "marionette.cancel_job"
    bl_label = "Cancel Marionette Job"

    def run(self, context: bpy.types.Context) -> str:
        jobs.cancel(self.job_id)
        return "Marionette: job cancelled"


class MARIONETTE_OT_import_job(_JobOperator):
    """Import a finished Marionette job into the current scene at the 3D cursor"""

    bl_idname = "marionette.import_job"
    bl_label = "Import Marionette Result"
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context: bpy.types.Context) -> str:
        job = jobs.import_job(self.job_id, context)
        return f"Marionette: imported {job.collection} ({len(job.actions)} animations)"


class MARIONETTE_OT_forget_job(_JobOperator):
    """Remove a finished Marionette job from the list; its downloaded files stay in the user folder"""

    bl_idname = "marionette.forget_job"
    bl_label = "Remove Marionette Job From List"

    def run(self, context: bpy.types.Context) -> str:
        jobs.forget(self.job_id)
        return "Marionette: job removed from the list"


class MARIONETTE_OT_open_job_folder(_JobOperator):
    """Open the folder holding a Marionette job's input and downloaded results"""

    bl_idname = "marionette.open_job_folder"
    bl_label = "Open Marionette Job Folder"

    def run(self, context: bpy.types.Context) -> str:
        folder = session.get().store.job_dir(self.job_id)
        if sys.platform.startswith("win"):
            os.startfile(folder)  # type: ignore[attr-defined]
        else:
            subprocess.Popen(["open" if sys.platform == "darwin" else "xdg-open", str(folder)])
        return f"Marionette: {folder}"


classes = (
    MARIONETTE_OT_generate,
    MARIONETTE_OT_cancel_job,
    MARIONETTE_OT_import_job,
    MARIONETTE_OT_forget_job,
    MARIONETTE_OT_open_job_folder,
)

