"""Retarget animations from one humanoid armature onto another (the artist's own rig).

:func:`retarget` puts every chosen action of ``source`` on ``target`` as a new action, baked to keyframes
(no constraints), each in its own muted NLA track on the target and the first one active, as the
importer lays out a character's animations. Nothing of the target's rest pose, mesh or existing actions
changes; on bad input nothing changes at all (:class:`InputError` says why).

How the motion is carried over
------------------------------
* Bones are paired by :mod:`..core.bonemap` (automatic roles, or a map the artist gave or edited).
* Each rig gets a *character frame* from its rest pose: up (ankles to hip joints), left (right hip joint
  to left one) and back. Orientations are compared in that frame, in world space, so object rotation, object
  scale (0.01 FBX rigs), Y-up armatures and characters facing +Y all work.
* Rest poses may differ (a T-pose source, an A-pose target): each target bone is first turned, in the
  character frame, so that its *segment* (from its joint to the next mapped joint of the same limb, e.g.
  elbow to wrist) points like the source's at rest; from there it follows the source bone's world
  rotation. Every mapped segment of the target therefore points exactly where the source's points, at
  every frame, whatever the bone rolls. The hips keep their own rest orientation.
* The hips travel as the source's hips do, scaled by the ratio of the legs' lengths (hip to knee to
  ankle); ``in_place`` removes the horizontal travel (the straight line from the first to the last
  frame), keeping sway and bounce.
* The source is read from its F-curves (keys at every sampled frame are read in bulk; anything else is
  evaluated), every frame of each action's range is computed at once with numpy (forward kinematics of
  both rigs), and the keys are written with ``foreach_set``: no operator and no scene update per frame.

Limits: bones that inherit neither rotation nor scale from their parent are treated as if they did;
constraints and drivers on the source are not evaluated (its keyframes are); bone scale is not carried
over; the target's unmapped bones (fingers the source lacks, twist bones...) keep their rest pose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Quaternion

from ..core import bonemap
from ..core.bonemap import BoneInfo, BoneMap
from ..core.errors import InputError
from .actions import fcurves
from .retarget_actions import (
    _place,
    _sample_curve,
    _sample_frames,
    _slot_for,
    _write,
    source_actions,
)
from .rotations import (
    _axis_angle_to_mat,
    _continuous,
    _euler_to_mat,
    _mat_to_quat,
    _normalized,
    _quat_to_mat,
    _rotation_between,
    _rotation_part,
)

FloatArray = Any  # numpy arrays (kept loose: numpy's typing is not worth the noise here)

# For a role, the roles whose joint ends its segment (the first one both rigs have wins).
_SEGMENT_END: dict[str, tuple[str, ...]] = {
    "spine": ("chest", "upper_chest", "neck", "head"),
    "chest": ("upper_chest", "neck", "head"),
    "upper_chest": ("neck", "head"),
    "neck": ("head",),
}
for _side in bonemap.SIDES:
    _SEGMENT_END.update({
        f"shoulder.{_side}": (f"upper_arm.{_side}",),
        f"upper_arm.{_side}": (f"lower_arm.{_side}",),
        f"lower_arm.{_side}": (f"hand.{_side}",),
        f"hand.{_side}": (f"middle1.{_side}", f"ring1.{_side}", f"index1.{_side}"),
        f"upper_leg.{_side}": (f"lower_leg.{_side}",),
        f"lower_leg.{_side}": (f"foot.{_side}",),
        f"foot.{_side}": (f"toes.{_side}",),
    })
    for _finger in bonemap.FINGERS:
        _SEGMENT_END[f"{_finger}1.{_side}"] = (f"{_finger}2.{_side}",)
        _SEGMENT_END[f"{_finger}2.{_side}"] = (f"{_finger}3.{_side}",)


# --------------------------------------------------------------------------------------------------
# Rigs
# --------------------------------------------------------------------------------------------------


@dataclass
class Rig:
    """An armature's rest data as arrays: bones in hierarchy order (parents first)."""

    obj: bpy.types.Object
    names: list[str]
    index: dict[str, int]
    parent: list[int]
    rest: FloatArray  # (n, 4, 4) bone.matrix_local (armature space)
    rest_rel: FloatArray  # (n, 4, 4) parent rest^-1 @ rest (rest for roots)
    world: FloatArray  # (4, 4) object matrix_world
    world_rot: FloatArray  # (3, 3) its rotation (scale removed)
    roles: dict[str, str] = field(default_factory=dict)
    modes: list[str] = field(default_factory=list)  # each pose bone's rotation mode
    levels: list[FloatArray] = field(default_factory=list)  # bone indices by depth (roots first)

    @classmethod
    def of(cls, obj: bpy.types.Object) -> Rig:
        data = obj.data
        assert isinstance(data, bpy.types.Armature)
        bones = list(data.bones)
        by_name = {b.name: b for b in bones}
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            parent = by_name[name].parent
            if parent is not None:
                visit(parent.name)
            seen.add(name)
            order.append(name)

        for b in bones:
            visit(b.name)
        index = {n: i for i, n in enumerate(order)}
        rest = np.array([np.array(by_name[n].matrix_local) for n in order], dtype=np.float64).reshape(-1, 4, 4)
        parent = [index[by_name[n].parent.name] if by_name[n].parent is not None else -1 for n in order]
        rest_rel = rest.copy()
        for i, p in enumerate(parent):
            if p >= 0:
                rest_rel[i] = np.linalg.inv(rest[p]) @ rest[i]
        world = np.array(obj.matrix_world, dtype=np.float64)
        rig = cls(obj, order, index, parent, rest, rest_rel, world, _rotation_part(world[:3, :3]))
        rig.roles = bonemap.find_roles(describe(obj))
        rig.modes = [obj.pose.bones[n].rotation_mode for n in order]
        depth = [0] * len(order)
        for i, p in enumerate(parent):
            depth[i] = depth[p] + 1 if p >= 0 else 0
        rig.levels = [np.array([i for i in range(len(order)) if depth[i] == d], dtype=np.intp)
                      for d in range(max(depth, default=-1) + 1)]
        return rig

    def joint_world(self, bone: str) -> FloatArray:
        return (self.world @ self.rest[self.index[bone]][:, 3])[:3]


def describe(obj: bpy.types.Object) -> list[BoneInfo]:
    """The plain description of an armature the bone map reads: rest heads and tails in world space."""
    data = obj.data
    assert isinstance(data, bpy.types.Armature)
    world = obj.matrix_world
    out = []
    for bone in data.bones:
        head = world @ bone.head_local
        tail = world @ bone.tail_local
        out.append(BoneInfo(bone.name, bone.parent.name if bone.parent else None, (head.x, head.y, head.z),
                            (tail.x, tail.y, tail.z), bool(bone.use_deform)))
    return out


def _ankle(rig: Rig, side: str) -> FloatArray:
    """World position of an ankle: the foot's joint, else the shin's tail."""
    if f"foot.{side}" in rig.roles:
        return rig.joint_world(rig.roles[f"foot.{side}"])
    data = rig.obj.data
    assert isinstance(data, bpy.types.Armature)
    tail = data.bones[rig.roles[f"lower_leg.{side}"]].tail_local
    return (rig.world @ np.array([tail.x, tail.y, tail.z, 1.0]))[:3]


def _character_frame(rig: Rig) -> FloatArray:
    """World-space columns (left, back, up) of the character at rest. Up runs from the ankles to the hip
    joints (legs stand straighter than spines, which lean and curve), left from the right hip joint to the
    left one."""
    roles = rig.roles
    hip_l, hip_r = rig.joint_world(roles["upper_leg.L"]), rig.joint_world(roles["upper_leg.R"])
    up = _normalized((hip_l + hip_r) / 2.0 - (_ankle(rig, "L") + _ankle(rig, "R")) / 2.0)
    left = hip_l - hip_r
    left = _normalized(left - np.dot(left, up) * up)
    back = np.cross(up, left)
    return np.stack([left, back, up], axis=1)


def _leg_length(rig: Rig) -> float:
    total = 0.0
    for side in bonemap.SIDES:
        hip = rig.joint_world(rig.roles[f"upper_leg.{side}"])
        knee = rig.joint_world(rig.roles[f"lower_leg.{side}"])
        total += float(np.linalg.norm(knee - hip) + np.linalg.norm(_ankle(rig, side) - knee))
    return total / 2.0


# --------------------------------------------------------------------------------------------------
def _source_pose(rig: Rig, action: bpy.types.Action, slot: Any, frames: FloatArray) -> FloatArray:
    """(n_bones, F, 4, 4) armature-space pose matrices of the source for every sampled frame."""
    f, n = len(frames), len(rig.names)
    quat = np.zeros((n, f, 4))
    quat[:, :, 0] = 1.0
    euler = np.zeros((n, f, 3))
    axis_angle = np.zeros((n, f, 4))
    axis_angle[:, :, 2] = 1.0
    loc = np.zeros((n, f, 3))
    scale = np.ones((n, f, 3))
    arrays = {"rotation_quaternion": quat, "rotation_euler": euler, "rotation_axis_angle": axis_angle,
              "location": loc, "scale": scale}
    for curve in fcurves(action, slot):
        path = curve.data_path
        if not path.startswith('pose.bones["'):
            continue
        end = path.find('"]', 12)
        i = rig.index.get(path[12:end].replace('\\"', '"'))
        target = arrays.get(path[end + 3 :])
        if i is None or target is None or not 0 <= curve.array_index < target.shape[2]:
            continue
        target[i, :, curve.array_index] = _sample_curve(curve, frames)
    rot = np.broadcast_to(np.eye(3), (n, f, 3, 3)).copy()
    modes = np.array(rig.modes)
    for mode in set(rig.modes):
        sel = np.flatnonzero(modes == mode)
        if mode == "QUATERNION":
            rot[sel] = _quat_to_mat(quat[sel].reshape(-1, 4)).reshape(len(sel), f, 3, 3)
        elif mode == "AXIS_ANGLE":
            rot[sel] = _axis_angle_to_mat(axis_angle[sel].reshape(-1, 4)).reshape(len(sel), f, 3, 3)
        else:
            rot[sel] = _euler_to_mat(euler[sel].reshape(-1, 3), mode).reshape(len(sel), f, 3, 3)
    basis = np.zeros((n, f, 4, 4))
    basis[:, :, :3, :3] = rot * scale[:, :, None, :]
    basis[:, :, :3, 3] = loc
    basis[:, :, 3, 3] = 1.0
    local = rig.rest_rel[:, None] @ basis  # roots: rest_rel is their rest
    pose = local
    parents = np.array(rig.parent, dtype=np.intp)
    for level in rig.levels[1:]:
        pose[level] = pose[parents[level]] @ local[level]
    return pose


# --------------------------------------------------------------------------------------------------
# The transfer
# --------------------------------------------------------------------------------------------------


@dataclass
class _Pair:
    source: int
    target: int
    role: str
    q: FloatArray  # (3, 3): target rotation = L @ source rotation @ q


@dataclass
class Plan:
    """Everything about a source/target pair that does not depend on the action."""

    source: Rig
    target: Rig
    bone_map: BoneMap
    pairs: list[_Pair]
    l_rot: FloatArray  # (3, 3)
    hips_source: int
    hips_target: int
    ratio: float
    frame_s: FloatArray
    frame_t: FloatArray


def _descends(rig: Rig, bone: str, ancestor: str) -> bool:
    i, top = rig.parent[rig.index[bone]], rig.index[ancestor]
    while i >= 0:
        if i == top:
            return True
        i = rig.parent[i]
    return False


def _segment_end(source: Rig, target: Rig, bone_map: BoneMap, s_name: str, role: str,
                 t_name: str) -> tuple[str, str] | None:
    """The mapped pair of joints that ends a bone's segment (elbow for the upper arm, neck for the chest):
    the first of its role's end roles whose source bone is mapped, below both bones."""
    for end in _SEGMENT_END.get(role, ()):
        s_end = source.roles.get(end)
        t_end = bone_map.pairs.get(s_end) if s_end else None
        if s_end and t_end and _descends(source, s_end, s_name) and _descends(target, t_end, t_name):
            d_s = source.joint_world(s_end) - source.joint_world(s_name)
            d_t = target.joint_world(t_end) - target.joint_world(t_name)
            if np.linalg.norm(d_s) > 1e-9 and np.linalg.norm(d_t) > 1e-9:
                return s_end, t_end
    return None


def plan(source: Rig, target: Rig, bone_map: BoneMap) -> Plan:
    missing = [f"source: {r}" for r in bonemap.missing_required(source.roles)]
    missing += [f"target: {r}" for r in bonemap.missing_required(target.roles)]
    if missing:
        raise InputError(
            "Cannot find the hips and both legs (hip and knee bones) of both armatures: missing "
            + ", ".join(missing) + ". Give a bone map (bone_map=) that names them.")
    hips_s = source.roles["hips"]
    if hips_s not in bone_map.pairs:
        raise InputError(f"The bone map does not map the source's hips ({hips_s!r}) to a target bone")
    frame_s, frame_t = _character_frame(source), _character_frame(target)
    m_s = frame_s.T @ source.world_rot
    m_t = frame_t.T @ target.world_rot
    roles_by_bone = {b: r for r, b in source.roles.items()}
    pairs: list[_Pair] = []
    for s_name, t_name in bone_map.pairs.items():
        role = bone_map.roles.get(s_name) or roles_by_bone.get(s_name, "")
        si, ti = source.index[s_name], target.index[t_name]
        rest_s = _rotation_part(source.rest[si][:3, :3])
        rest_t = _rotation_part(target.rest[ti][:3, :3])
        if s_name == hips_s:
            a = np.eye(3)
        else:
            ends = _segment_end(source, target, bone_map, s_name, role, t_name)
            if ends is not None:
                dir_s = frame_s.T @ (source.joint_world(ends[0]) - source.joint_world(s_name))
                dir_t = frame_t.T @ (target.joint_world(ends[1]) - target.joint_world(t_name))
            else:  # no mapped joint ends this segment (a hand without fingers, a head): the bones' own axes
                dir_s, dir_t = m_s @ rest_s[:, 1], m_t @ rest_t[:, 1]
            a = _rotation_between(dir_t, dir_s)
        q = rest_s.T @ m_s.T @ a @ m_t @ rest_t
        pairs.append(_Pair(si, ti, role, q))
    pairs.sort(key=lambda p: p.target)
    ratio = _leg_length(target) / max(_leg_length(source), 1e-9)
    return Plan(source, target, bone_map, pairs, m_t.T @ m_s, source.index[hips_s],
                target.index[bone_map.pairs[hips_s]], ratio, frame_s, frame_t)


@dataclass
class Baked:
    """The target's keys for one action: per bone, its channels' values over the frames."""

    name: str
    frames: FloatArray
    channels: list[tuple[str, str, int, FloatArray]]  # (bone, property, index, values)


def bake(p: Plan, action: bpy.types.Action, slot: Any, *, in_place: bool = False) -> Baked:
    frames = _sample_frames(action)
    f = len(frames)
    src = _source_pose(p.source, action, slot, frames)
    tgt = p.target
    src_idx = np.array([pair.source for pair in p.pairs], dtype=np.intp)
    tgt_idx = [pair.target for pair in p.pairs]
    qs = np.array([pair.q for pair in p.pairs])  # (m, 3, 3)
    # The target's wanted armature-space rotation of every mapped bone at every frame.
    desired = (p.l_rot @ _rotation_part(src[src_idx][:, :, :3, :3])) @ qs[:, None]
    desired_of = {t: k for k, t in enumerate(tgt_idx)}
    # Hips position: the source's travel in its character frame, scaled, in the target's.
    hs = p.hips_source
    src_world = (p.source.world @ src[hs][:, :, 3].T).T[:, :3]
    rest_world = (p.source.world @ p.source.rest[hs][:, 3])[:3]
    travel = (src_world - rest_world) @ p.frame_s  # (F, 3) in character axes
    if in_place and f > 1:
        line = np.linspace(0.0, 1.0, f)[:, None] * (travel[-1, :2] - travel[0, :2])[None, :]
        travel[:, :2] -= travel[0, :2] + line
    ht = p.hips_target
    target_rest_world = (tgt.world @ tgt.rest[ht][:, 3])[:3]
    world_pos = target_rest_world + (p.ratio * travel) @ p.frame_t.T
    inv_world = np.linalg.inv(tgt.world)
    arm_pos = (inv_world[:3, :3] @ world_pos.T).T + inv_world[:3, 3]

    # Forward kinematics of the target, level by level, rotations and positions apart (every matrix is
    # rigid): unmapped bones follow their parent at rest, mapped ones take their wanted rotation.
    n = len(tgt.names)
    rots = np.empty((n, f, 3, 3))
    poss = np.empty((n, f, 3))
    base_rot = np.empty((n, f, 3, 3))
    base_pos = np.empty((n, f, 3))
    needed = np.array(_needed(tgt, desired_of))
    mapped = np.zeros(n, dtype=bool)
    mapped[tgt_idx] = True
    which = np.zeros(n, dtype=np.intp)
    which[tgt_idx] = np.arange(len(tgt_idx))
    parents = np.array(tgt.parent, dtype=np.intp)
    rel_rot, rel_pos = tgt.rest_rel[:, :3, :3], tgt.rest_rel[:, :3, 3]
    for depth, level in enumerate(tgt.levels):
        level = level[needed[level]]
        if not len(level):
            continue
        if depth == 0:
            base_rot[level] = rel_rot[level][:, None]
            base_pos[level] = rel_pos[level][:, None]
        else:
            pr, pp = rots[parents[level]], poss[parents[level]]
            base_rot[level] = pr @ rel_rot[level][:, None]
            base_pos[level] = (pr @ rel_pos[level][:, None, :, None])[..., 0] + pp
        rots[level] = base_rot[level]
        poss[level] = base_pos[level]
        chosen = level[mapped[level]]
        rots[chosen] = desired[which[chosen]]
        if ht in chosen:
            poss[ht] = arm_pos
    order = np.array(tgt_idx, dtype=np.intp)
    local = _rotation_part(np.swapaxes(base_rot[order], 2, 3) @ desired)  # (m, F, 3, 3)
    channels: list[tuple[str, str, int, FloatArray]] = []
    modes = [tgt.modes[t] for t in tgt_idx]
    quat_rows = [k for k, mode in enumerate(modes) if mode == "QUATERNION"]
    if quat_rows:
        q = _continuous(_mat_to_quat(local[quat_rows].reshape(-1, 3, 3)).reshape(len(quat_rows), f, 4))
        for row, k in enumerate(quat_rows):
            name = tgt.names[tgt_idx[k]]
            channels.extend((name, "rotation_quaternion", c, q[row, :, c]) for c in range(4))
    for k, mode in enumerate(modes):
        if mode != "QUATERNION":
            channels.extend(_rotation_channels(tgt.names[tgt_idx[k]], mode, local[k]))
    loc = np.einsum("fji,fj->fi", base_rot[ht], arm_pos - base_pos[ht])
    channels.extend((tgt.names[ht], "location", c, loc[:, c].copy()) for c in range(3))
    return Baked(action.name, frames, channels)


def _needed(rig: Rig, mapped: dict[int, Any]) -> list[bool]:
    """Bones whose pose matters: the mapped ones and their ancestors."""
    needed = [False] * len(rig.names)
    for i in mapped:
        while i >= 0 and not needed[i]:
            needed[i] = True
            i = rig.parent[i]
    return needed


def _rotation_channels(bone: str, mode: str, rot: FloatArray) -> list[tuple[str, str, int, FloatArray]]:
    if mode == "AXIS_ANGLE":
        q = _continuous(_mat_to_quat(rot)[None])[0]
        values = np.empty((len(q), 4))
        for j, row in enumerate(q):
            axis, angle = Quaternion(row).to_axis_angle()
            values[j] = (angle, axis.x, axis.y, axis.z)
        return [(bone, "rotation_axis_angle", k, values[:, k].copy()) for k in range(4)]
    values = np.empty((len(rot), 3))
    previous = None
    order: Any = mode
    for j, m in enumerate(rot):
        e = Matrix(m.tolist()).to_euler(order, previous) if previous is not None else Matrix(m.tolist()).to_euler(order)
        values[j] = e[:]
        previous = e
    return [(bone, "rotation_euler", k, values[:, k].copy()) for k in range(3)]


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


def armature_object(value: Any, what: str) -> bpy.types.Object:
    obj = bpy.data.objects.get(value) if isinstance(value, str) else value
    if not isinstance(obj, bpy.types.Object):
        raise InputError(f"The {what} {value!r} is not an object in this file")
    if obj.type != "ARMATURE":
        raise InputError(f"The {what} {obj.name!r} is not an armature (it is a {obj.type.lower()})")
    return obj


def check_target(target: bpy.types.Object) -> None:
    if target.library is not None or (target.data is not None and target.data.library is not None):
        raise InputError(f"{target.name!r} is linked from another file: make it local (or a library override) "
                         "to give it animations")
    if target.mode == "EDIT":
        raise InputError(f"{target.name!r} is in Edit Mode: leave Edit Mode, then retarget")
    anim_data = target.animation_data
    if anim_data is not None and anim_data.use_tweak_mode:
        raise InputError(f"{target.name!r} is in NLA tweak mode: leave it, then retarget")


def resolve_map(source: Rig, target: Rig, bone_map: Any) -> BoneMap:
    """The automatic map, or the artist's (a BoneMap, a {source: target} dict or a preset file path)."""
    if bone_map is None:
        result = bonemap.auto_map(describe(source.obj), describe(target.obj))
    elif isinstance(bone_map, BoneMap):
        result = bone_map
    elif isinstance(bone_map, dict):
        result = BoneMap.from_pairs({str(k): str(v) for k, v in bone_map.items()}, source.roles)
    elif isinstance(bone_map, str | Path):
        path = Path(bpy.path.abspath(str(bone_map)))
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"Cannot read the bone map preset {path}: {exc.strerror or exc}") from exc
        result = BoneMap.from_json(text)
    else:
        raise InputError("bone_map= takes a BoneMap, a {source bone: target bone} dict or a preset file path")
    by_bone = {b: r for r, b in source.roles.items()}
    for s in result.pairs:
        if s not in result.roles and s in by_bone:
            result.roles[s] = by_bone[s]
    return result.checked(source.names, target.names)


def pick_actions(source: bpy.types.Object, actions: Iterable[Any] | None) -> list[tuple[bpy.types.Action, Any]]:
    found = source_actions(source)
    if actions is None:
        if not found:
            raise InputError(f"{source.name!r} has no actions to retarget (no active action, no NLA strips)")
        return found
    by_pointer = {a.as_pointer(): (a, s) for a, s in found}
    chosen: list[tuple[bpy.types.Action, Any]] = []
    for item in actions:
        action = bpy.data.actions.get(item) if isinstance(item, str) else item
        if not isinstance(action, bpy.types.Action):
            raise InputError(f"{item!r} is not an action in this file")
        pair = by_pointer.get(action.as_pointer()) or (action, _slot_for(action, None, source))
        if pair not in chosen:
            chosen.append(pair)
    if not chosen:
        raise InputError("actions= is empty: name at least one action to retarget")
    return chosen


def overridden_bones(target: bpy.types.Object, action_name: str) -> list[str]:
    """Bones of `target` keyed by the action whose own constraints override those keys (a generated Rigify
    rig's DEF- bones copy its controls): the artist should map the controls instead."""
    action = bpy.data.actions.get(action_name)
    if action is None:
        return []
    keyed = {c.data_path[12 : c.data_path.find('"]', 12)] for c in fcurves(action, _slot_for(action, None, target))}
    found = []
    for name in sorted(keyed):
        pose_bone = target.pose.bones.get(name)
        if pose_bone is not None and any(not c.mute and c.influence > 0.0 for c in pose_bone.constraints):
            found.append(name)
    return found


def retarget(source: Any, target: Any, actions: Iterable[Any] | None = None, bone_map: Any = None,
             in_place: bool = False, progress: Any = None) -> list[str]:
    """Put `source`'s actions on `target` as new baked actions; returns their names (see the module doc)."""
    src = armature_object(source, "source")
    tgt = armature_object(target, "target")
    if src == tgt:
        raise InputError("The source and the target are the same armature")
    check_target(tgt)
    if src.mode == "EDIT":
        raise InputError(f"{src.name!r} is in Edit Mode: leave Edit Mode, then retarget")
    chosen = pick_actions(src, actions)
    src_rig, tgt_rig = Rig.of(src), Rig.of(tgt)
    the_plan = plan(src_rig, tgt_rig, resolve_map(src_rig, tgt_rig, bone_map))
    baked = []
    for k, (action, slot) in enumerate(chosen):
        baked.append(bake(the_plan, action, slot, in_place=in_place))
        if progress is not None:
            progress(k + 1, 2 * len(chosen))
    written: list[tuple[bpy.types.Action, Any, str]] = []
    had_anim_data = tgt.animation_data is not None
    before_tracks = {t.as_pointer() for t in tgt.animation_data.nla_tracks} if had_anim_data else set()
    before_action = tgt.animation_data.action if had_anim_data else None
    before_slot = getattr(tgt.animation_data, "action_slot", None) if had_anim_data else None
    try:
        for k, item in enumerate(baked):
            action, slot = _write(item, f"{tgt.name}|{item.name}", tgt)
            written.append((action, slot, item.name))
            if progress is not None:
                progress(len(chosen) + k + 1, 2 * len(chosen))
        _place(tgt, written)
    except Exception:
        # Leave the target as it was: its tracks, its active action, no new actions.
        anim_data = tgt.animation_data
        if anim_data is not None:
            for track in [t for t in anim_data.nla_tracks if t.as_pointer() not in before_tracks]:
                anim_data.nla_tracks.remove(track)
            anim_data.action = before_action
            if before_slot is not None and hasattr(anim_data, "action_slot"):
                anim_data.action_slot = before_slot
            if not had_anim_data:
                tgt.animation_data_clear()
        for action, _slot, _name in written:
            bpy.data.actions.remove(action)
        raise
    return [action.name for action, _slot, _name in written]
