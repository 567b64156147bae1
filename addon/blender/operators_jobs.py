"""Operators of the job list: cancel, import, retry, copy the task id, recover by task id, remove, open the
folder, and use a result's pictures."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import StringProperty

from . import session
from .lazy import lazy_import
from .operators import _run_and_report

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

    from . import jobs
else:  # loaded on first use, not when Marionette is enabled
    jobs = lazy_import(".jobs", __package__)


class MARIONETTE_OT_use_image(bpy.types.Operator):
    """Use a picture Marionette loaded as a reference image in the 3D Viewport, or behind the scene camera"""

    bl_idname = "marionette.use_image"
    bl_label = "Use Picture"

    image: StringProperty(options={"SKIP_SAVE"})  # type: ignore[valid-type]
    target: bpy.props.EnumProperty(items=(  # type: ignore[valid-type]
        ("REFERENCE", "Reference Image", "An image empty at the 3D cursor"),
        ("CAMERA", "Camera Background", "Behind the scene camera's view")))

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        if self.image not in bpy.data.images:
            self.report({"ERROR"}, f"No image {self.image!r} in this file")
            return {"CANCELLED"}

        def use() -> str:
            if self.target == "REFERENCE":
                jobs.use_as_reference(self.image, context)
                return f"Marionette: {self.image} is a reference image at the 3D cursor"
            jobs.use_as_camera_background(self.image, context)
            return f"Marionette: {self.image} is behind the scene camera"

        return _run_and_report(self, use)

class _JobOperator(bpy.types.Operator):
    job_id: StringProperty(name="Job", options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return session.active() is not None

    def run(self, context: bpy.types.Context) -> str:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        if self.job_id not in session.get().store:
            self.report({"ERROR"}, f"No Marionette job {self.job_id!r}")
            return {"CANCELLED"}
        return _run_and_report(self, lambda: self.run(context))


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


class MARIONETTE_OT_retry_job(_JobOperator):
    """Run a failed or cancelled Marionette job again: finished provider tasks are reused, failed ones are sent
    again (and may cost credits)"""

    bl_idname = "marionette.retry_job"
    bl_label = "Retry Marionette Job"

    def run(self, context: bpy.types.Context) -> str:
        job = jobs.retry(self.job_id)
        # What the retry reuses and what it will cost ("Retry reuses the model (already paid); ...").
        return f"Marionette: retrying {job.request.name}" + (f". {job.notice}" if job.notice else "")


class MARIONETTE_OT_copy_task_id(_JobOperator):
    """Copy the provider task ids of a Marionette job to the clipboard"""

    bl_idname = "marionette.copy_task_id"
    bl_label = "Copy Marionette Task ID"

    def run(self, context: bpy.types.Context) -> str:
        job = session.get().store.get(self.job_id)
        ids = [t.remote_id for t in job.tasks if t.remote_id]
        if not ids:
            return "Marionette: this job has no provider task yet"
        context.window_manager.clipboard = "\n".join(ids)
        return f"Marionette: copied {', '.join(ids)}"


def _recover_providers(_self: Any, _context: Any) -> list[tuple[str, str, str]]:
    current = session.active()
    items = [(p.id, p.label, f"A {p.label} task id") for p in (current.providers.values() if current else ())
             if p.can_recover]
    _recover_providers.cache = items  # type: ignore[attr-defined]  # Blender needs the strings kept alive
    return items


class MARIONETTE_OT_recover_task(bpy.types.Operator):
    """Download and import the result of a task generated elsewhere (web app, another machine), by its task id,
    while the provider still keeps it"""

    bl_idname = "marionette.recover_task"
    bl_label = "Recover by Task ID"

    provider: bpy.props.EnumProperty(name="Provider", items=_recover_providers)  # type: ignore[valid-type]
    task_id: StringProperty(name="Task ID", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    name: StringProperty(name="Name", options={"SKIP_SAVE"},  # type: ignore[valid-type]
                         description="Name of the imported collection")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return session.active() is not None

    def invoke(self, context: bpy.types.Context, event: Any) -> set[OperatorReturnItems]:
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        def recover() -> str:
            job = jobs.recover(self.provider, self.task_id, self.name)
            return f"Marionette: recovering {job.request.options['task_id']}"

        return _run_and_report(self, recover)


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
    MARIONETTE_OT_use_image,
    MARIONETTE_OT_cancel_job,
    MARIONETTE_OT_import_job,
    MARIONETTE_OT_forget_job,
    MARIONETTE_OT_retry_job,
    MARIONETTE_OT_copy_task_id,
    MARIONETTE_OT_recover_task,
    MARIONETTE_OT_open_job_folder,
)
