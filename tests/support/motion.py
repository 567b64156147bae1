"""Playing an armature's actions in the real Blender and reading where its bones go (e2e tests)."""

from __future__ import annotations

import bpy
import numpy as np


def play(arm: bpy.types.Object, action: bpy.types.Action | str) -> bpy.types.Action:
    """Make `action` (or the action of that name) the armature's active action, its first slot on Blender
    4.4+, with the NLA tracks muted so that only this action moves the bones."""
    if isinstance(action, str):
        action = bpy.data.actions[action]
    anim_data = arm.animation_data or arm.animation_data_create()
    for track in anim_data.nla_tracks:
        track.mute = True
    anim_data.action = action
    slots = getattr(action, "slots", None)
    if slots is not None and len(slots) and hasattr(anim_data, "action_slot"):
        anim_data.action_slot = slots[0]
    return action


def head_track(arm: bpy.types.Object, action: bpy.types.Action | str) -> np.ndarray:
    """World positions of every bone head (bones sorted by name) at every frame of the action:
    (frames, bones, 3)."""
    played = play(arm, action)
    scene = bpy.context.scene
    first, last = round(played.frame_range[0]), round(played.frame_range[1])
    names = sorted(b.name for b in arm.data.bones)
    frames = []
    for frame in range(first, last + 1):
        scene.frame_set(frame)
        evaluated = arm.evaluated_get(bpy.context.evaluated_depsgraph_get())
        world = evaluated.matrix_world
        frames.append([(world @ evaluated.pose.bones[n].head).to_tuple() for n in names])
    return np.array(frames, dtype=np.float64)
