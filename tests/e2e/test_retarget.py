"""Retargeting (addon/blender/retarget.py) in real Blender: rigs built here with bpy, motion checked frame by frame.

The source is the test humanoid (tests/assets/build_character.py: Meshy's bone names, a T-pose) with its
animations plus a walk that travels. Targets have other bone names (Unreal, Mixamo), other proportions
(longer legs, a shorter torso, longer arms), an A-pose rest, odd bone rolls, a pelvis pointing backwards,
a root bone, twist bones and toes; one is stored like a Mixamo FBX import (Y-up armature, object rotated
and scaled 0.01) and faces +Y.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest
from mathutils import Euler, Matrix, Vector

from addon.blender import actions
from addon.blender import retarget as rt
from addon.core.bonemap import BoneMap
from addon.core.errors import InputError
from tests.assets import build_character as bc

Vec3 = tuple[float, float, float]

LEG_SCALE = 1.2  # the target's legs (thigh, shin and foot alike) are this much longer
TORSO_SCALE = 0.85
ARM_SCALE = 1.1
A_POSE_DEG = 40.0

# Source role -> (source bone, Unreal-style target name, Mixamo-style target name)
UNREAL = {"Hips": "pelvis", "Spine": "spine_01", "Chest": "spine_03", "Neck": "neck_01", "Head": "head"}
MIXAMO = {"Hips": "mixamorig:Hips", "Spine": "mixamorig:Spine", "Chest": "mixamorig:Spine1",
          "Neck": "mixamorig:Neck", "Head": "mixamorig:Head"}
for _side, _s, _word in (("Left", "l", "Left"), ("Right", "r", "Right")):
    UNREAL.update({f"{_side}Shoulder": f"clavicle_{_s}", f"{_side}UpperArm": f"upperarm_{_s}",
                   f"{_side}LowerArm": f"lowerarm_{_s}", f"{_side}Hand": f"hand_{_s}",
                   f"{_side}UpperLeg": f"thigh_{_s}", f"{_side}LowerLeg": f"calf_{_s}",
                   f"{_side}Foot": f"foot_{_s}"})
    MIXAMO.update({f"{_side}Shoulder": f"mixamorig:{_word}Shoulder", f"{_side}UpperArm": f"mixamorig:{_word}Arm",
                   f"{_side}LowerArm": f"mixamorig:{_word}ForeArm", f"{_side}Hand": f"mixamorig:{_word}Hand",
                   f"{_side}UpperLeg": f"mixamorig:{_word}UpLeg", f"{_side}LowerLeg": f"mixamorig:{_word}Leg",
                   f"{_side}Foot": f"mixamorig:{_word}Foot"})

# Segments whose direction must match: (bone, the bone whose head ends the segment), source names.
SEGMENTS = [("Spine", "Chest"), ("Chest", "Neck"), ("Neck", "Head")]
for _side in ("Left", "Right"):
    SEGMENTS += [(f"{_side}Shoulder", f"{_side}UpperArm"), (f"{_side}UpperArm", f"{_side}LowerArm"),
                 (f"{_side}LowerArm", f"{_side}Hand"), (f"{_side}UpperLeg", f"{_side}LowerLeg"),
                 (f"{_side}LowerLeg", f"{_side}Foot")]


# --------------------------------------------------------------------------------------------------
# Building the rigs
# --------------------------------------------------------------------------------------------------


def _reshape(p: Vec3) -> Vec3:
    """The target's proportions, from a point of the source's rest (character space, metres)."""
    x, y, z = p
    hip_z = 0.92
    if z <= hip_z + 1e-9:
        return (x * LEG_SCALE, y * LEG_SCALE, z * LEG_SCALE)
    top = hip_z * LEG_SCALE + (z - hip_z) * TORSO_SCALE
    if abs(x) > 0.05 + 1e-9:  # arms: longer, then lowered into an A-pose about the shoulder joint
        sign = 1.0 if x > 0 else -1.0
        shoulder_x, shoulder_z = 0.18, hip_z * LEG_SCALE + (1.38 - hip_z) * TORSO_SCALE
        dx = (abs(x) - 0.18) * ARM_SCALE
        if abs(x) < 0.18:
            return (x, y, top)
        a = math.radians(-A_POSE_DEG)
        return (sign * (shoulder_x + dx * math.cos(a)), y, shoulder_z + dx * math.sin(a))
    return (x, y, top)


def _target_bones(names: dict[str, str], extras: bool) -> list[tuple[str, Vec3, Vec3, str | None, float]]:
    """(name, head, tail, parent, roll) in character space for the target."""
    out: list[tuple[str, Vec3, Vec3, str | None, float]] = []
    root = None
    if extras:
        root = "root"
        out.append(("root", (0.0, 0.0, 0.0), (0.0, 0.15, 0.0), None, 0.0))
    for i, spec in enumerate(bc.BONES):
        head, tail = _reshape(spec.head), _reshape(spec.tail)
        parent = names[spec.parent] if spec.parent else root
        name = names[spec.name]
        roll = math.radians((i * 53) % 180 - 90)  # odd rolls everywhere
        if spec.name == "Hips":
            tail = (head[0], head[1] + 0.12, head[2])  # a pelvis pointing backwards
        if spec.name == "Chest" and extras:  # the source's Chest is two bones here: spine_02 + spine_03
            mid = ((head[0] + tail[0]) / 2, (head[1] + tail[1]) / 2, (head[2] + tail[2]) / 2)
            out.append(("spine_02", head, mid, parent, roll))
            out.append((name, mid, tail, "spine_02", 0.3))
            continue
        if spec.parent == "Chest" and extras:
            parent = "spine_03"
        out.append((name, head, tail, parent, roll))
    if extras:
        for s, sign in (("l", 1.0), ("r", -1.0)):
            foot = next(b for b in out if b[0] == f"foot_{s}")
            toe_tail = (foot[2][0], foot[2][1] - 0.07, foot[2][2])
            out.append((f"ball_{s}", foot[2], toe_tail, f"foot_{s}", 0.0))
            thigh = next(b for b in out if b[0] == f"thigh_{s}")
            mid = tuple((a + b) / 2 for a, b in zip(thigh[1], thigh[2], strict=True))
            out.append((f"thigh_twist_01_{s}", mid, thigh[2], f"thigh_{s}", 0.0))  # type: ignore[arg-type]
            del sign
    return out


def _armature(name: str, bones: list[tuple[str, Vec3, Vec3, str | None, float]], world: Matrix) -> bpy.types.Object:
    """An armature whose bones sit at `bones` (character space) once the object has matrix `world`."""
    scene = bpy.context.scene
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    obj.matrix_world = world
    to_local = world.inverted()
    bpy.context.view_layer.objects.active = obj
    for other in bpy.context.view_layer.objects:
        other.select_set(other == obj)
    bpy.ops.object.mode_set(mode="EDIT")
    for bname, head, tail, _parent, roll in bones:
        eb = data.edit_bones.new(bname)
        eb.head = to_local @ Vector(head)
        eb.tail = to_local @ Vector(tail)
        eb.roll = roll
    for bname, _head, _tail, parent, _roll in bones:
        if parent:
            data.edit_bones[bname].parent = data.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    return obj


def _walk_forward(arm: bpy.types.Object) -> bpy.types.Action:
    """A walk that travels 1.2 m forward in 24 frames (hips key: bone-local +Z is world -Y)."""
    anim = arm.animation_data or arm.animation_data_create()
    action = bpy.data.actions.new("WalkForward")
    anim.action = action
    for frame in range(1, 25):
        p = (frame - 1) / 23
        pose, offset = bc.MOTIONS["Walking"](p)
        for name, (x, y, z) in pose.items():
            pb = arm.pose.bones[name]
            pb.rotation_quaternion = Euler((math.radians(x), math.radians(y), math.radians(z))).to_quaternion()
            pb.keyframe_insert("rotation_quaternion", frame=frame, group=name)
        hips = arm.pose.bones["Hips"]
        hips.location = (0.0, offset[2], 1.2 * p)
        hips.keyframe_insert("location", frame=frame, group="Hips")
    return action


def build_source(names: tuple[str, ...] = ("Walking", "Dance", "Jump")) -> bpy.types.Object:
    """The test humanoid with `names` and WalkForward: the first active, the others in muted NLA tracks."""
    scene = bpy.context.scene
    assert scene is not None
    arm = bc._make_armature(scene)
    arm.name = "Source"
    actions = [bc._key_animation(arm, bc.ANIMATIONS[n]) for n in names]
    actions.append(_walk_forward(arm))
    anim = arm.animation_data
    anim.action = None
    for action in reversed(actions[1:]):
        track = anim.nla_tracks.new()
        track.name = action.name
        strip = track.strips.new(action.name, int(action.frame_range[0]), action)
        if hasattr(strip, "action_slot") and len(action.slots):
            strip.action_slot = action.slots[0]
        track.mute = True
    _play(arm, actions[0])
    bc._reset_pose(arm)
    return arm


TARGET_WORLDS: dict[str, Callable[[], Matrix]] = {
    "unreal": lambda: Matrix.Translation((2.0, 0.5, 0.0)),
    # Mixamo FBX import: Y-up armature, object turned 90 degrees about X and scaled 0.01; faces +Y.
    "mixamo_fbx": lambda: Matrix.Rotation(math.pi, 4, "Z") @ Matrix.Translation((1.0, 0.0, 0.0))
    @ Matrix.Rotation(math.pi / 2, 4, "X") @ Matrix.Diagonal((0.01, 0.01, 0.01, 1.0)),
}
FACING: dict[str, Matrix] = {"unreal": Matrix.Identity(3), "mixamo_fbx": Matrix.Rotation(math.pi, 3, "Z")}


def build_target(kind: str) -> tuple[bpy.types.Object, dict[str, str]]:
    names = UNREAL if kind == "unreal" else MIXAMO
    world = TARGET_WORLDS[kind]()
    facing = FACING[kind].to_4x4()
    offset = world.to_translation()

    def place(p: Vec3) -> Vec3:
        v = facing @ Vector(p) + offset
        return (v.x, v.y, v.z)

    bones = [(n, place(h), place(t), p, r) for n, h, t, p, r in _target_bones(names, extras=kind == "unreal")]
    obj = _armature("MyRig", bones, world)
    return obj, names


def _play(obj: bpy.types.Object, action: bpy.types.Action) -> None:
    anim = obj.animation_data or obj.animation_data_create()
    anim.action = action
    if hasattr(anim, "action_slot") and len(action.slots):
        slot = next((s for s in action.slots if s.identifier == "OB" + obj.name), action.slots[0])
        anim.action_slot = slot


@pytest.fixture
def scene() -> Iterator[bpy.types.Scene]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    assert scene is not None
    scene.render.fps = 24
    yield scene
    bpy.ops.wm.read_factory_settings(use_empty=True)


# --------------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------------


def _joint(obj: bpy.types.Object, bone: str) -> np.ndarray:
    return np.array(obj.matrix_world @ obj.pose.bones[bone].head)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    c = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def rest_leg_length(rig: bpy.types.Object, upper: str, lower: str, foot: str) -> float:
    """World-space length of a rig's leg at rest (hip joint to knee to ankle)."""
    bones, world = rig.data.bones, rig.matrix_world
    hip, knee, ankle = (world @ bones[name].head_local for name in (upper, lower, foot))
    return float((knee - hip).length + (ankle - knee).length)


def _compare(source: bpy.types.Object, target: bpy.types.Object, names: dict[str, str], src_action: Any,
             new_action: Any, facing: Matrix, leg_ratio: float | None = None) -> tuple[float, float]:
    """(worst segment angle in degrees, worst foot drift relative to the target's leg length). The feet
    must travel as the source's do, scaled by the legs' length ratio (measured on the two rigs at rest:
    an imported character is normalised to its real-world size)."""
    target_leg = rest_leg_length(target, names["LeftUpperLeg"], names["LeftLowerLeg"], names["LeftFoot"])
    if leg_ratio is None:
        leg_ratio = target_leg / rest_leg_length(source, "LeftUpperLeg", "LeftLowerLeg", "LeftFoot")
    scene = bpy.context.scene
    _play(source, src_action)
    _play(target, new_action)
    to_char = np.array(facing.inverted())
    worst = 0.0
    drift = 0.0
    first = int(src_action.frame_range[0])
    foot_start: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for frame in range(first, int(src_action.frame_range[1]) + 1):
        scene.frame_set(frame)
        for bone, end in SEGMENTS:
            ds = _joint(source, end) - _joint(source, bone)
            dt = to_char @ (_joint(target, names[end]) - _joint(target, names[bone]))
            worst = max(worst, _angle(ds, dt))
        for side in ("Left", "Right"):
            s_foot = _joint(source, f"{side}Foot")
            t_foot = to_char @ _joint(target, names[f"{side}Foot"])
            if side not in foot_start:
                foot_start[side] = (s_foot, t_foot)
            s0, t0 = foot_start[side]
            drift = max(drift, float(np.linalg.norm((t_foot - t0) - leg_ratio * (s_foot - s0))))
    return worst, drift / target_leg


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unreal", "mixamo_fbx"])
def test_every_limb_points_like_the_source_on_a_renamed_reproportioned_a_pose_rig(scene: Any, kind: str) -> None:
    source = build_source()
    target, names = build_target(kind)
    bone_map = rt.bonemap.auto_map(rt.describe(source), rt.describe(target))
    for src_name, tgt_name in names.items():
        assert bone_map.pairs.get(src_name) == tgt_name, (src_name, bone_map.pairs)
    made = rt.retarget(source, target)
    assert made == [f"MyRig|{n}" for n in ("Walking", "Dance", "Jump", "WalkForward")]
    for src_name, new_name in zip(("Walking", "Dance", "Jump", "WalkForward"), made, strict=True):
        worst, drift = _compare(source, target, names, bpy.data.actions[src_name], bpy.data.actions[new_name],
                                FACING[kind])
        assert worst < 2.0, f"{src_name}: a segment is {worst:.2f} degrees off"
        assert drift < 0.01, f"{src_name}: a foot drifts {drift:.3%} of the leg length"


def test_layout_on_the_target_and_nothing_of_it_changed(scene: Any) -> None:
    source = build_source()
    target, _names = build_target("unreal")
    mesh = bpy.data.meshes.new("Body")
    mesh.from_pydata([(2.0, 0.5, 1.0), (2.1, 0.5, 1.0), (2.0, 0.6, 1.2)], [], [(0, 1, 2)])
    body = bpy.data.objects.new("Body", mesh)
    scene.collection.objects.link(body)
    body.parent = target
    body.modifiers.new("Armature", "ARMATURE").object = target
    own = bpy.data.actions.new("MyIdle")
    _play(target, own)
    target.pose.bones["pelvis"].location = (0.0, 0.1, 0.0)
    target.pose.bones["pelvis"].keyframe_insert("location", frame=1)
    target.pose.bones["pelvis"].location = (0.0, 0.0, 0.0)
    own_keys = [tuple(k.co) for c in actions.fcurves(own, rt._slot_for(own, target.animation_data, target))
                for k in c.keyframe_points]
    rest_before = [b.matrix_local.copy() for b in target.data.bones]
    verts_before = [v.co.copy() for v in mesh.vertices]
    made = rt.retarget(source.name, target.name, in_place=True)
    anim = target.animation_data
    assert anim.action == bpy.data.actions[made[0]]
    tracks = {t.name: t for t in anim.nla_tracks}
    for new, src in zip(made, ("Walking", "Dance", "Jump", "WalkForward"), strict=True):
        strips = tracks[src].strips
        assert len(strips) == 1 and strips[0].action.name == new and tracks[src].mute
    assert list(anim.nla_tracks)[-1].name == "Walking"  # first on top
    assert "MyIdle" in tracks and tracks["MyIdle"].strips[0].action == own  # the artist's action is kept
    assert [tuple(k.co) for c in actions.fcurves(own, rt._slot_for(own, tracks["MyIdle"].strips[0], target))
            for k in c.keyframe_points] == own_keys
    assert [b.matrix_local for b in target.data.bones] == rest_before
    assert [v.co for v in mesh.vertices] == verts_before
    assert all(len(pb.constraints) == 0 for pb in target.pose.bones)
    # in_place: the walk that travels 1.2 m stays put (hips end where they started, horizontally)
    _play(target, bpy.data.actions[made[3]])
    scene.frame_set(1)
    start = _joint(target, "pelvis")
    scene.frame_set(24)
    assert np.linalg.norm((_joint(target, "pelvis") - start)[:2]) < 0.01


def test_travel_scales_with_the_legs(scene: Any) -> None:
    source = build_source(("Walking",))
    target, _names = build_target("mixamo_fbx")
    made = rt.retarget(source, target, actions=["WalkForward"])
    _play(target, bpy.data.actions[made[0]])
    scene.frame_set(1)
    start = _joint(target, "mixamorig:Hips")
    scene.frame_set(24)
    moved = _joint(target, "mixamorig:Hips") - start
    assert moved[1] == pytest.approx(1.2 * LEG_SCALE, abs=0.01)  # it faces +Y: forward is +Y in world


def test_identical_rigs_reproduce_the_motion_exactly(scene: Any) -> None:
    source = build_source(("Walking", "Dance"))
    twin = source.copy()
    twin.data = source.data.copy()
    twin.animation_data_clear()
    twin.name = "Twin"
    twin.location = (3.0, 1.0, 0.0)
    twin.scale = (0.01, 0.01, 0.01)  # any object scale
    scene.collection.objects.link(twin)
    bpy.context.view_layer.update()
    made = rt.retarget(source, twin)
    for src_name, new_name in zip(("Walking", "Dance", "WalkForward"), made, strict=True):
        _play(source, bpy.data.actions[src_name])
        _play(twin, bpy.data.actions[new_name])  # type: ignore[arg-type]
        for frame in range(1, int(bpy.data.actions[src_name].frame_range[1]) + 1):
            scene.frame_set(frame)
            for pb in source.pose.bones:
                a, b = np.array(pb.matrix), np.array(twin.pose.bones[pb.name].matrix)
                assert np.abs(a - b).max() < 1e-4, (src_name, frame, pb.name)


def _state(obj: bpy.types.Object) -> tuple[Any, ...]:
    anim = obj.animation_data
    return (len(bpy.data.actions), anim.action if anim else None, len(anim.nla_tracks) if anim else 0,
            [b.matrix_local.copy() for b in obj.data.bones] if obj.type == "ARMATURE" else None)


def test_bad_input_is_refused_and_changes_nothing(scene: Any, tmp_path: Path) -> None:
    source = build_source(("Walking",))
    target, _names = build_target("unreal")
    before = _state(target)
    mesh_obj = bpy.data.objects.new("Mesh", bpy.data.meshes.new("Mesh"))
    scene.collection.objects.link(mesh_obj)
    with pytest.raises(InputError, match="not an armature"):
        rt.retarget(source, mesh_obj)
    with pytest.raises(InputError, match="not an armature"):
        rt.retarget(mesh_obj, target)
    with pytest.raises(InputError, match="not an object"):
        rt.retarget("Nope", target)
    bare = _armature("Bare", [(n, h, t, p, r) for n, h, t, p, r in _target_bones(UNREAL, extras=False)],
                     Matrix.Identity(4))
    with pytest.raises(InputError, match="no actions"):
        rt.retarget(bare, target)
    stick = _armature("Stick", [("a", (0, 0, 0), (0, 0, 1), None, 0.0), ("b", (0, 0, 1), (0, 0, 2), "a", 0.0)],
                      Matrix.Identity(4))
    stick_before = _state(stick)
    with pytest.raises(InputError, match="hips and both legs"):
        rt.retarget(source, stick)
    assert _state(stick) == stick_before
    with pytest.raises(InputError, match="do not have"):
        rt.retarget(source, target, bone_map={"Hips": "nope"})
    with pytest.raises(InputError, match="same armature"):
        rt.retarget(source, source)
    bpy.context.view_layer.objects.active = target
    bpy.ops.object.mode_set(mode="EDIT")
    with pytest.raises(InputError, match="Edit Mode"):
        rt.retarget(source, target)
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.context.view_layer.objects.active = source
    bpy.ops.object.mode_set(mode="EDIT")
    with pytest.raises(InputError, match="'Source' is in Edit Mode"):
        rt.retarget(source, target)
    bpy.ops.object.mode_set(mode="OBJECT")
    assert _state(target) == before
    # A linked (library) target.
    library = tmp_path / "rig.blend"
    bpy.data.libraries.write(str(library), {target}, fake_user=True)
    loader: Any = bpy.data.libraries.load
    with loader(str(library), link=True) as (_src, dst):
        dst.objects = ["MyRig"]
    linked = next(o for o in bpy.data.objects if o.library is not None)
    linked_before = (len(bpy.data.actions), linked.animation_data)
    with pytest.raises(InputError, match="linked"):
        rt.retarget(source, linked)
    assert (len(bpy.data.actions), linked.animation_data) == linked_before
    assert _state(target) == before


def test_bone_map_preset_round_trip_drives_the_retarget(scene: Any, tmp_path: Path) -> None:
    source = build_source(("Wave",))
    target, _names = build_target("unreal")
    bone_map = rt.bonemap.auto_map(rt.describe(source), rt.describe(target))
    del bone_map.pairs["RightHand"]  # edited by hand: the right hand stays at rest
    preset = tmp_path / "map.json"
    preset.write_text(bone_map.to_json(), encoding="utf-8")
    made = rt.retarget(source, target, actions=[bpy.data.actions["Wave"]], bone_map=str(preset))
    assert made == ["MyRig|Wave"]
    bones = {c.data_path.split('"')[1] for c in actions.fcurves(bpy.data.actions[made[0]],
                                                            rt._slot_for(bpy.data.actions[made[0]], None, target))}
    assert "hand_r" not in bones and "hand_l" in bones and "lowerarm_r" in bones
    assert isinstance(BoneMap.from_json(preset.read_text(encoding="utf-8")), BoneMap)


def _as_euler_sparse(arm: bpy.types.Object, action: bpy.types.Action, mode: Any, step: int) -> bpy.types.Action:
    """`action` again with every rotation as Euler (`mode`) keys every `step` frames (Bezier in between)."""
    _play(arm, action)
    scene = bpy.context.scene
    frames = list(range(int(action.frame_range[0]), int(action.frame_range[1]) + 1, step))
    poses = []
    for frame in frames:
        scene.frame_set(frame)
        poses.append({pb.name: (pb.rotation_quaternion.copy(), pb.location.copy()) for pb in arm.pose.bones})
    new = bpy.data.actions.new(f"{action.name}_{mode}")
    _play(arm, new)
    for pb in arm.pose.bones:
        pb.rotation_mode = mode
    previous: dict[str, Euler] = {}
    for frame, pose in zip(frames, poses, strict=True):
        for name, (quat, loc) in pose.items():
            pb = arm.pose.bones[name]
            euler = quat.to_euler(mode, previous[name]) if name in previous else quat.to_euler(mode)
            previous[name] = euler
            pb.rotation_euler = euler
            pb.keyframe_insert("rotation_euler", frame=frame, group=name)
            if name == "Hips":
                pb.location = loc
                pb.keyframe_insert("location", frame=frame, group=name)
    return new


def test_euler_and_axis_angle_bones_and_sparse_bezier_keys(scene: Any) -> None:
    source = build_source(("Running",))  # arms turned about two axes at once: the Euler order matters
    euler_action = _as_euler_sparse(source, bpy.data.actions["Running"], "ZXY", 3)
    target, names = build_target("unreal")
    for pb in target.pose.bones:
        pb.rotation_mode = "XZY"
    target.pose.bones["upperarm_l"].rotation_mode = "AXIS_ANGLE"
    target.pose.bones["spine_01"].rotation_mode = "QUATERNION"
    [made] = rt.retarget(source, target, actions=[euler_action])
    curves = actions.fcurves(bpy.data.actions[made], rt._slot_for(bpy.data.actions[made], None, target))
    props = {(c.data_path.split('"')[1], c.data_path.rsplit(".", 1)[1]) for c in curves}
    assert ("upperarm_l", "rotation_axis_angle") in props and ("calf_l", "rotation_euler") in props
    assert ("spine_01", "rotation_quaternion") in props and ("calf_l", "rotation_quaternion") not in props
    worst, drift = _compare(source, target, names, euler_action, bpy.data.actions[made], FACING["unreal"])
    assert worst < 2.0 and drift < 0.01


def test_a_scaled_y_up_rig_facing_plus_y_works_as_the_source_too(scene: Any) -> None:
    """Source -> a Mixamo-FBX-like rig (0.01, Y-up, facing +Y) -> an Unreal-like rig: the motion survives."""
    source = build_source(("Running",))
    middle, _middle_names = build_target("mixamo_fbx")
    [walk_on_middle] = rt.retarget(source, middle, actions=["WalkForward"])
    middle.animation_data.action = None
    target, names = build_target("unreal")
    [made] = rt.retarget(middle, target, actions=[walk_on_middle])
    worst, drift = _compare(source, target, names, bpy.data.actions["WalkForward"], bpy.data.actions[made],
                            FACING["unreal"])
    assert worst < 2.0 and drift < 0.01


def test_onto_blenders_own_human_metarig(scene: Any) -> None:
    """Rigify's human metarig as Blender makes it: Rigify names, 159 bones with face and fingers, its rolls."""
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    source = build_source(("Running",))
    try:
        bpy.ops.object.armature_human_metarig_add()
    except (AttributeError, RuntimeError) as exc:
        pytest.skip(f"Rigify is not in this Blender: {exc}")
    finally:
        addon_utils.disable("rigify", default_set=True)  # its handlers stay out of the other tests
    metarig = bpy.context.active_object
    assert metarig is not None and metarig.type == "ARMATURE" and len(metarig.data.bones) > 100
    metarig.location = (1.5, 0.0, 0.0)
    bpy.context.view_layer.update()
    bone_map = rt.bonemap.auto_map(rt.describe(source), rt.describe(metarig))
    names = dict(bone_map.pairs)
    assert names["Hips"] == "spine" and names["Chest"] == "spine.003" and names["LeftLowerLeg"] == "shin.L"
    assert len(names) == len(bc.BONES)
    made = rt.retarget(source, metarig, actions=["Running", "WalkForward"])
    ratio = rt._leg_length(rt.Rig.of(metarig)) / rt._leg_length(rt.Rig.of(source))
    for src_name, new_name in zip(("Running", "WalkForward"), made, strict=True):
        worst, drift = _compare(source, metarig, names, bpy.data.actions[src_name], bpy.data.actions[new_name],
                                FACING["unreal"], ratio)
        assert worst < 2.0, f"{src_name}: {worst:.2f} degrees"
        # The metarig's thigh and shin are not in the source's proportions: the feet follow within 5%.
        assert drift < 0.05, f"{src_name}: {drift:.2%}"
