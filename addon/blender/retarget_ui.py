"""*Apply to My Rig*: the panel section, its properties and operators for retargeting (see retarget.py).

The artist picks the armature whose animations to use (a Marionette character, or any armature with
actions) and their own rig, looks at (and edits) the bone map, ticks actions and presses *Apply to My
Rig* (``marionette.retarget``). The map can be saved and loaded as a small JSON preset.
*Animate My Rig* (``marionette.animate_my_rig``, retarget_jobs.py) does it straight from the library.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import bpy
from bpy.props import BoolProperty, CollectionProperty, IntProperty, PointerProperty, StringProperty

from ..core import bonemap
from ..core.bonemap import BoneMap
from ..core.errors import InputError
from .lazy import lazy_import

if TYPE_CHECKING:
    from . import retarget
else:  # numpy and the transfer: loaded on first use, not when Marionette is enabled
    retarget = lazy_import(".retarget", __package__)

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


def _is_armature(_self: Any, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


class MARIONETTE_PG_bone_pair(bpy.types.PropertyGroup):
    role: StringProperty(name="Role")  # type: ignore[valid-type]
    source: StringProperty(name="Source Bone", description="The bone of the animated armature")  # type: ignore[valid-type]
    target: StringProperty(name="My Bone", description="The bone of your rig it drives (empty: none)")  # type: ignore[valid-type]


class MARIONETTE_PG_action_choice(bpy.types.PropertyGroup):
    name: StringProperty(name="Action")  # type: ignore[valid-type]
    use: BoolProperty(name="Use", default=True, description="Put this animation on my rig")  # type: ignore[valid-type]


class MARIONETTE_PG_retarget(bpy.types.PropertyGroup):
    source: PointerProperty(  # type: ignore[valid-type]
        name="Animations From", type=bpy.types.Object, poll=_is_armature,
        description="The armature whose animations to use (a Marionette character, or any armature with actions)")
    target: PointerProperty(  # type: ignore[valid-type]
        name="My Rig", type=bpy.types.Object, poll=_is_armature,
        description="Your armature: it gets the animations as new actions, its rest pose untouched")
    in_place: BoolProperty(  # type: ignore[valid-type]
        name="In Place", default=False, description="Drop the horizontal travel of the hips (walks stay on the spot)")
    bones: CollectionProperty(type=MARIONETTE_PG_bone_pair)  # type: ignore[valid-type]
    bones_index: IntProperty()  # type: ignore[valid-type]
    actions: CollectionProperty(type=MARIONETTE_PG_action_choice)  # type: ignore[valid-type]
    actions_index: IntProperty()  # type: ignore[valid-type]
    map_for: StringProperty(options={"HIDDEN"})  # type: ignore[valid-type]  # "source>target" of the map shown
    unmapped: StringProperty(options={"HIDDEN"})  # type: ignore[valid-type]  # target bones nothing drives
    unused: StringProperty(options={"HIDDEN"})  # type: ignore[valid-type]  # source bones that drive nothing


def props(context: bpy.types.Context) -> Any:
    return context.scene.marionette_retarget  # type: ignore[attr-defined]


def _key(source: bpy.types.Object | None, target: bpy.types.Object | None) -> str:
    return f"{source.name if source else ''}>{target.name if target else ''}"


def fill_map(settings: Any, bone_map: BoneMap) -> None:
    settings.bones.clear()
    for source, target in bone_map.pairs.items():
        item = settings.bones.add()
        item.role, item.source, item.target = bone_map.roles.get(source, ""), source, target
    settings.unmapped = "\n".join(bone_map.unmapped_target)
    settings.unused = "\n".join(bone_map.unmapped_source)
    settings.bones_index = 0


def fill_actions(settings: Any, source: bpy.types.Object) -> None:
    previous = {a.name: a.use for a in settings.actions}
    settings.actions.clear()
    for action, _slot in retarget.source_actions(source):
        item = settings.actions.add()
        item.name = action.name
        item.use = previous.get(action.name, True)


def map_of(settings: Any) -> BoneMap:
    """The map as shown (and edited) in the panel."""
    result = BoneMap()
    for item in settings.bones:
        if item.source and item.target:
            result.pairs[item.source] = item.target
            if item.role:
                result.roles[item.source] = item.role
    return result


def _pair(settings: Any) -> tuple[bpy.types.Object, bpy.types.Object]:
    if settings.source is None:
        raise InputError("Pick the armature whose animations to use (Animations From)")
    if settings.target is None:
        raise InputError("Pick your rig (My Rig)")
    return (retarget.armature_object(settings.source, "source"), retarget.armature_object(settings.target, "target"))


def _guess_pair(context: bpy.types.Context, settings: Any) -> None:
    """Fill empty pickers: my rig is the active armature (not a Marionette character), the animations come
    from a Marionette character of the scene, else from another armature with actions."""
    from . import jobs

    active = context.active_object
    if settings.target is None and active is not None and active.type == "ARMATURE" \
            and not jobs.rigged_by_marionette(active) and active != settings.source:
        settings.target = active
    if settings.source is None:
        armatures = [o for o in context.scene.objects if o.type == "ARMATURE" and o != settings.target]
        chosen = next((o for o in armatures if jobs.rigged_by_marionette(o)), None) or next(
            (o for o in armatures if retarget.source_actions(o)), None)
        if chosen is not None:
            settings.source = chosen


def set_frame_range(scene: bpy.types.Scene | None, action_name: str) -> None:
    action = bpy.data.actions.get(action_name)
    if action is not None and scene is not None:
        start, end = action.frame_range[0], action.frame_range[1]
        scene.frame_start = math.floor(start)
        scene.frame_end = max(math.ceil(end), scene.frame_start)
        scene.frame_current = scene.frame_start


def _report(op: bpy.types.Operator, work: Any) -> set[OperatorReturnItems]:
    from . import operators  # the shared report helper (status bar + panel message)

    return operators._run_and_report(op, work)


class MARIONETTE_OT_retarget_map(bpy.types.Operator):
    """Find which bone of your rig each bone of the animated armature drives (by name and by structure)"""

    bl_idname = "marionette.retarget_map"
    bl_label = "Find Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        settings = props(context)

        def work() -> str | tuple[Literal["INFO", "WARNING"], str]:
            _guess_pair(context, settings)
            source, target = _pair(settings)
            bone_map = bonemap.auto_map(retarget.describe(source), retarget.describe(target))
            fill_map(settings, bone_map)
            fill_actions(settings, source)
            settings.map_for = _key(source, target)
            missing = [r for r in bonemap.REQUIRED_ROLES if bone_map.target_of(r) is None]
            if missing:
                return ("WARNING", f"Marionette: no bone found for {', '.join(missing)}: set them in the map")
            return (f"Marionette: {len(bone_map.pairs)} bones mapped, {len(bone_map.unmapped_target)} of "
                    f"{target.name} left at rest")

        return _report(self, work)


class MARIONETTE_OT_retarget(bpy.types.Operator):
    """Put the animations of the chosen armature on your rig, as new baked actions (one NLA track each)"""

    bl_idname = "marionette.retarget"
    bl_label = "Apply to My Rig"
    bl_options = {"REGISTER", "UNDO"}

    source: StringProperty(name="Source", options={"SKIP_SAVE"},  # type: ignore[valid-type]
                           description="Armature with the animations (default: the panel's)")
    target: StringProperty(name="Target", options={"SKIP_SAVE"},  # type: ignore[valid-type]
                           description="Your armature (default: the panel's)")

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        settings = props(context)

        def work() -> str | tuple[Literal["INFO", "WARNING"], str]:
            if self.source:
                source = retarget.armature_object(self.source, "source")
            elif settings.source is None:
                raise InputError("Pick the armature whose animations to use (Animations From)")
            else:
                source = retarget.armature_object(settings.source, "source")
            if self.target:
                target = retarget.armature_object(self.target, "target")
            elif settings.target is None:
                raise InputError("Pick your rig (My Rig)")
            else:
                target = retarget.armature_object(settings.target, "target")
            same = settings.map_for == _key(source, target)
            bone_map = map_of(settings) if same and len(settings.bones) else None
            actions = None
            if same and len(settings.actions):  # the ticks shown; actions added since then are included
                unticked = {a.name for a in settings.actions if not a.use}
                actions = [a.name for a, _s in retarget.source_actions(source) if a.name not in unticked]
                if not actions:
                    raise InputError("Tick at least one action to put on your rig")
            made = retarget.retarget(source, target, actions=actions, bone_map=bone_map, in_place=settings.in_place)
            set_frame_range(context.scene, made[0])
            said = f"Marionette: {len(made)} animation{'s' if len(made) != 1 else ''} put on {target.name}"
            overridden = retarget.overridden_bones(target, made[0])
            if overridden:
                return ("WARNING", f"{said}, but constraints of {len(overridden)} of its bones override the keys "
                        f"({', '.join(overridden[:4])}...): map the rig's controls instead (a generated Rigify "
                        "rig: its FK bones)")
            return said

        return _report(self, work)


class MARIONETTE_OT_retarget_save_map(bpy.types.Operator):
    """Save the bone map shown as a JSON preset"""

    bl_idname = "marionette.retarget_save_map"
    bl_label = "Save Bone Map Preset"

    filepath: StringProperty(subtype="FILE_PATH")  # type: ignore[valid-type]
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})  # type: ignore[valid-type]

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        if not self.filepath:
            self.filepath = "bone_map.json"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        settings = props(context)

        def work() -> str:
            bone_map = map_of(settings)
            if not bone_map.pairs:
                raise InputError("The bone map is empty: press Find Bone Map first")
            path = Path(bpy.path.abspath(self.filepath))
            if path.suffix.lower() != ".json":
                path = path.with_suffix(".json")
            try:
                path.write_text(bone_map.to_json(), encoding="utf-8")
            except OSError as exc:
                raise InputError(f"Cannot write {path}: {exc.strerror or exc}") from exc
            return f"Marionette: bone map saved to {path}"

        return _report(self, work)


class MARIONETTE_OT_retarget_load_map(bpy.types.Operator):
    """Load a bone map preset (JSON) for the chosen armatures"""

    bl_idname = "marionette.retarget_load_map"
    bl_label = "Load Bone Map Preset"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")  # type: ignore[valid-type]
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})  # type: ignore[valid-type]

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        settings = props(context)

        def work() -> str:
            source, target = _pair(settings)
            path = Path(bpy.path.abspath(self.filepath))
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise InputError(f"Cannot read {path}: {exc.strerror or exc}") from exc
            loaded = BoneMap.from_json(text)
            checked = loaded.checked([b.name for b in source.data.bones], [b.name for b in target.data.bones])
            fill_map(settings, checked)
            fill_actions(settings, source)
            settings.map_for = _key(source, target)
            return f"Marionette: {len(checked.pairs)} bone pairs loaded from {path.name}"

        return _report(self, work)


class MARIONETTE_UL_bone_map(bpy.types.UIList):
    def draw_item(self, context: Any, layout: Any, data: Any, item: Any, icon: Any, active_data: Any,
                  active_property: Any, index: Any = 0, flt_flag: Any = 0) -> None:
        settings = props(context)
        row = layout.row(align=True)
        row.label(text=item.role or "-")
        row.label(text=item.source)
        target = settings.target
        if target is not None and target.type == "ARMATURE":
            row.prop_search(item, "target", target.data, "bones", text="")
        else:
            row.prop(item, "target", text="")


class MARIONETTE_UL_retarget_actions(bpy.types.UIList):
    def draw_item(self, context: Any, layout: Any, data: Any, item: Any, icon: Any, active_data: Any,
                  active_property: Any, index: Any = 0, flt_flag: Any = 0) -> None:
        layout.prop(item, "use", text=item.name)


class MARIONETTE_PT_retarget(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Marionette"
    bl_idname = "MARIONETTE_PT_retarget"
    bl_label = "Apply to My Rig"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = props(context)
        layout.prop(settings, "source")
        layout.prop(settings, "target")
        layout.operator("marionette.retarget_map", icon="BONE_DATA")
        stale = settings.map_for != _key(settings.source, settings.target)
        if len(settings.bones) and not stale:
            layout.template_list("MARIONETTE_UL_bone_map", "", settings, "bones", settings, "bones_index", rows=5)
            for names, what in ((settings.unmapped, "bones of my rig stay at rest"),
                                (settings.unused, "animated bones drive nothing")):
                unmapped = [n for n in names.split("\n") if n]
                if unmapped:
                    shown = ", ".join(unmapped[:8]) + (f" and {len(unmapped) - 8} more" if len(unmapped) > 8 else "")
                    box = layout.box()
                    box.label(text=f"{len(unmapped)} {what}:", icon="INFO")
                    box.label(text=shown)
            row = layout.row(align=True)
            row.operator("marionette.retarget_load_map", text="Load Preset", icon="FILE_FOLDER")
            row.operator("marionette.retarget_save_map", text="Save Preset", icon="FILE_TICK")
            if len(settings.actions):
                layout.template_list("MARIONETTE_UL_retarget_actions", "", settings, "actions", settings,
                                     "actions_index", rows=3)
        elif len(settings.bones):
            layout.label(text="The armatures changed: find the bone map again", icon="ERROR")
        else:
            row = layout.row()
            row.operator("marionette.retarget_load_map", text="Load Preset", icon="FILE_FOLDER")
        layout.prop(settings, "in_place")
        layout.operator("marionette.retarget", icon="ARMATURE_DATA")
        layout.separator()
        layout.label(text="Library straight onto the active armature:")
        layout.operator("marionette.animate_my_rig", icon="PLAY")


classes: tuple[type, ...] = (
    MARIONETTE_PG_bone_pair,
    MARIONETTE_PG_action_choice,
    MARIONETTE_PG_retarget,
    MARIONETTE_OT_retarget_map,
    MARIONETTE_OT_retarget,
    MARIONETTE_OT_retarget_save_map,
    MARIONETTE_OT_retarget_load_map,
    MARIONETTE_UL_bone_map,
    MARIONETTE_UL_retarget_actions,
    MARIONETTE_PT_retarget,
)


def register_properties() -> None:
    bpy.types.Scene.marionette_retarget = PointerProperty(type=MARIONETTE_PG_retarget)  # type: ignore[attr-defined]


def unregister_properties() -> None:
    del bpy.types.Scene.marionette_retarget  # type: ignore[attr-defined]
