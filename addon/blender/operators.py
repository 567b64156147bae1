"""Operators: thin wrappers that read the panel, call jobs.*, and report. Each has a label and a
description so that operator search (F3) finds it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import bpy
from bpy.props import StringProperty

from ..core.errors import MarionetteError
from . import library, session, settings
from .lazy import lazy_import

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

    from ..core import http, runner
    from . import jobs, sources
else:  # loaded on first use, not when Marionette is enabled
    http = lazy_import("..core.http", __package__)
    runner = lazy_import("..core.runner", __package__)
    jobs = lazy_import(".jobs", __package__)
    sources = lazy_import(".sources", __package__)

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
        detail = http.redact(str(exc))
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
        current = session.active()
        if current is None or getattr(context.scene, "marionette", None) is None:
            return False
        problem = current.problem(_settings(context).provider)
        if problem:
            cls.poll_message_set(problem)
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        kind = "image" if self.filepath else _settings(context).input
        return _generate(self, context, kind, self.filepath)


def wants_rig(provider: Any, props: Any, kind: str) -> bool:
    """Rig when the provider's result is always a character, or when the artist asked and it can."""
    if not provider.supports_rig:
        return False
    if "model" not in provider.outputs or kind == "mesh":
        return True
    return bool(props.rig)


def _generate(op: bpy.types.Operator, context: bpy.types.Context, kind: str,
              filepath: str = "") -> set[OperatorReturnItems]:
    props = _settings(context)
    provider = session.get().providers[props.provider]
    rig = wants_rig(provider, props, kind)
    animations = library.chosen(context) if rig else []
    options = settings.options_of(props, provider, kind)

    def send() -> Said:
        if kind == "mesh":
            height_option = provider.rig_height_option
            group = getattr(props, f"{provider.id}_options")
            height = (None if props.mesh_height_auto or not height_option
                      else float(getattr(group, height_option)))
            job = jobs.submit_mesh(context, list(context.selected_objects), provider_id=provider.id,
                                   name=props.job_name, facing=props.mesh_facing, height=height,
                                   hide_original=props.hide_original, animations=animations, options=options,
                                   in_place=props.in_place)
        elif kind == "text":
            prompt = props.prompt.strip()
            job = jobs.submit(provider.id, kind="text", name=props.job_name or prompt[:40], prompt=prompt,
                              rig=rig, animations=animations, options=options, height=props.fit_height or None,
                              in_place=props.in_place)
        else:
            if kind == "multi_image":
                images = sources.resolve_many(context, props)
            else:
                images = [sources.resolve(context, props, filepath)]
            files = [runner.InputFile(name, data) for name, data in images]
            job = jobs.submit(provider.id, kind="multi_image" if len(files) > 1 else "image",
                              name=props.job_name or Path(files[0].name).stem, files=files, rig=rig,
                              animations=animations, options=options, height=props.fit_height or None,
                              in_place=props.in_place)
        cost = provider.cost(job.request)
        spent = f", about {cost:g} credits" if cost is not None else ""
        sent = f"Marionette: {job.request.name} sent to {provider.label}{spent}"
        if job.notice:  # the input was changed to fit (downscaled, converted): a warning, so it is seen
            return "WARNING", f"{sent} ({job.notice})"
        return sent

    return _run_and_report(op, send)


class MARIONETTE_OT_rig_selected_mesh(bpy.types.Operator):
    """Send the selected mesh(es) to be rigged and animated; the result arrives in place, the originals hidden"""

    bl_idname = "marionette.rig_selected_mesh"
    bl_label = "Rig & Animate Selected Mesh"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        current = session.active()
        if current is None or getattr(context.scene, "marionette", None) is None:
            return False
        if not context.selected_objects:
            cls.poll_message_set("Select the character's mesh first")
            return False
        problem = current.problem(_mesh_rigger(current, context).id)
        if problem:
            cls.poll_message_set(problem)
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        _settings(context).provider = _mesh_rigger(session.get(), context).id
        return _generate(self, context, "mesh")


def _mesh_rigger(current: session.Session, context: bpy.types.Context) -> Any:
    """The provider the panel has chosen when it rigs meshes, else the first that does."""
    chosen = current.providers.get(_settings(context).provider)
    return chosen if chosen is not None and chosen.can("rig_mesh") else current.provider_for("rig_mesh")


def _animator(current: session.Session, armature: bpy.types.Object) -> Any:
    """The provider that adds animations to this character: the one that rigged it, where recorded."""
    return current.provider_for("add_animations", jobs.rig_provider(armature))


class MARIONETTE_OT_add_animations(bpy.types.Operator):
    """Add the animations chosen in the library to the selected character Marionette rigged, without rigging it again"""

    bl_idname = "marionette.add_animations"
    bl_label = "Add Animations to Character"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        current = session.active()
        if current is None:
            return False
        armature = context.active_object
        if armature is None or not jobs.rigged_by_marionette(armature):
            cls.poll_message_set("Select a character that Marionette rigged")
            return False
        problem = current.problem(_animator(current, armature).id)
        if problem:
            cls.poll_message_set(problem)
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        props = _settings(context)
        armature = context.active_object
        assert armature is not None  # poll checked
        provider = _animator(session.get(), armature)

        def send() -> str:
            job = jobs.submit_add_animations(armature, library.chosen(context), provider_id=provider.id,
                                             options=settings.options_of(props, provider, "armature"),
                                             in_place=props.in_place)
            return (f"Marionette: {len(job.request.animations)} animations requested for {armature.name}, "
                    f"{provider.cost(job.request):g} credits")

        return _run_and_report(self, send)


class MARIONETTE_OT_refresh_animation_library(bpy.types.Operator):
    """Fetch the provider's animation library again (it is cached on disk with its date)"""

    bl_idname = "marionette.refresh_animation_library"
    bl_label = "Refresh Animation Library"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        current = session.active()
        if current is None:
            return False
        cfg = current.config(library.catalog_provider(current).id)
        from ..core import netpolicy

        if not netpolicy.is_loopback_url(cfg.base_url) and not bpy.app.online_access:
            cls.poll_message_set("Online access is off. " + netpolicy.ONLINE_ACCESS_HINT)
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        library.refresh()
        return {"FINISHED"}


class MARIONETTE_OT_select_animations(bpy.types.Operator):
    """Choose every animation the list shows, or none"""

    bl_idname = "marionette.select_animations"
    bl_label = "Choose Animations"

    select: bpy.props.BoolProperty(name="Select", default=True)  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        lib = library.library(context)
        for item in lib.items:
            if not self.select:
                item.selected = False
            elif library.visible(item, lib.search, lib.category):
                item.selected = True
        return {"FINISHED"}


class MARIONETTE_OT_add_view_images(bpy.types.Operator):
    """Add image files (views of one object from different angles) to the list sent as several images"""

    bl_idname = "marionette.add_view_images"
    bl_label = "Add View Images"

    directory: StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    files: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement,  # type: ignore[valid-type]
                                        options={"SKIP_SAVE"})
    filter_image: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    def invoke(self, context: bpy.types.Context, event: Any) -> set[OperatorReturnItems]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        views = _settings(context).view_images
        for item in self.files:
            if item.name:
                views.add().filepath = str(Path(self.directory) / item.name)
        return {"FINISHED"}


class MARIONETTE_OT_remove_view_image(bpy.types.Operator):
    """Remove an image from the list of views"""

    bl_idname = "marionette.remove_view_image"
    bl_label = "Remove View Image"

    index: bpy.props.IntProperty(options={"SKIP_SAVE"})  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        views = _settings(context).view_images
        if 0 <= self.index < len(views):
            views.remove(self.index)
        return {"FINISHED"}


class MARIONETTE_OT_fill_option(bpy.types.Operator):
    """Fill a provider option from the scene (for example a bounding box from the selected objects)"""

    bl_idname = "marionette.fill_option"
    bl_label = "From Selection"

    provider: StringProperty(options={"SKIP_SAVE"})  # type: ignore[valid-type]
    option: StringProperty(options={"SKIP_SAVE"})  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        provider = session.get().providers[self.provider]
        spec = next(s for s in provider.options if s.name == self.option)
        if spec.fill_from == "selection_bbox":
            objects = [o for o in context.selected_objects if o.type in ("MESH", "CURVE", "SURFACE", "FONT", "EMPTY")]
            if not objects:
                self.report({"ERROR"}, "Select the object whose proportions the model should have")
                return {"CANCELLED"}
            size = [max(o.dimensions[i] for o in objects) for i in range(3)]
            largest = max(size) or 1.0
            # Rodin reads width (Y), height (Z), length (X), as proportions: scale the largest to 100.
            yzx = [max(1, round(100 * size[i] / largest)) for i in (1, 2, 0)]
            setattr(getattr(_settings(context), f"{provider.id}_options"), spec.name, ", ".join(map(str, yzx)))
        return {"FINISHED"}


class MARIONETTE_OT_check_balance(bpy.types.Operator):
    """Ask the provider how many credits are left on the account"""

    bl_idname = "marionette.check_balance"
    bl_label = "Check Balance"

    provider: StringProperty(options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        current = session.active()
        props = getattr(context.scene, "marionette", None)
        if current is None or props is None:
            return False
        problem = current.problem(props.provider)
        if problem:
            cls.poll_message_set(problem)
        return problem is None

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        from . import account

        account.refresh(self.provider or _settings(context).provider)
        return {"FINISHED"}


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


class MARIONETTE_OT_dismiss_message(bpy.types.Operator):
    """Hide the message Marionette shows in the panel"""

    bl_idname = "marionette.dismiss_message"
    bl_label = "Dismiss Marionette Message"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        _tell_panel(None, "")
        return {"FINISHED"}


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
    MARIONETTE_OT_generate,
    MARIONETTE_OT_dismiss_message,
    MARIONETTE_OT_rig_selected_mesh,
    MARIONETTE_OT_add_view_images,
    MARIONETTE_OT_remove_view_image,
    MARIONETTE_OT_fill_option,
    MARIONETTE_OT_check_balance,
    MARIONETTE_OT_use_image,
    MARIONETTE_OT_add_animations,
    MARIONETTE_OT_refresh_animation_library,
    MARIONETTE_OT_select_animations,
    MARIONETTE_OT_cancel_job,
    MARIONETTE_OT_import_job,
    MARIONETTE_OT_forget_job,
    MARIONETTE_OT_retry_job,
    MARIONETTE_OT_copy_task_id,
    MARIONETTE_OT_recover_task,
    MARIONETTE_OT_open_job_folder,
)

