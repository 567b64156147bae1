"""Export a character for a game engine: the armature, its meshes and every action as its own animation.

Presets (Blender's own FBX and glTF exporters with the settings each engine expects):

* ``UNREAL``: FBX, units as Blender writes them (Unreal reads the file's unit), no leaf bones, face
  smoothing, every action as its own take (``bake_anim_use_all_actions``), keys baked on every frame.
* ``UNITY``: FBX with "Apply Scalings: FBX All" and "Apply Transform" (so the root has unit scale and no
  rotation in Unity), no leaf bones, every action as its own take.
* ``GODOT``: GLB (Godot, three.js, Babylon, the web), Y up, one glTF animation per action
  (``export_animation_mode="ACTIONS"``).

Only the character is exported (the armature and the meshes it deforms or parents); the artist's
selection, active object and mode are restored afterwards. Runs on the main thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from ..core.errors import InputError
from .operator_options import known_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    label: str
    extension: str
    description: str


PRESETS: dict[str, Preset] = {
    "UNREAL": Preset("Unreal Engine", ".fbx", "FBX for Unreal Engine: every action a separate animation"),
    "UNITY": Preset("Unity", ".fbx", "FBX for Unity (scale and transform applied): every action a separate clip"),
    "GODOT": Preset("Godot / Web (glTF)", ".glb", "GLB for Godot and the web: one glTF animation per action"),
}
_ALIASES = {"UNREAL": "UNREAL", "UE": "UNREAL", "UE5": "UNREAL", "UNITY": "UNITY", "GODOT": "GODOT",
            "WEB": "GODOT", "GLTF": "GODOT", "GLB": "GODOT"}

_FBX_COMMON: dict[str, Any] = {
    "use_selection": True,
    "object_types": {"ARMATURE", "MESH"},
    "use_mesh_modifiers": True,
    "mesh_smooth_type": "FACE",
    "add_leaf_bones": False,
    "primary_bone_axis": "Y",
    "secondary_bone_axis": "X",
    "armature_nodetype": "NULL",
    "bake_anim": True,
    "bake_anim_use_all_bones": True,
    "bake_anim_use_nla_strips": False,
    "bake_anim_use_all_actions": True,
    "bake_anim_force_startend_keying": True,
    "bake_anim_step": 1.0,
    "bake_anim_simplify_factor": 0.0,
    "path_mode": "COPY",
    "embed_textures": True,
    "check_existing": False,
}
_FBX_PRESETS: dict[str, dict[str, Any]] = {
    "UNREAL": {"apply_unit_scale": True, "apply_scale_options": "FBX_SCALE_NONE", "global_scale": 1.0},
    "UNITY": {"apply_unit_scale": True, "apply_scale_options": "FBX_SCALE_ALL", "global_scale": 1.0,
              "bake_space_transform": True, "axis_forward": "-Z", "axis_up": "Y"},
}
_GLTF: dict[str, Any] = {
    "export_format": "GLB",
    "use_selection": True,
    "export_yup": True,
    "export_apply": False,
    "export_skins": True,
    "export_animations": True,
    "export_animation_mode": "ACTIONS",
    "export_force_sampling": True,
    "export_anim_single_armature": True,
    "export_reset_pose_bones": True,
    "export_materials": "EXPORT",
    "export_image_format": "AUTO",
    "export_cameras": False,
    "export_lights": False,
    "export_extras": False,
    "check_existing": False,
}


def preset_id(preset: str) -> str:
    key = _ALIASES.get(str(preset).strip().upper().replace(" ", "").replace("/", ""))
    if key is None:
        raise InputError(f"Unknown export preset {preset!r}; use one of: unreal, unity, godot")
    return key


def character_objects(armature: bpy.types.Object) -> list[bpy.types.Object]:
    """The armature and the meshes that belong to it (children, or deformed by it)."""
    found = [armature]
    for obj in bpy.data.objects:
        if obj.type != "MESH" or obj in found:
            continue
        deformed = any(m.type == "ARMATURE" and getattr(m, "object", None) == armature for m in obj.modifiers)
        if deformed or armature in obj.children_recursive or obj.parent == armature:
            found.append(obj)
    return found


def export(armature: bpy.types.Object, path: str | Path, preset: str,
           context: bpy.types.Context | None = None) -> Path:
    """Write `armature`'s character to `path` (the preset's extension is added when missing)."""
    ctx = context if context is not None else bpy.context
    if not isinstance(armature, bpy.types.Object) or armature.type != "ARMATURE":
        raise InputError("Export takes a character's armature: select the armature (or give its name)")
    key = preset_id(preset)
    target = Path(bpy.path.abspath(str(path)))
    if target.suffix.lower() != PRESETS[key].extension:
        target = target.with_name(target.name + PRESETS[key].extension)
    if not target.parent.is_dir():
        raise InputError(f"The folder {target.parent} does not exist")
    view_layer = ctx.view_layer
    objects = [o for o in character_objects(armature) if o.name in view_layer.objects]
    selected = [o for o in view_layer.objects if o.select_get(view_layer=view_layer)]
    active = view_layer.objects.active
    mode_set: Any = bpy.ops.object.mode_set
    if active is not None and active.mode != "OBJECT" and mode_set.poll():
        mode_set(mode="OBJECT")
    hidden = [o for o in objects if o.hide_get(view_layer=view_layer)]
    try:
        for obj in view_layer.objects:
            obj.select_set(obj in objects, view_layer=view_layer)
        for obj in hidden:
            obj.hide_set(False, view_layer=view_layer)
        view_layer.objects.active = armature
        operator: Any
        if key == "GODOT":
            operator = bpy.ops.export_scene.gltf
            options = {**_GLTF, "filepath": str(target)}
        else:
            operator = bpy.ops.export_scene.fbx
            options = {**_FBX_COMMON, **_FBX_PRESETS[key], "filepath": str(target)}
        try:
            result = operator(**known_options(operator, options))
        except RuntimeError as exc:
            raise InputError(f"Blender could not export {armature.name}: {exc}") from exc
        if "FINISHED" not in result:
            raise InputError(f"Blender could not export {armature.name} (the exporter gave up)")
    finally:
        for obj in hidden:
            obj.hide_set(True, view_layer=view_layer)
        for obj in view_layer.objects:
            obj.select_set(obj in selected, view_layer=view_layer)
        view_layer.objects.active = active
    log.info("exported %s for %s to %s", armature.name, PRESETS[key].label, target)
    return target


# --------------------------------------------------------------------------------------------------
# The operator (panel button, File > Export, F3)
# --------------------------------------------------------------------------------------------------


def armature_of(obj: bpy.types.Object | None) -> bpy.types.Object | None:
    """The armature of the active object: itself, its parent, or the armature deforming it."""
    if obj is None:
        return None
    if obj.type == "ARMATURE":
        return obj
    if obj.parent is not None and obj.parent.type == "ARMATURE":
        return obj.parent
    for modifier in getattr(obj, "modifiers", ()):
        target = getattr(modifier, "object", None) if modifier.type == "ARMATURE" else None
        if target is not None:
            return target
    return None


def _preset_changed(self: Any, _context: bpy.types.Context) -> None:
    _fix_extension(self)


def _fix_extension(op: Any) -> bool:
    if not op.filepath:
        return False
    path = Path(op.filepath)
    extension = PRESETS[op.preset].extension
    stem = path.with_suffix("") if path.suffix.lower() in (".fbx", ".glb") else path
    wanted = str(stem) + extension
    if wanted != op.filepath:
        op.filepath = wanted
        return True
    return False


class MARIONETTE_OT_export_character(bpy.types.Operator):
    """Export the active character (its armature, meshes and every action as a separate animation) for a game
    engine: Unreal (FBX), Unity (FBX) or Godot and the web (GLB)"""

    bl_idname = "marionette.export_character"
    bl_label = "Export Character for Game Engine"
    bl_options = {"REGISTER"}

    filepath: bpy.props.StringProperty(name="File", subtype="FILE_PATH")  # type: ignore[valid-type]
    filter_glob: bpy.props.StringProperty(default="*.fbx;*.glb", options={"HIDDEN"})  # type: ignore[valid-type]
    preset: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Engine", items=[(k, p.label, p.description) for k, p in PRESETS.items()], default="UNREAL",
        update=_preset_changed)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if armature_of(context.active_object) is None:
            cls.poll_message_set("Select a character's armature (or one of its meshes)")
            return False
        return True

    def check(self, _context: bpy.types.Context) -> bool:
        return _fix_extension(self)

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[Any]:
        arm = armature_of(context.active_object)
        if not self.filepath and arm is not None:
            folder = Path(bpy.data.filepath).parent if bpy.data.filepath else Path.home()
            self.filepath = str(folder / (bpy.path.clean_name(arm.name) + PRESETS[self.preset].extension))
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[Any]:
        from .operators import _run_and_report

        arm = armature_of(context.active_object)

        def run() -> str:
            if arm is None:
                raise InputError("Select a character's armature (or one of its meshes)")
            if not self.filepath:
                raise InputError("Choose a file to export to")
            written = export(arm, self.filepath, self.preset, context)
            return f"Marionette: {arm.name} exported for {PRESETS[self.preset].label} to {written}"

        return _run_and_report(self, run)


def _menu_entry(self: Any, _context: bpy.types.Context) -> None:
    self.layout.operator(MARIONETTE_OT_export_character.bl_idname, text="Marionette Character for Game Engine")


def register_menu() -> None:
    menu: Any = bpy.types.TOPBAR_MT_file_export  # stubs type the draw function without `self`
    menu.append(_menu_entry)


def unregister_menu() -> None:
    menu: Any = bpy.types.TOPBAR_MT_file_export
    menu.remove(_menu_entry)


classes = (MARIONETTE_OT_export_character,)
