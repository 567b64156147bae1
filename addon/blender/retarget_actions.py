"""Retargeting's reading of source actions (their slots, channels and keys, sampled in bulk) and writing of
the baked actions onto the target (keys with foreach_set, one NLA track each): the parts that differ between
Blender's legacy actions (4.2-4.4) and layered ones (5.0+)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np

from .actions import add_track, make_active

if TYPE_CHECKING:
    from .retarget import Baked

FloatArray = Any


# --------------------------------------------------------------------------------------------------
# Reading the source
# --------------------------------------------------------------------------------------------------


def _slot_for(action: bpy.types.Action, owner: Any, obj: bpy.types.Object) -> Any:
    """The slot `owner` (AnimData or NlaStrip) uses for `action`, else the object's own, else the first."""
    slots = getattr(action, "slots", None)
    if slots is None or not len(slots):
        return None
    used = getattr(owner, "action_slot", None) if owner is not None else None
    if used is not None:
        return used
    for slot in slots:
        if slot.identifier == "OB" + obj.name:
            return slot
    objects = [s for s in slots if s.target_id_type in ("OBJECT", "UNSPECIFIED")]
    return objects[0] if objects else slots[0]


def source_actions(obj: bpy.types.Object) -> list[tuple[bpy.types.Action, Any]]:
    """(action, slot) of every action on an armature: the active one first, then the NLA tracks top down."""
    anim_data = obj.animation_data
    found: list[tuple[bpy.types.Action, Any]] = []
    seen: set[int] = set()
    if anim_data is None:
        return found
    if anim_data.action is not None:
        seen.add(anim_data.action.as_pointer())
        found.append((anim_data.action, _slot_for(anim_data.action, anim_data, obj)))
    for track in reversed(list(anim_data.nla_tracks)):
        for strip in track.strips:
            action = strip.action
            if action is not None and action.as_pointer() not in seen:
                seen.add(action.as_pointer())
                found.append((action, _slot_for(action, strip, obj)))
    return found


_CHANNELS = {"location": 3, "rotation_quaternion": 4, "rotation_euler": 3, "rotation_axis_angle": 4, "scale": 3}


def _sample_frames(action: bpy.types.Action) -> FloatArray:
    start, end = action.frame_range[0], action.frame_range[1]
    first, last = math.floor(start + 1e-6), math.ceil(end - 1e-6)
    return np.arange(first, max(last, first) + 1, dtype=np.float64)


def _sample_curve(curve: Any, frames: FloatArray) -> FloatArray:
    points = curve.keyframe_points
    count = len(points)
    if count and not len(curve.modifiers):
        co = np.empty(count * 2, dtype=np.float32)
        points.foreach_get("co", co)
        keys = co[0::2].astype(np.float64)
        values = co[1::2].astype(np.float64)
        if count == len(frames) and keys[0] == frames[0] and keys[-1] == frames[-1] \
                and np.array_equal(keys, frames):
            return values  # baked: a key on every frame (the usual glTF/FBX import)
        pos = np.searchsorted(keys, frames)
        pos = np.clip(pos, 0, count - 1)
        if np.all(np.abs(keys[pos] - frames) < 1e-4):
            return values[pos]  # a key on every sampled frame: the keys are the values
    return np.array([curve.evaluate(float(f)) for f in frames], dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# Writing actions
# --------------------------------------------------------------------------------------------------

_LINEAR = 1  # Keyframe.interpolation enum value of 'LINEAR'


def _new_action(name: str, target: bpy.types.Object) -> tuple[bpy.types.Action, Any, Any]:
    """A new action with an object slot for `target` (Blender 4.4+) and its channelbag (the action itself on
    legacy Blender): where its F-curves go."""
    action = bpy.data.actions.new(name)
    if hasattr(action, "layers") and hasattr(action, "slots") and hasattr(bpy.types, "ActionChannelbag"):
        slot = action.slots.new(id_type="OBJECT", name=target.name)
        layer = action.layers.new("Layer")
        strip: Any = layer.strips.new(type="KEYFRAME")
        return action, slot, strip.channelbag(slot, ensure=True)
    return action, None, action


def _curve_maker(owner: Any, layered: bool) -> Any:
    """fcurves.new with the bone's group: Blender 5.0+ takes group_name, 4.4/4.5 need the group made and set,
    legacy actions take action_group."""
    fcurves = owner.fcurves
    if not layered:
        return lambda path, index, group: fcurves.new(path, index=index, action_group=group)
    params = {p.identifier for p in fcurves.bl_rna.functions["new"].parameters}
    if "group_name" in params:
        return lambda path, index, group: fcurves.new(path, index=index, group_name=group)
    groups: dict[str, Any] = {}

    def make(path: str, index: int, group: str) -> Any:
        curve = fcurves.new(path, index=index)
        if group not in groups:
            groups[group] = owner.groups.new(group)
        curve.group = groups[group]
        return curve

    return make


def _write(baked: Baked, name: str, target: bpy.types.Object) -> tuple[bpy.types.Action, Any]:
    action, slot, owner = _new_action(name, target)
    new_curve = _curve_maker(owner, slot is not None)
    frames = baked.frames.astype(np.float32)
    count = len(frames)
    co = np.empty(count * 2, dtype=np.float32)
    co[0::2] = frames
    interpolation = np.full(count, _LINEAR, dtype=np.int32)
    for bone, prop, index, values in baked.channels:
        curve = new_curve(f'pose.bones["{bpy.utils.escape_identifier(bone)}"].{prop}', index, bone)
        points = curve.keyframe_points
        points.add(count)
        co[1::2] = values
        points.foreach_set("co", co)
        points.foreach_set("interpolation", interpolation)
        curve.update()
    return action, slot


def _place(target: bpy.types.Object, written: Sequence[tuple[bpy.types.Action, Any, str]]) -> None:
    """One muted NLA track per new action (first on top) and the first one active, as the importer does."""
    anim_data = target.animation_data or target.animation_data_create()
    assert anim_data is not None
    previous = anim_data.action
    if previous is not None:
        used = {s.action.as_pointer() for t in anim_data.nla_tracks for s in t.strips if s.action is not None}
        if previous.as_pointer() not in used:  # keep the artist's active action: push it into a track
            add_track(anim_data, previous, getattr(anim_data, "action_slot", None), previous.name)
    anim_data.action = None
    for action, slot, track_name in reversed(list(written)):
        add_track(anim_data, action, slot, track_name)
    first, first_slot, _ = written[0]
    make_active(anim_data, first, first_slot)
