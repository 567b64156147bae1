"""In place: locomotion actions (walk, run, jog...) that loop on the spot instead of travelling.

:func:`in_place_copy` copies an action and removes the horizontal travel of its root bones from the copy:
the straight line from the root's position at the first frame to its position at the last frame, in the
ground plane. What is left is the motion around that line (the sway, the vertical bob), so the copy starts
and ends at the same place and loops. Keys and their handles are shifted by the line's value at their
time, whole F-curves at a time (numpy). The original action is kept (with a fake user) so nothing is lost.

A root bone here is a bone without parent, or whose ancestors carry no keys; its location keys are in its
rest frame, which the armature's rest matrix turns into armature space (the ground plane is armature XY:
the armature is upright after normalisation).
"""

from __future__ import annotations

import logging
from typing import Any

import bpy
import numpy as np
from mathutils import Vector

from .actions import fcurves
from .normalize import bone_of, is_locomotion

log = logging.getLogger(__name__)

SUFFIX = " In Place"
_MIN_TRAVEL = 1e-4  # metres


def _root_bones(arm: bpy.types.Object, animated: set[str]) -> list[bpy.types.Bone]:
    data = arm.data
    assert isinstance(data, bpy.types.Armature)
    roots: list[bpy.types.Bone] = []
    for bone in data.bones:
        if bone.name not in animated:
            continue
        if all(parent.name not in animated for parent in bone.parent_recursive):
            roots.append(bone)
    return roots


def _shift(curve: Any, start: float, span: float, amount: float) -> None:
    """Subtract `amount` * (t - start) / span from the keys (and handles) of `curve`."""
    points = curve.keyframe_points
    count = len(points)
    if not count:
        return
    for prop in ("co", "handle_left", "handle_right"):
        values = np.empty(count * 2, dtype=np.float64)
        points.foreach_get(prop, values)
        pairs = values.reshape(count, 2)
        pairs[:, 1] -= amount * (pairs[:, 0] - start) / span
        points.foreach_set(prop, pairs.reshape(-1))
    curve.update()


def travel(arm: bpy.types.Object, action: bpy.types.Action) -> dict[str, Vector]:
    """The horizontal travel (armature space) of each root bone over `action`'s frame range."""
    start, end = float(action.frame_range[0]), float(action.frame_range[1])
    by_bone: dict[str, dict[int, Any]] = {}
    animated: set[str] = set()
    for curve in fcurves(action):
        path = curve.data_path
        if path.startswith('pose.bones["'):
            end_quote = path.find('"]', 12)
            if end_quote > 12:
                animated.add(path[12:end_quote].replace('\\"', '"'))
        name = bone_of(curve)
        if name is not None:
            by_bone.setdefault(name, {})[int(curve.array_index)] = curve
    found: dict[str, Vector] = {}
    for bone in _root_bones(arm, animated):
        curves = by_bone.get(bone.name)
        if not curves:
            continue
        first = Vector([curves[i].evaluate(start) if i in curves else 0.0 for i in range(3)])
        last = Vector([curves[i].evaluate(end) if i in curves else 0.0 for i in range(3)])
        moved = bone.matrix_local.to_3x3() @ (last - first)
        moved.z = 0.0
        if moved.length > _MIN_TRAVEL:
            found[bone.name] = moved
    return found


def in_place_copy(arm: bpy.types.Object, action: bpy.types.Action) -> bpy.types.Action | None:
    """An in-place copy of a locomotion `action` for `arm`, or None (not locomotion, or it does not travel).
    The original gets a fake user so it stays in the file."""
    if not is_locomotion(action.name):
        return None
    moves = travel(arm, action)
    if not moves:
        return None
    start, end = float(action.frame_range[0]), float(action.frame_range[1])
    span = end - start
    if span <= 0:
        return None
    data = arm.data
    assert isinstance(data, bpy.types.Armature)
    copy = action.copy()
    assert copy is not None
    copy.name = action.name + SUFFIX
    curves: dict[tuple[str, int], Any] = {}
    for curve in fcurves(copy):
        name = bone_of(curve)
        if name in moves:
            curves[(name, int(curve.array_index))] = curve
    for name, moved in moves.items():
        local = data.bones[name].matrix_local.to_3x3().transposed() @ moved  # rest frames are orthonormal
        for index in range(3):
            curve = curves.get((name, index))
            if curve is not None:
                _shift(curve, start, span, local[index])
            elif abs(local[index]) > _MIN_TRAVEL:
                log.warning("%s: %s travels along an unkeyed axis; left as it is", action.name, name)
    action.use_fake_user = True
    return copy
