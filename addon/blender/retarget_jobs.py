"""*Animate My Rig*: the library's animations straight onto the artist's own armature, as one job.

With the artist's armature active and animations ticked in the library, :func:`animate_my_rig` gets
those animations on a Marionette rig and retargets them onto the armature:

* **reused**: a character Marionette rigged in this file whose Meshy rig is still kept (3 days). Animations
  it already has are not bought again; the others are added to it by an *Add Animations* job.
* **made**: else the artist's own mesh (the meshes their armature deforms) is rigged by Meshy with those
  animations, as *Rig & Animate Selected Mesh* does, without hiding the artist's mesh; the Marionette
  character it brings is hidden once its animations are on the artist's rig (kept, not deleted).

The job is an ordinary Marionette job (progress, cancel, retry in the job list). When its result has been
imported, the pump calls :func:`pump`, which retargets and says so on the job ("On MyRig: 3 animations").
Which armature waits for which job is also kept on the armature (a custom property), so a job that
finishes after Blender restarted is still retargeted when it is imported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import bpy

from ..core import bonemap
from ..core.errors import InputError, MarionetteError
from . import session
from .lazy import lazy_import

if TYPE_CHECKING:
    from ..core import models
    from ..core.models import AnimationChoice
    from . import jobs, retarget
else:  # the core, the job logic and numpy: loaded on first use, not when Marionette is enabled
    models = lazy_import("..core.models", __package__)
    jobs = lazy_import(".jobs", __package__)
    retarget = lazy_import(".retarget", __package__)

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

log = logging.getLogger(__name__)

WAITING_PROP = "marionette_retarget_job"  # on the artist's armature: {"job": id, "names": [...], ...}


@dataclass
class Waiting:
    job_id: str
    target: str
    names: list[str]
    in_place: bool
    hide_source: bool


_waiting: dict[str, Waiting] = {}
_scanned: dict[str, str | None] = {"file": None}  # the .blend whose armatures were last looked at


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _rig_is_fresh(obj: bpy.types.Object) -> bool:
    created = obj.get(jobs.RIG_CREATED_PROP)
    try:
        provider = session.get().provider_for("add_animations", jobs.rig_provider(obj))
        provider.check_rig_age(float(created) if created else None)
    except MarionetteError:
        return False
    return True


def _action_names(obj: bpy.types.Object) -> dict[str, str]:
    return {_norm(a.name): a.name for a, _slot in retarget.source_actions(obj)}


def reusable_rig(wanted: Sequence[AnimationChoice]) -> bpy.types.Object | None:
    """A Marionette character of this file to take animations from: the one that already has most of
    them, among those whose Meshy rig is still kept (or that already have every one)."""
    best: tuple[int, str] | None = None
    for obj in bpy.data.objects:
        if not jobs.rigged_by_marionette(obj) or obj.library is not None:
            continue
        have = _action_names(obj)
        count = sum(1 for c in wanted if _norm(c.name) in have)
        if count < len(wanted) and not _rig_is_fresh(obj):
            continue
        if best is None or count > best[0]:
            best = (count, obj.name)
    return bpy.data.objects[best[1]] if best else None


def _skinned_meshes(target: bpy.types.Object) -> list[bpy.types.Object]:
    return [o for o in bpy.data.objects if o.type == "MESH" and any(
        m.type == "ARMATURE" and getattr(m, "object", None) == target for m in o.modifiers)]


def animate_my_rig(context: bpy.types.Context, target: bpy.types.Object, wanted: Sequence[AnimationChoice],
                   *, in_place: bool = False, options: dict[str, Any] | None = None) -> tuple[str | None, list[str]]:
    """(job id, []) when animations must be fetched first, or (None, new action names) when every one was
    already on a Marionette rig of this file and went straight onto `target`."""
    target = retarget.armature_object(target, "armature")
    retarget.check_target(target)
    if jobs.rigged_by_marionette(target):
        raise InputError(f"{target.name} is a Marionette character: use Add Animations to Character")
    if not wanted:
        raise InputError("Tick the animations to put on your rig in the Animation Library")
    missing = bonemap.missing_required(bonemap.find_roles(retarget.describe(target)))
    if missing:
        raise InputError(f"Cannot find the hips and both legs of {target.name} (missing {', '.join(missing)}); "
                         "use Apply to My Rig with a bone map")
    names = [c.name for c in wanted]
    rig = reusable_rig(wanted)
    if rig is not None:
        have = _action_names(rig)
        lacking = [c for c in wanted if _norm(c.name) not in have]
        if not lacking:
            made = retarget.retarget(rig, target, actions=[have[_norm(n)] for n in names], in_place=in_place)
            return None, made
        job = jobs.submit_add_animations(rig, lacking, options=options)
        _wait_for(job.id, target, names, in_place, hide_source=False)
        return job.id, []
    meshes = _skinned_meshes(target)
    if not meshes:
        raise InputError(f"No Marionette character to take the animations from, and no mesh deformed by "
                         f"{target.name} to rig: generate a character first, or give {target.name} its mesh")
    data = target.data
    assert isinstance(data, bpy.types.Armature)
    pose_position = data.pose_position
    data.pose_position = "REST"  # Meshy gets the mesh in its rest shape, whatever frame is showing
    try:
        context.view_layer.update()
        job = jobs.submit_mesh(context, meshes, name=f"{target.name} animations", facing=_facing(target),
                               hide_original=False, animations=wanted, options=options)
    finally:
        data.pose_position = pose_position
        context.view_layer.update()
    _wait_for(job.id, target, names, in_place, hide_source=True)
    return job.id, []


def _facing(target: bpy.types.Object) -> str:
    """Which way the artist's character faces (world axis), from its rig's rest pose."""
    rig = retarget.Rig.of(target)
    back = retarget._character_frame(rig)[:, 1]
    x, y = float(back[0]), float(back[1])
    if abs(y) >= abs(x):
        return "-Y" if y > 0 else "+Y"
    return "-X" if x > 0 else "+X"


def _wait_for(job_id: str, target: bpy.types.Object, names: list[str], in_place: bool, hide_source: bool) -> None:
    _waiting[job_id] = Waiting(job_id, target.name, names, in_place, hide_source)
    target[WAITING_PROP] = json.dumps({"job": job_id, "names": names, "in_place": in_place, "hide": hide_source})
    _say(job_id, f"Then onto {target.name}")


def _say(job_id: str, stage: str | None = None, error: str | None = None) -> None:
    current = session.get_or_none()
    if current is None or job_id not in current.store:
        return

    def record(job: Any) -> None:
        if stage is not None:
            job.stage = stage
        if error is not None:
            job.import_error = error

    current.store.update(job_id, record)
    current.runner.events.put(job_id)


def _scan() -> None:
    """After a restart or another file opened: the armatures that still wait for a job (custom property)."""
    _scanned["file"] = bpy.data.filepath
    for obj in bpy.data.objects:
        raw = obj.get(WAITING_PROP)
        if not raw or obj.library is not None:
            continue
        try:
            data = json.loads(str(raw))
            _waiting.setdefault(str(data["job"]), Waiting(str(data["job"]), obj.name, list(data["names"]),
                                                          bool(data.get("in_place")), bool(data.get("hide"))))
        except (ValueError, KeyError, TypeError):
            del obj[WAITING_PROP]


def _target_of(waiting: Waiting) -> bpy.types.Object | None:
    obj = bpy.data.objects.get(waiting.target)
    if obj is not None and obj.get(WAITING_PROP):
        return obj
    return next((o for o in bpy.data.objects if str(o.get(WAITING_PROP, "")).find(waiting.job_id) >= 0), None)


def pump() -> bool:
    """Retarget the animations of jobs that were imported since the last tick. Called by the pump only."""
    if _scanned["file"] != bpy.data.filepath:
        _scan()
    if not _waiting:
        return False
    current = session.get_or_none()
    if current is None:
        return False
    for job_id, waiting in list(_waiting.items()):
        job = current.store.peek(job_id)
        if job is None or job.state in (models.JobState.FAILED, models.JobState.CANCELED):
            _drop(waiting)
            continue
        if not job.imported or not job.armature:
            continue
        _finish(waiting, job.armature, list(job.actions))
        return True  # one per tick keeps the interface responsive
    return False


def _drop(waiting: Waiting) -> None:
    _waiting.pop(waiting.job_id, None)
    target = _target_of(waiting)
    if target is not None and target.get(WAITING_PROP) is not None:
        del target[WAITING_PROP]


def _finish(waiting: Waiting, source_name: str, imported: list[str]) -> None:
    _drop(waiting)
    target = _target_of(waiting) or bpy.data.objects.get(waiting.target)
    source = bpy.data.objects.get(source_name)
    if target is None or source is None:
        _say(waiting.job_id, error=f"{waiting.target} or {source_name} is gone: nothing was retargeted")
        return
    have = _action_names(source)
    actions = [have[_norm(n)] for n in waiting.names if _norm(n) in have]
    if not actions:  # names the provider spelled otherwise: everything the job brought
        actions = [n for n in imported if n in bpy.data.actions]
    try:
        made = retarget.retarget(source, target, actions=actions, in_place=waiting.in_place)
    except MarionetteError as exc:
        _say(waiting.job_id, stage="Not retargeted", error=str(exc))
        return
    if waiting.hide_source:
        job = session.get().store.peek(waiting.job_id)
        for name in list(job.objects) if job is not None else [source_name]:
            obj = bpy.data.objects.get(name)
            if obj is not None:
                obj.hide_render = True
                if name in bpy.context.view_layer.objects:
                    obj.hide_set(True)
    from . import retarget_ui

    retarget_ui.set_frame_range(bpy.context.scene, made[0])
    _say(waiting.job_id, stage=f"On {target.name}: {len(made)} animation{'s' if len(made) != 1 else ''}")
    log.info("retargeted %s onto %s", ", ".join(actions), target.name)


class MARIONETTE_OT_animate_my_rig(bpy.types.Operator):
    """Put the animations ticked in the library on your active armature (fetched on a Marionette rig, retargeted)"""

    bl_idname = "marionette.animate_my_rig"
    bl_label = "Animate My Rig"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = context.active_object
        if session.get_or_none() is None:
            return False
        if obj is None or obj.type != "ARMATURE":
            cls.poll_message_set("Select your armature")
            return False
        if jobs.rigged_by_marionette(obj):
            cls.poll_message_set("This is a Marionette character: use Add Animations to Character")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        from . import library, operators, retarget_ui, settings

        target = context.active_object
        assert target is not None  # poll checked

        def work() -> str:
            props = context.scene.marionette  # type: ignore[attr-defined]
            wanted = library.chosen(context)
            in_place = bool(retarget_ui.props(context).in_place)
            rig = reusable_rig(wanted) if wanted else None
            kind = "armature" if rig is not None else "mesh"
            current = session.get()
            provider = (current.provider_for("add_animations", jobs.rig_provider(rig)) if rig is not None
                        else current.provider_for("rig_mesh"))
            options = settings.options_of(props, provider, kind)
            job_id, made = animate_my_rig(context, target, wanted, in_place=in_place, options=options)
            if job_id is None:
                retarget_ui.set_frame_range(context.scene, made[0])
                return f"Marionette: {len(made)} animations put on {target.name}"
            return f"Marionette: fetching {len(wanted)} animations for {target.name} (see the job list)"

        return operators._run_and_report(self, work)


classes: tuple[type, ...] = (MARIONETTE_OT_animate_my_rig,)


def reset() -> None:
    _waiting.clear()
    _scanned["file"] = None
