"""The "Marionette" tab of the 3D Viewport sidebar. Drawing only: every action is an operator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bpy

from . import library, session, settings, thumbnails
from .lazy import lazy_import

if TYPE_CHECKING:
    from ..core import models
    from ..core.models import Job
    from ..core.providers.base import OptionSpec, Provider
    from . import account, jobs, sources
else:  # loaded by the first draw, not when Marionette is enabled
    models = lazy_import("..core.models", __package__)
    account = lazy_import(".account", __package__)
    jobs = lazy_import(".jobs", __package__)
    sources = lazy_import(".sources", __package__)

# By JobState value (a str enum), so that drawing needs no import until a job is shown.
STATE_ICONS = {
    "PENDING": "TIME",
    "RUNNING": "PLAY",
    "SUCCEEDED": "CHECKMARK",
    "FAILED": "ERROR",
    "CANCELED": "CANCEL",
}
MAX_JOBS_SHOWN = 12


class _Panel(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Marionette"


class MARIONETTE_PT_main(_Panel):
    bl_idname = "MARIONETTE_PT_main"
    bl_label = "Marionette"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        current = session.active()
        props = getattr(context.scene, "marionette", None)
        if current is None or props is None:
            layout.label(text="Marionette is not enabled", icon="ERROR")
            return
        provider = current.providers[props.provider]
        layout.prop(props, "provider")
        if current.store.warning:
            layout.label(text=current.store.warning, icon="ERROR")
        if len(provider.inputs - {"armature"}) > 1:
            layout.prop(props, "input")
        kind = props.input if props.input in provider.inputs else "image"

        if kind == "mesh":
            _draw_mesh_source(layout, context, props)
        elif kind == "text":
            layout.prop(props, "prompt", text="")
        elif kind == "multi_image":
            _draw_views(layout, context, props)
        else:
            col = layout.column(align=True)
            col.prop(props, "source")
            if props.source in ("AUTO", "FILE"):
                col.prop(props, "image_path", text="")
            found, text = sources.describe(context, props)
            col.label(text=text, icon="IMAGE_DATA" if found else "INFO")
        layout.prop(props, "job_name")

        box = layout.box()
        box.label(text=f"{provider.label} Options")
        _draw_options(box, getattr(props, f"{provider.id}_options"), provider, kind)

        if provider.supports_rig and "model" in provider.outputs and kind != "mesh":
            layout.prop(props, "rig")
        row = layout.row(align=True)
        if kind != "mesh":  # a mesh's height is the one sent for rigging
            row.prop(props, "fit_height")
        row.prop(props, "in_place")

        problem = current.problem(provider.id)
        if problem:
            layout.label(text=problem, icon="ERROR")
        if status := provider.key_status(current.config(provider.id).api_key):
            layout.label(text=status, icon="TIME")
        cost_text, added = _estimate(context, props, provider, kind)
        row = layout.row(align=True)
        row.label(text=cost_text)
        for step in added:  # what Marionette adds on its own, and what it costs
            _wrapped(layout.column(), step, "INFO")
        op = row.operator("marionette.check_balance", text="", icon="FUND")
        op.provider = provider.id
        if (balance := account.text(provider.id)) is not None:
            layout.label(text=balance)
        if kind == "mesh":
            layout.operator("marionette.rig_selected_mesh", icon="ARMATURE_DATA")
        else:
            layout.operator("marionette.generate", icon="ARMATURE_DATA")
        if jobs.rigged_by_marionette(context.active_object):
            layout.operator("marionette.add_animations", icon="ACTION")
        elif context.active_object is not None and context.active_object.type == "ARMATURE":
            layout.operator("marionette.animate_my_rig", icon="ACTION")  # the artist's own rig (retarget_jobs)
        if context.active_object is not None and context.active_object.type == "ARMATURE":
            layout.operator("marionette.export_character", icon="EXPORT")
        if current.panel_message:
            level, message = current.panel_message
            row = layout.box().row()
            _wrapped(row.column(), message, "ERROR" if level == "ERROR" else "INFO")
            row.operator("marionette.dismiss_message", text="", icon="X", emboss=False)


def _estimate(context: bpy.types.Context, props: Any, provider: Provider, kind: str) -> tuple[str, list[str]]:
    """(what the request would cost, from the provider's documented prices; the steps Marionette adds to
    it on its own, with their cost)."""
    from ..core.models import GenerationRequest
    from .operators_generate import wants_rig

    try:
        rig = wants_rig(provider, props, kind)
        options = provider.resolve_options(settings.options_of(props, provider, kind), kind)  # type: ignore[arg-type]
        request = GenerationRequest(provider=provider.id, kind=kind, name="estimate",  # type: ignore[arg-type]
                                    rig=rig, animations=library.chosen(context) if rig else [], options=options)
        cost = provider.cost(request)
        added = provider.added_steps(request)
    except Exception:  # an option being edited may be invalid for a moment
        return "Cost: check the options", []
    if cost is None:
        return f"{provider.label} publishes no prices", added
    return f"Costs about {cost:g} credits", added


def _draw_views(layout: Any, context: bpy.types.Context, props: Any) -> None:
    col = layout.column(align=True)
    selected = sources.selected_reference_images(context)
    if selected:
        col.label(text=f"{len(selected)} selected reference images (ordered by object name)", icon="IMAGE_DATA")
        return
    for index, item in enumerate(props.view_images):
        row = col.row(align=True)
        row.prop(item, "filepath", text="")
        op = row.operator("marionette.remove_view_image", text="", icon="X")
        op.index = index
    col.operator("marionette.add_view_images", icon="ADD")
    if not props.view_images:
        col.label(text="Select image empties (one per view) or add files", icon="INFO")


def _draw_mesh_source(layout: Any, context: bpy.types.Context, props: Any) -> None:
    col = layout.column(align=True)
    meshes = [o for o in context.selected_objects if o.type == "MESH"]
    if meshes:
        names = ", ".join(o.name for o in meshes[:3]) + (" ..." if len(meshes) > 3 else "")
        col.label(text=f"Selected: {names}", icon="MESH_DATA")
    else:
        col.label(text="Select the character's mesh(es)", icon="INFO")
    col.prop(props, "mesh_facing")
    col.prop(props, "mesh_height_auto")
    if meshes and props.mesh_height_auto:
        height = max(o.matrix_world.translation.z + o.dimensions.z for o in meshes) - min(
            o.matrix_world.translation.z for o in meshes)
        col.label(text=f"About {height:.2f} m tall (exact value measured on export)")
    col.prop(props, "hide_original")


class MARIONETTE_PT_animations(_Panel):
    bl_idname = "MARIONETTE_PT_animations"
    bl_label = "Animation Library"
    bl_parent_id = "MARIONETTE_PT_main"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        props = getattr(context.scene, "marionette", None)
        current = session.active()
        if not (props and current):
            return False
        provider = current.providers[props.provider]
        return bool(provider.supports_rig and provider.common_animations)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        lib = library.library(context)
        row = layout.row(align=True)
        row.prop(lib, "search", text="", icon="VIEWZOOM")
        row.prop(lib, "category", text="")
        layout.template_list("MARIONETTE_UL_animations", "", lib, "items", lib, "index", rows=6)
        active = lib.items[lib.index] if 0 <= lib.index < len(lib.items) else None
        big = library.preview_icon(active.preview_url) if active is not None else 0
        if big:  # the active animation's preview, larger
            layout.template_icon(icon_value=big, scale=6.0)
        row = layout.row(align=True)
        op = row.operator("marionette.select_animations", text="Choose Shown")
        op.select = True
        op = row.operator("marionette.select_animations", text="Clear")
        op.select = False
        provider = session.get().providers[context.scene.marionette.provider]
        if provider.fetches_animation_catalog:
            row.operator("marionette.refresh_animation_library", text="", icon="FILE_REFRESH")
        count = sum(1 for item in lib.items if item.selected)
        layout.label(text=f"{count} chosen", icon="INFO")
        layout.label(text=library.status())


def _draw_options(layout: Any, group: Any, provider: Provider, kind: str) -> None:
    col = layout.column()
    for spec in provider.options:
        if (spec.inputs is not None and kind not in spec.inputs) or not _visible(group, spec):
            continue
        if spec.fill_from:
            row = col.row(align=True)
            row.prop(group, spec.name)
            op = row.operator("marionette.fill_option", text="", icon="EYEDROPPER")
            op.provider, op.option = provider.id, spec.name
        else:
            col.prop(group, spec.name)


def _visible(group: Any, spec: OptionSpec) -> bool:
    if spec.depends_on is None:
        return True
    other, wanted = spec.depends_on
    return bool(getattr(group, other) == wanted)


class MARIONETTE_PT_jobs(_Panel):
    bl_idname = "MARIONETTE_PT_jobs"
    bl_label = "Jobs"
    bl_parent_id = "MARIONETTE_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        current = session.active()
        if current is None:
            return
        layout.operator("marionette.recover_task", icon="URL")
        jobs, total = current.store.newest(MAX_JOBS_SHOWN)
        if not jobs:
            layout.label(text="No jobs yet")
            return
        for job in jobs:
            _draw_job(layout.box(), job)
        if total > len(jobs):
            layout.label(text=f"{total - len(jobs)} older jobs not shown")


def _draw_job(box: Any, job: Job) -> None:
    split = box.split(factor=0.22)
    icon = thumbnails.icon_for(job.thumbnail) or _rendered_preview(job)
    if icon:
        split.template_icon(icon_value=icon, scale=2.6)
    else:
        split.label(icon=STATE_ICONS[job.state])
    col = split.column()
    row = col.row(align=True)
    row.label(text=f"{job.request.name}  ({job.provider})", icon=STATE_ICONS[job.state])
    _job_button(row, "marionette.copy_task_id", "COPYDOWN", job.id)
    if job.state.active:
        _job_button(row, "marionette.cancel_job", "X", job.id)
    else:
        if job.state in (models.JobState.FAILED, models.JobState.CANCELED):
            _job_button(row, "marionette.retry_job", "FILE_REFRESH", job.id)
        _job_button(row, "marionette.open_job_folder", "FILE_FOLDER", job.id)
        _job_button(row, "marionette.forget_job", "TRASH", job.id)
    if job.state.active:
        col.progress(factor=job.progress, type="BAR", text=job.stage)
        if job.queue_position:
            col.label(text=f"Queue: {job.queue_position} task(s) ahead", icon="SORTTIME")
    else:
        col.label(text=job.stage)
    if job.notice:
        col.label(text=job.notice, icon="INFO")
    if job.error:
        code = f" [{job.error_code}]" if job.error_code else ""
        _wrapped(col, job.error + code, "ERROR")
    if job.import_error:
        _wrapped(col, job.import_error, "ERROR")
    for name in job.images:
        if name in bpy.data.images:
            row = col.row(align=True)
            row.label(text=name, icon="IMAGE_DATA")
            op = row.operator("marionette.use_image", text="", icon="OUTLINER_OB_IMAGE")
            op.image, op.target = name, "REFERENCE"
            op = row.operator("marionette.use_image", text="", icon="CAMERA_DATA")
            op.image, op.target = name, "CAMERA"
    if job.state is models.JobState.SUCCEEDED:
        text = "Import Again" if job.imported else "Import"
        op = col.operator("marionette.import_job", text=text, icon="IMPORT")
        op.job_id = job.id


def _rendered_preview(job: Job) -> int:
    """Blender's render of the imported character, for jobs that came with no picture."""
    for name in [job.armature or "", *job.objects]:
        obj = bpy.data.objects.get(name)
        if obj is not None and obj.preview is not None:
            return int(obj.preview.icon_id)
    return 0


def _job_button(row: Any, operator: str, icon: str, job_id: str) -> None:
    op = row.operator(operator, text="", icon=icon)
    op.job_id = job_id


def _wrapped(layout: Any, text: str, icon: str, width: int = 48) -> None:
    words, line, lines = text.split(), "", []
    for word in words:
        if len(line) + len(word) + 1 > width and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    col = layout.column(align=True)
    for index, part in enumerate(lines[:6]):
        col.label(text=part, icon=icon if index == 0 else "BLANK1")


classes = (MARIONETTE_PT_main, MARIONETTE_PT_animations, MARIONETTE_PT_jobs)
