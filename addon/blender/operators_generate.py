"""Operators that send work to a provider: generate from the panel's input, rig the selected mesh, add
animations to a character, and the panel's helpers for them (view images, options, balance)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import StringProperty

from . import library, session, settings
from .lazy import lazy_import
from .operators import Said, _run_and_report, _settings

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

    from ..core import runner
    from . import account, jobs, sources
else:  # loaded on first use, not when Marionette is enabled
    runner = lazy_import("..core.runner", __package__)
    account = lazy_import(".account", __package__)
    jobs = lazy_import(".jobs", __package__)
    sources = lazy_import(".sources", __package__)


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
        account.refresh(self.provider or _settings(context).provider)
        return {"FINISHED"}


classes = (
    MARIONETTE_OT_generate,
    MARIONETTE_OT_rig_selected_mesh,
    MARIONETTE_OT_add_view_images,
    MARIONETTE_OT_remove_view_image,
    MARIONETTE_OT_fill_option,
    MARIONETTE_OT_check_balance,
    MARIONETTE_OT_add_animations,
)
