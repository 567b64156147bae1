"""Actions on the main armature: which actions an importer made for an armature (in the file's order,
named after the file's animations), their slots (Blender 4.4+ layered actions, feature-detected), the
NLA layout (one muted track per action, the first one active), and whether an animation fits the
armature's skeleton. See the package docstring for the layout and why it is so."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import bpy

from ..actions import add_track, fcurves, make_active

log = logging.getLogger(__name__)

# Layer/stack names that say nothing about an FBX animation.
_GENERIC_FBX_NAMES = frozenset({"baselayer", "base layer", "animlayer", "layer0", "take 001", "scene"})
_REST_TOLERANCE = 1e-3


@dataclass
class Anim:
    """An action to put on the main armature, with the slot that animates an armature (Blender 4.4+)."""

    action: bpy.types.Action
    name: str
    slot_handle: int | None = None


def bones(obj: bpy.types.Object) -> bpy.types.ArmatureBones:
    data = obj.data
    assert isinstance(data, bpy.types.Armature)
    return data.bones


def armatures(ids: Sequence[bpy.types.ID]) -> list[bpy.types.Object]:
    return [i for i in ids if isinstance(i, bpy.types.Object) and i.type == "ARMATURE"]


def slot_handle(owner: Any) -> int | None:
    """The handle of the slot an AnimData or NlaStrip uses, or None (no slots on this Blender)."""
    slot = getattr(owner, "action_slot", None)
    return int(slot.handle) if slot is not None else None


def find_slot(action: bpy.types.Action, handle: int | None) -> Any:
    slots = getattr(action, "slots", None)
    if slots is None:
        return None
    if handle is not None:
        for slot in slots:
            if slot.handle == handle:
                return slot
    objects = [s for s in slots if s.target_id_type in ("OBJECT", "UNSPECIFIED")]
    return objects[0] if objects else None


def animated_bones(action: bpy.types.Action, slot: Any) -> set[str]:
    names: set[str] = set()
    for curve in fcurves(action, slot):
        path = curve.data_path
        if path.startswith('pose.bones["'):
            end = path.find('"]', 12)
            if end > 12:
                names.add(path[12:end].replace('\\"', '"'))
    return names


def armature_anims(arm: bpy.types.Object, new_actions: set[int], file_names: list[str], fbx: bool) -> list[Anim]:
    """The actions an importer put on `arm`, in the file's order, named after the file's animations."""
    anim_data = arm.animation_data
    found: list[Anim] = []
    seen: set[int] = set()

    def add(action: bpy.types.Action | None, name: str, handle: int | None) -> None:
        if action is None or action.as_pointer() in seen or action.as_pointer() not in new_actions:
            return
        seen.add(action.as_pointer())
        found.append(Anim(action, name, handle))

    if anim_data is not None:
        # glTF: one muted track per animation, first animation on top, named after the animation.
        for track in reversed(anim_data.nla_tracks):
            for strip in track.strips:
                add(strip.action, track.name or strip.name, slot_handle(strip))
        if anim_data.action is not None:
            add(anim_data.action, _animation_name(anim_data.action.name, arm.name, fbx), slot_handle(anim_data))
    if fbx:
        # FBX: one action per take, named "<object>|<take>"; only the first one is assigned.
        prefix = arm.name + "|"
        extra = sorted(
            (a for a in bpy.data.actions if a.as_pointer() in new_actions and a.name.startswith(prefix)),
            key=lambda a: a.name,
        )
        for action in extra:
            add(action, _animation_name(action.name, arm.name, fbx), None)
    if file_names:
        order = {name: i for i, name in enumerate(file_names)}
        found.sort(key=lambda a: order.get(a.name, len(order)))
    return found


def _animation_name(action_name: str, object_name: str, fbx: bool) -> str:
    """An FBX action is named "<object>|<take>[|<layer>]": keep the meaningful part of the take."""
    if not fbx:
        return action_name
    rest = action_name[len(object_name) + 1 :] if action_name.startswith(object_name + "|") else action_name
    parts = [p for p in rest.split("|") if p.strip()]
    meaningful = [p for p in parts if p.strip().lower() not in _GENERIC_FBX_NAMES]
    if meaningful:
        return meaningful[-1]
    return parts[0] if parts else rest


def existing_anims(arm: bpy.types.Object) -> list[Anim]:
    """The actions already on an armature Marionette imported, in track order (top track first)."""
    anims: list[Anim] = []
    anim_data = arm.animation_data
    if anim_data is None:
        return anims
    for track in reversed(list(anim_data.nla_tracks)):
        for strip in track.strips:
            if strip.action is not None and all(a.action != strip.action for a in anims):
                anims.append(Anim(strip.action, strip.action.name, slot_handle(strip)))
    if anim_data.action is not None and all(a.action != anim_data.action for a in anims):
        anims.insert(0, Anim(anim_data.action, anim_data.action.name, slot_handle(anim_data)))
    return anims


def rename(id_: bpy.types.ID, name: str) -> None:
    if id_.name != name:
        id_.name = name


def _bind_slot(anim: Anim, arm: bpy.types.Object) -> Any:
    """Blender 4.4+: name the armature slot after `arm` and return it. None on legacy Blender."""
    slot = find_slot(anim.action, anim.slot_handle)
    if slot is None:
        return None
    wanted = "OB" + arm.name
    if slot.identifier != wanted:
        taken = any(s.identifier == wanted for s in anim.action.slots if s != slot)
        if not taken:
            try:
                slot.name_display = arm.name
            except (AttributeError, TypeError, ValueError) as exc:  # pragma: no cover - defensive
                log.debug("cannot rename slot %s: %s", slot.identifier, exc)
    anim.slot_handle = int(slot.handle)
    return slot


def layout_nla(arm: bpy.types.Object, anims: Sequence[Anim], scene: bpy.types.Scene) -> None:
    anim_data = arm.animation_data or arm.animation_data_create()
    assert anim_data is not None
    if anim_data.use_tweak_mode:
        anim_data.use_tweak_mode = False
    anim_data.action = None
    for track in list(anim_data.nla_tracks):
        anim_data.nla_tracks.remove(track)
    if not anims:
        return
    slots = [_bind_slot(anim, arm) for anim in anims]
    # New tracks go on top: create the last action's track first so that the first ends up on top.
    for anim, slot in reversed(list(zip(anims, slots, strict=True))):
        add_track(anim_data, anim.action, slot, anim.action.name)
    make_active(anim_data, anims[0].action, slots[0])
    anim_data.use_nla = True
    start, end = anims[0].action.frame_range[0], anims[0].action.frame_range[1]
    scene.frame_start = math.floor(start)
    scene.frame_end = max(math.ceil(end), scene.frame_start)
    scene.frame_current = scene.frame_start


def rest_mismatch(main: bpy.types.Object, other: bpy.types.Object, units: float = 1.0) -> list[str]:
    """Bones whose rest pose differs between two armatures (the animation would look distorted); `other`'s
    positions are first scaled by `units` (an animation file for a normalised character)."""
    bad: list[str] = []
    main_bones = bones(main)
    for bone in bones(other):
        target = main_bones.get(bone.name)
        if target is None:
            continue
        a, b = bone.matrix_local.copy(), target.matrix_local
        if units != 1.0:
            a.translation = a.translation * units
        if any(abs(a[r][c] - b[r][c]) > _REST_TOLERANCE for r in range(3) for c in range(4)):
            bad.append(bone.name)
    return bad
