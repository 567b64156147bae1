"""Build the test characters with bpy: a small textured, skinned humanoid and its animations.

Run as ``python tests/assets/build_character.py OUT_DIR`` with a Python that has ``bpy`` (the module
build of Blender), or import it and call :func:`build_all`. Building resets the running Blender to an
empty factory scene, so call it in a subprocess (see ``tests/assets/cache.py``) when the caller's
scene matters.

Everything is generated from code, deterministically (no random numbers, no clock): the armature has
19 bones with humanoid names, the mesh is made of boxes and cylinders skinned with blended weights
near the joints, and a small generated texture is embedded in the exported files.

Files written (the keys of the returned dict are these file names):

* ``model.glb``: the textured mesh alone, no armature (what an image-to-3D task returns)
* ``rigged.glb``: mesh + armature + skin, no animation
* ``walking.glb``, ``running.glb``, ``animation.glb`` and ``anim_<Name>.glb``: mesh + armature + skin
  + exactly one animation each, named after its action (see :data:`SINGLE_FILES`)
* ``multi.glb``: mesh + armature + every animation of :data:`ANIMATIONS` in one file
* ``rigged.fbx`` and ``walking.fbx``: FBX exports of the rigged character, without and with ``Walking``
* ``sample.png`` (256x256 RGBA, transparent background) and ``sample.jpg``: a front view of the character
* ``manifest.json``: the animations (name, first frame, last frame) each file holds

Rigs made the way providers deliver them (see :data:`PROVIDER_STYLE`), each with root motion (the
``Strolling`` animation walks 1.2 m towards -Y per cycle while bobbing up and down):

* ``scaled_rig.glb``: armature and mesh at object scale 0.01 with their data in centimetres (what Meshy's
  rigged GLB looks like), under an empty root node, with a childless empty node beside the armature;
  animations ``Strolling`` and ``Dance`` (location keys in centimetres)
* ``scaled_character.glb``: the same rig without animation (Meshy's rigged character)
* ``scaled_anim.glb`` and ``scaled_walk.glb``: the same rig with only ``Running`` or ``Strolling`` (animation
  files for that rig)
* ``scaled_prop.glb``: the 0.01-scale rig holding a rigid prop (a torch, no skinning) parented to the
  right hand bone (the torch's origin at the hand bone's tail), with ``Dance``
* ``yup_cm.fbx``: an FBX in centimetres with Y up (Mixamo-style), with ``Strolling``
* ``normalized.glb``: the rig and mesh fitted into a 1-unit cube centred on the origin (Rodin, image3d.io),
  with ``Strolling``
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import bpy

# --------------------------------------------------------------------------------------------------
# Skeleton and body description (plain data, importable without bpy)
# --------------------------------------------------------------------------------------------------

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class BoneSpec:
    name: str
    head: Vec3
    tail: Vec3
    parent: str | None
    connected: bool
    radius: float  # radius of the body part around this bone (0: no part)
    segments: int  # 4: a box, 8: a cylinder
    region: str  # texture region: skin, shirt, pants, shoes


def _side(name: str, head: Vec3, tail: Vec3, parent: str, connected: bool, radius: float, segments: int,
          region: str) -> list[BoneSpec]:
    """The Left bone (character's left is +X, it faces -Y) and its mirrored Right twin."""
    left_parent = parent.replace("{S}", "Left")
    right_parent = parent.replace("{S}", "Right")
    mirror_head = (-head[0], head[1], head[2])
    mirror_tail = (-tail[0], tail[1], tail[2])
    return [
        BoneSpec(f"Left{name}", head, tail, left_parent, connected, radius, segments, region),
        BoneSpec(f"Right{name}", mirror_head, mirror_tail, right_parent, connected, radius, segments, region),
    ]


BONES: list[BoneSpec] = [
    BoneSpec("Hips", (0.0, 0.0, 0.92), (0.0, 0.0, 1.05), None, False, 0.15, 4, "pants"),
    BoneSpec("Spine", (0.0, 0.0, 1.05), (0.0, 0.0, 1.20), "Hips", True, 0.14, 4, "shirt"),
    BoneSpec("Chest", (0.0, 0.0, 1.20), (0.0, 0.0, 1.42), "Spine", True, 0.17, 4, "shirt"),
    BoneSpec("Neck", (0.0, 0.0, 1.42), (0.0, 0.0, 1.52), "Chest", True, 0.05, 8, "skin"),
    BoneSpec("Head", (0.0, 0.0, 1.52), (0.0, 0.0, 1.76), "Neck", True, 0.11, 4, "skin"),
    *_side("Shoulder", (0.05, 0.0, 1.38), (0.18, 0.0, 1.38), "Chest", False, 0.06, 8, "shirt"),
    *_side("UpperArm", (0.18, 0.0, 1.38), (0.45, 0.0, 1.38), "{S}Shoulder", True, 0.05, 8, "shirt"),
    *_side("LowerArm", (0.45, 0.0, 1.38), (0.70, 0.0, 1.38), "{S}UpperArm", True, 0.04, 8, "skin"),
    *_side("Hand", (0.70, 0.0, 1.38), (0.80, 0.0, 1.38), "{S}LowerArm", True, 0.035, 4, "skin"),
    *_side("UpperLeg", (0.09, 0.0, 0.92), (0.09, 0.0, 0.50), "Hips", False, 0.07, 8, "pants"),
    *_side("LowerLeg", (0.09, 0.0, 0.50), (0.09, 0.0, 0.10), "{S}UpperLeg", True, 0.055, 8, "pants"),
    *_side("Foot", (0.09, 0.0, 0.10), (0.09, -0.16, 0.03), "{S}LowerLeg", True, 0.045, 4, "shoes"),
]

REGION_COLORS: dict[str, tuple[float, float, float]] = {
    "skin": (0.93, 0.72, 0.58),
    "shirt": (0.20, 0.45, 0.85),
    "pants": (0.25, 0.25, 0.32),
    "shoes": (0.55, 0.30, 0.12),
}

ARMATURE_NAME = "Armature"
MESH_NAME = "Body"
TEXTURE_SIZE = 64
RINGS = (0.0, 0.25, 0.5, 0.75, 1.0)  # positions of the tube rings along each bone
BLEND = 0.25  # weights blend with the neighbouring bone over this fraction of a bone near each joint


@dataclass(frozen=True)
class AnimSpec:
    name: str
    first: int
    last: int


ANIMATIONS: dict[str, AnimSpec] = {
    "Walking": AnimSpec("Walking", 1, 24),
    "Running": AnimSpec("Running", 1, 16),
    "Dance": AnimSpec("Dance", 1, 32),
    "Wave": AnimSpec("Wave", 1, 30),
    "Jump": AnimSpec("Jump", 1, 20),
}

# One animation per file: file name -> animation name.
SINGLE_FILES: dict[str, str] = {
    "walking.glb": "Walking",
    "running.glb": "Running",
    "animation.glb": "Dance",
    "anim_Wave.glb": "Wave",
    "anim_Jump.glb": "Jump",
}
MULTI_ORDER: tuple[str, ...] = ("Walking", "Running", "Dance", "Wave", "Jump")

# Provider-style files: file name -> (data scale, object scale, animations). The character is the same
# 1.76 m one; "data scale" multiplies every coordinate in the data, "object scale" the object.
STROLL = AnimSpec("Strolling", 1, 24)
STROLL_DISTANCE = 1.2  # metres towards -Y per cycle
PROVIDER_STYLE: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "scaled_rig.glb": (100.0, 0.01, ("Strolling", "Dance")),
    "scaled_character.glb": (100.0, 0.01, ()),
    "scaled_anim.glb": (100.0, 0.01, ("Running",)),
    "scaled_walk.glb": (100.0, 0.01, ("Strolling",)),
    "scaled_prop.glb": (100.0, 0.01, ("Dance",)),
    "yup_cm.fbx": (100.0, 1.0, ("Strolling",)),
    "normalized.glb": (0.0, 1.0, ("Strolling",)),  # 0: fitted into a unit cube
}
CHARACTER_HEIGHT = 1.76  # metres, top of the head bone
PROPS = {"scaled_prop.glb": "RightHand"}  # file -> the bone a rigid prop is parented to
PROP_NAME = "Torch"
PROP_SIZE = (0.04, 0.04, 0.2)  # metres: held upright, centred on its origin (within the character's height)

# --------------------------------------------------------------------------------------------------
# Small vector helpers (plain Python so that the geometry is the same everywhere)
# --------------------------------------------------------------------------------------------------


def _sub(a: Vec3, b: Vec3) -> Vec3:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _add(a: Vec3, b: Vec3) -> Vec3:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _mul(a: Vec3, s: float) -> Vec3:
    return (a[0] * s, a[1] * s, a[2] * s)


def _cross(a: Vec3, b: Vec3) -> Vec3:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _norm(a: Vec3) -> Vec3:
    length = math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])
    return (a[0] / length, a[1] / length, a[2] / length)


def _lerp(a: Vec3, b: Vec3, t: float) -> Vec3:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------


@dataclass
class BodyGeometry:
    verts: list[Vec3]
    faces: list[tuple[int, ...]]
    face_uvs: list[list[tuple[float, float]]]  # one UV per face corner
    weights: list[dict[str, float]]  # per vertex: bone name -> weight
    face_parts: list[int]  # index into BONES of the part each face belongs to


def _children(name: str) -> list[BoneSpec]:
    return [b for b in BONES if b.parent == name and b.connected]


def _joint_weights(bone: BoneSpec, t: float) -> dict[str, float]:
    """Skin weights of a vertex of `bone`'s part at parameter t (0 = head, 1 = tail)."""
    if t < BLEND and bone.connected and bone.parent is not None:
        own = 0.5 + 0.5 * (t / BLEND)
        return {bone.name: own, bone.parent: 1.0 - own}
    children = _children(bone.name)
    if t > 1.0 - BLEND and len(children) == 1:
        own = 0.5 + 0.5 * ((1.0 - t) / BLEND)
        return {bone.name: own, children[0].name: 1.0 - own}
    return {bone.name: 1.0}


def body_geometry() -> BodyGeometry:
    """Tubes (4 sides: boxes, 8 sides: cylinders) around every bone, with caps, UVs and weights."""
    geo = BodyGeometry([], [], [], [], [])
    parts = [b for b in BONES if b.radius > 0.0]
    column = 1.0 / len(parts)
    for part_index, bone in enumerate(parts):
        axis = _norm(_sub(bone.tail, bone.head))
        ref: Vec3 = (0.0, 0.0, 1.0) if abs(axis[2]) < 0.9 else (1.0, 0.0, 0.0)
        u_dir = _norm(_cross(axis, ref))
        v_dir = _cross(axis, u_dir)
        segs = bone.segments
        phase = math.pi / 4.0 if segs == 4 else 0.0
        ring_start: list[int] = []
        for t in RINGS:
            centre = _lerp(bone.head, bone.tail, t)
            ring_start.append(len(geo.verts))
            for s in range(segs):
                angle = phase + 2.0 * math.pi * s / segs
                offset = _add(_mul(u_dir, math.cos(angle) * bone.radius), _mul(v_dir, math.sin(angle) * bone.radius))
                geo.verts.append(_add(centre, offset))
                geo.weights.append(_joint_weights(bone, t))
        u0 = part_index * column
        bone_index = BONES.index(bone)
        for r in range(len(RINGS) - 1):
            for s in range(segs):
                s1 = (s + 1) % segs
                a, b = ring_start[r] + s, ring_start[r] + s1
                c, d = ring_start[r + 1] + s1, ring_start[r + 1] + s
                geo.faces.append((a, b, c, d))
                ua, ub = u0 + column * s / segs, u0 + column * (s + 1) / segs
                va, vb = 0.05 + 0.9 * RINGS[r], 0.05 + 0.9 * RINGS[r + 1]
                geo.face_uvs.append([(ua, va), (ub, va), (ub, vb), (ua, vb)])
                geo.face_parts.append(bone_index)
        for end, t, reverse in ((0, 0.0, True), (len(RINGS) - 1, 1.0, False)):
            centre_index = len(geo.verts)
            geo.verts.append(_lerp(bone.head, bone.tail, t))
            geo.weights.append(_joint_weights(bone, t))
            cap_uv = (u0 + column * 0.5, 0.02 if t == 0.0 else 0.98)
            for s in range(segs):
                s1 = (s + 1) % segs
                tri = (centre_index, ring_start[end] + s, ring_start[end] + s1)
                if reverse:
                    tri = (centre_index, ring_start[end] + s1, ring_start[end] + s)
                geo.faces.append(tri)
                geo.face_uvs.append([cap_uv, cap_uv, cap_uv])
                geo.face_parts.append(bone_index)
    return geo


def texture_pixels(size: int = TEXTURE_SIZE) -> list[float]:
    """RGBA floats, bottom row first: one column per body part, coloured by region, with stripes."""
    parts = [b for b in BONES if b.radius > 0.0]
    pixels: list[float] = []
    for y in range(size):
        for x in range(size):
            part = parts[min(len(parts) - 1, x * len(parts) // size)]
            r, g, b = REGION_COLORS[part.region]
            shade = 0.8 if (y // 8) % 2 else 1.0
            pixels.extend((r * shade, g * shade, b * shade, 1.0))
    return pixels


# --------------------------------------------------------------------------------------------------
# Animations: pose-bone rotations (bone-local Euler XYZ, degrees) and hips offset per frame
# --------------------------------------------------------------------------------------------------

Pose = dict[str, tuple[float, float, float]]


def _wave(phase: float, amplitude: float) -> float:
    return amplitude * math.sin(2.0 * math.pi * phase)


def _walking(p: float) -> tuple[Pose, Vec3]:
    swing = _wave(p, 30.0)
    pose: Pose = {
        "LeftUpperLeg": (swing, 0.0, 0.0),
        "RightUpperLeg": (-swing, 0.0, 0.0),
        "LeftLowerLeg": (max(0.0, -swing), 0.0, 0.0),
        "RightLowerLeg": (max(0.0, swing), 0.0, 0.0),
        "LeftUpperArm": (0.0, 0.0, -swing),
        "RightUpperArm": (0.0, 0.0, swing),
        "Spine": (0.0, _wave(p, 5.0), 0.0),
    }
    return pose, (0.0, 0.0, abs(_wave(p, 0.03)))


def _running(p: float) -> tuple[Pose, Vec3]:
    swing = _wave(p, 55.0)
    pose: Pose = {
        "LeftUpperLeg": (swing, 0.0, 0.0),
        "RightUpperLeg": (-swing, 0.0, 0.0),
        "LeftLowerLeg": (40.0 + max(0.0, -swing), 0.0, 0.0),
        "RightLowerLeg": (40.0 + max(0.0, swing), 0.0, 0.0),
        "LeftUpperArm": (0.0, 60.0, -swing),
        "RightUpperArm": (0.0, -60.0, swing),
        "LeftLowerArm": (0.0, 70.0, 0.0),
        "RightLowerArm": (0.0, -70.0, 0.0),
        "Spine": (-15.0, 0.0, 0.0),
    }
    return pose, (0.0, 0.0, abs(_wave(p, 0.08)))


def _dance(p: float) -> tuple[Pose, Vec3]:
    sway = _wave(p, 20.0)
    pose: Pose = {
        "Spine": (0.0, 0.0, sway),
        "Chest": (0.0, sway, 0.0),
        "Head": (0.0, 0.0, -sway),
        "LeftUpperArm": (0.0, 0.0, 60.0 + sway),
        "RightUpperArm": (0.0, 0.0, -60.0 + sway),
    }
    return pose, (_wave(p, 0.05), 0.0, 0.0)


def _wave_hand(p: float) -> tuple[Pose, Vec3]:
    pose: Pose = {
        "RightUpperArm": (0.0, 0.0, 70.0),
        "RightLowerArm": (0.0, 0.0, 30.0 + _wave(2.0 * p, 35.0)),
        "RightHand": (0.0, _wave(2.0 * p, 20.0), 0.0),
        "Head": (0.0, 0.0, _wave(p, 10.0)),
    }
    return pose, (0.0, 0.0, 0.0)


def _jump(p: float) -> tuple[Pose, Vec3]:
    height = max(0.0, math.sin(2.0 * math.pi * (p - 0.25))) * 0.35
    crouch = max(0.0, -math.sin(2.0 * math.pi * (p - 0.25))) * 45.0
    pose: Pose = {
        "LeftUpperLeg": (crouch, 0.0, 0.0),
        "RightUpperLeg": (crouch, 0.0, 0.0),
        "LeftLowerLeg": (2.0 * crouch, 0.0, 0.0),
        "RightLowerLeg": (2.0 * crouch, 0.0, 0.0),
        "LeftUpperArm": (0.0, 0.0, 120.0 * height),
        "RightUpperArm": (0.0, 0.0, -120.0 * height),
    }
    return pose, (0.0, 0.0, height - crouch / 400.0)


def _strolling(p: float) -> tuple[Pose, Vec3]:
    pose, bob = _walking(p)
    return pose, (0.0, -STROLL_DISTANCE * p, bob[2])


MOTIONS: dict[str, Callable[[float], tuple[Pose, Vec3]]] = {
    "Strolling": _strolling,
    "Walking": _walking,
    "Running": _running,
    "Dance": _dance,
    "Wave": _wave_hand,
    "Jump": _jump,
}

# --------------------------------------------------------------------------------------------------
# Scene building (bpy)
# --------------------------------------------------------------------------------------------------


def _reset_scene() -> bpy.types.Scene:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    assert scene is not None
    scene.render.fps = 24
    scene.render.fps_base = 1.0
    scene.frame_start = 1
    scene.frame_end = 24
    return scene


def _make_material(work_dir: Path) -> bpy.types.Material:
    import bpy

    image = bpy.data.images.new("BodyTexture", TEXTURE_SIZE, TEXTURE_SIZE, alpha=True)
    image.pixels.foreach_set(texture_pixels())
    image.filepath_raw = str(work_dir / "BodyTexture.png")
    image.file_format = "PNG"
    image.save()
    image.pack()

    material = bpy.data.materials.new("BodyMaterial")
    if material.node_tree is None:
        material.use_nodes = True
    tree = material.node_tree
    assert tree is not None
    bsdf = next(n for n in tree.nodes if n.type == "BSDF_PRINCIPLED")
    tex = tree.nodes.new("ShaderNodeTexImage")
    assert isinstance(tex, bpy.types.ShaderNodeTexImage)
    tex.image = image
    tex.location = (-300.0, 300.0)
    outputs, inputs = tex.outputs, bsdf.inputs
    assert outputs is not None and inputs is not None
    tree.links.new(outputs["Color"], inputs["Base Color"])
    return material


def _make_armature(scene: bpy.types.Scene) -> bpy.types.Object:
    import bpy

    data = bpy.data.armatures.new(ARMATURE_NAME)
    arm = bpy.data.objects.new(ARMATURE_NAME, data)
    scene.collection.objects.link(arm)
    view_layer = bpy.context.view_layer
    view_layer.objects.active = arm
    arm.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    for spec in BONES:
        edit_bone = data.edit_bones.new(spec.name)
        edit_bone.head = spec.head
        edit_bone.tail = spec.tail
        edit_bone.roll = 0.0
    for spec in BONES:
        if spec.parent is not None:
            edit_bone = data.edit_bones[spec.name]
            edit_bone.parent = data.edit_bones[spec.parent]
            edit_bone.use_connect = spec.connected
    bpy.ops.object.mode_set(mode="OBJECT")
    for pose_bone in arm.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    return arm


def _make_prop(scene: bpy.types.Scene, arm: bpy.types.Object, bone_name: str, unit: float) -> bpy.types.Object:
    """A box parented to `bone_name` (no skinning), its origin at the bone's tail, its data in the
    armature's units (x `unit`) like the rest of the character."""
    import bpy
    from mathutils import Matrix

    half = [s * unit / 2.0 for s in PROP_SIZE]
    verts = [(x * half[0], y * half[1], z * half[2]) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh = bpy.data.meshes.new(PROP_NAME)
    mesh.from_pydata(verts, [], faces)
    mesh.validate()
    mesh.update()
    prop = bpy.data.objects.new(PROP_NAME, mesh)
    scene.collection.objects.link(prop)
    prop.parent = arm
    prop.parent_type = "BONE"
    prop.parent_bone = bone_name
    bpy.context.view_layer.update()
    bone = arm.data.bones[bone_name]
    prop.matrix_world = arm.matrix_world @ Matrix.Translation(bone.tail_local.to_tuple())
    return prop


def _make_mesh(scene: bpy.types.Scene, material: bpy.types.Material, arm: bpy.types.Object) -> bpy.types.Object:
    import bpy

    geo = body_geometry()
    mesh = bpy.data.meshes.new(MESH_NAME)
    mesh.from_pydata(geo.verts, [], geo.faces)
    uv_layer = mesh.uv_layers.new(name="UVMap")
    flat_uvs = [coord for face in geo.face_uvs for uv in face for coord in uv]
    uv_layer.data.foreach_set("uv", flat_uvs)
    mesh.materials.append(material)
    mesh.validate()
    mesh.update()

    obj = bpy.data.objects.new(MESH_NAME, mesh)
    scene.collection.objects.link(obj)
    for spec in BONES:
        obj.vertex_groups.new(name=spec.name)
    for index, weights in enumerate(geo.weights):
        for bone_name, weight in weights.items():
            obj.vertex_groups[bone_name].add([index], weight, "REPLACE")
    obj.parent = arm
    modifier = obj.modifiers.new("Armature", "ARMATURE")
    assert isinstance(modifier, bpy.types.ArmatureModifier)
    modifier.object = arm
    return obj


def _key_animation(arm: bpy.types.Object, spec: AnimSpec, unit: float = 1.0) -> bpy.types.Action:
    """Create the action `spec.name` on `arm`, keyed on every frame of its range (locations x `unit`)."""
    import bpy
    from mathutils import Euler

    anim_data = arm.animation_data or arm.animation_data_create()
    action = bpy.data.actions.new(spec.name)
    anim_data.action = action
    motion = MOTIONS[spec.name]
    animated = sorted({name for f in (0.0, 0.25, 0.5, 0.75) for name in motion(f)[0]})
    length = spec.last - spec.first
    for frame in range(spec.first, spec.last + 1):
        pose, hips_offset = motion((frame - spec.first) / length)
        for name in animated:
            pose_bone = arm.pose.bones[name]
            x, y, z = pose.get(name, (0.0, 0.0, 0.0))
            euler = Euler((math.radians(x), math.radians(y), math.radians(z)), "XYZ")
            pose_bone.rotation_quaternion = euler.to_quaternion()
            pose_bone.keyframe_insert("rotation_quaternion", frame=frame, group=name)
        hips = arm.pose.bones["Hips"]
        # Bone-local offset; Hips points up (+Z world is its local +Y).
        hips.location = (hips_offset[0] * unit, hips_offset[2] * unit, -hips_offset[1] * unit)
        hips.keyframe_insert("location", frame=frame, group="Hips")
    _reset_pose(arm)
    return action


def _reset_pose(arm: bpy.types.Object) -> None:
    for pose_bone in arm.pose.bones:
        pose_bone.location = (0.0, 0.0, 0.0)
        pose_bone.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        pose_bone.scale = (1.0, 1.0, 1.0)


def _key_on_tracks(arm: bpy.types.Object, specs: list[AnimSpec], unit: float = 1.0) -> None:
    """Key each animation and put it on its own muted NLA track (exported as separate glTF animations)."""
    for spec in specs:
        action = _key_animation(arm, spec, unit)
        anim_data = arm.animation_data
        assert anim_data is not None
        anim_data.action = None
        track = anim_data.nla_tracks.new()
        track.name = spec.name
        track.strips.new(spec.name, int(action.frame_range[0]), action)
        track.mute = True


def _clear_animation(arm: bpy.types.Object) -> None:
    import bpy

    if arm.animation_data is not None:
        arm.animation_data_clear()
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)
    _reset_pose(arm)


def _gltf_export(path: Path, *, animations: bool, selection_only: bool = False, **extra: Any) -> None:
    import bpy

    exporter: Any = bpy.ops.export_scene.gltf
    props = {p.identifier for p in exporter.get_rna_type().properties}
    options: dict[str, Any] = {
        "filepath": str(path),
        "export_format": "GLB",
        "use_selection": selection_only,
        "export_animations": animations,
        "export_animation_mode": "ACTIONS",
        "export_force_sampling": True,
        "export_skins": True,
        "export_materials": "EXPORT",
        "export_image_format": "AUTO",
        "export_yup": True,
        "export_apply": False,
        "export_lights": False,
        "export_cameras": False,
        "export_extras": False,
        "export_reset_pose_bones": True,
        "check_existing": False,
    }
    options.update(extra)
    exporter(**{k: v for k, v in options.items() if k in props})


def _fbx_export(path: Path, *, animation: bool) -> None:
    import bpy

    bpy.ops.export_scene.fbx(
        filepath=str(path),
        check_existing=False,
        object_types={"ARMATURE", "MESH"},
        add_leaf_bones=False,
        path_mode="COPY",
        embed_textures=True,
        bake_anim=animation,
        bake_anim_use_all_actions=animation,
        bake_anim_use_nla_strips=False,
        bake_anim_force_startend_keying=True,
    )


def _export_model_only(scene: bpy.types.Scene, body: bpy.types.Object, path: Path) -> None:
    """model.glb: a static copy of the body, without armature, modifier or vertex groups."""
    import bpy

    mesh = body.data.copy()
    assert isinstance(mesh, bpy.types.Mesh)
    model = bpy.data.objects.new("Model", mesh)
    scene.collection.objects.link(model)
    for obj in scene.objects:
        obj.select_set(obj == model)
    bpy.context.view_layer.objects.active = model
    _gltf_export(path, animations=False, selection_only=True, export_skins=False)
    bpy.data.objects.remove(model)
    bpy.data.meshes.remove(mesh)


def _select_all(scene: bpy.types.Scene) -> None:
    for obj in scene.objects:
        obj.select_set(True)


def _animation_spec(name: str) -> AnimSpec:
    return STROLL if name == STROLL.name else ANIMATIONS[name]


def _provider_style(out_dir: Path, file_name: str) -> list[tuple[str, int, int]]:
    """Write one of :data:`PROVIDER_STYLE`'s files; return its animations (name, first, last)."""
    import bpy
    from mathutils import Matrix

    data_scale, object_scale, names = PROVIDER_STYLE[file_name]
    scene = _reset_scene()
    path = out_dir / file_name
    with tempfile.TemporaryDirectory(prefix="marionette-assets-") as tmp:
        material = _make_material(Path(tmp))
        arm = _make_armature(scene)
        body = _make_mesh(scene, material, arm)
        if data_scale == 0.0:
            verts = body_geometry().verts
            low = [min(v[i] for v in verts) for i in range(3)]
            high = [max(v[i] for v in verts) for i in range(3)]
            unit = 1.0 / max(h - lo for h, lo in zip(high, low, strict=True))
            centre = [-(lo + h) / 2.0 for lo, h in zip(low, high, strict=True)]
            matrix = Matrix.Scale(unit, 4) @ Matrix.Translation(centre)
        else:
            unit = data_scale
            matrix = Matrix.Scale(unit, 4)
        arm.data.transform(matrix)
        mesh = body.data
        assert isinstance(mesh, bpy.types.Mesh)
        mesh.transform(matrix)
        arm.scale = (object_scale, object_scale, object_scale)
        if file_name in PROPS:
            _make_prop(scene, arm, PROPS[file_name], unit)
        if file_name.endswith(".glb"):
            # The node tree of a converted file: an empty root above the armature, an empty leaf beside it.
            root = bpy.data.objects.new("RootNode", None)
            leaf = bpy.data.objects.new("Icosphere", None)
            for empty in (root, leaf):
                scene.collection.objects.link(empty)
            arm.parent = root
            leaf.parent = root
        _clear_animation(arm)
        _key_on_tracks(arm, [_animation_spec(name) for name in names], unit)
        _select_all(scene)
        bpy.context.view_layer.objects.active = arm
        scene.frame_start, scene.frame_end = 1, max((_animation_spec(n).last for n in names), default=1)
        if file_name.endswith(".fbx"):
            anim_data = arm.animation_data
            assert anim_data is not None
            anim_data.action = bpy.data.actions[names[0]]
            scene.unit_settings.scale_length = 0.01  # the file says centimetres
            _fbx_export(path, animation=True)
        else:
            _gltf_export(path, animations=bool(names), export_anim_single_armature=False)
    if file_name.endswith(".glb"):
        names = tuple(glb_animation_names(path))
    return [(n, _animation_spec(n).first, _animation_spec(n).last) for n in names]


# --------------------------------------------------------------------------------------------------
# Front-view picture, rasterised from the skeleton description (no GPU needed)
# --------------------------------------------------------------------------------------------------


def sample_pixels(size: int = 256) -> list[float]:
    """RGBA floats, bottom row first: every body part as a shaded capsule seen from the front."""
    import numpy as np

    xs = np.linspace(-1.0, 1.0, size)
    zs = np.linspace(-0.05, 1.95, size)
    gx, gz = np.meshgrid(xs, zs)  # row 0 is the bottom, as Blender stores pixels
    rgba = np.zeros((size, size, 4), dtype=np.float64)
    depth = np.full((size, size), -np.inf)
    for bone in BONES:
        if bone.radius <= 0.0:
            continue
        ax, az = bone.head[0], bone.head[2]
        bx, bz = bone.tail[0], bone.tail[2]
        dx, dz = bx - ax, bz - az
        length2 = dx * dx + dz * dz
        t = np.clip(((gx - ax) * dx + (gz - az) * dz) / max(length2, 1e-9), 0.0, 1.0)
        dist = np.hypot(gx - (ax + t * dx), gz - (az + t * dz))
        radius = bone.radius * 1.15
        inside = dist < radius
        height = np.sqrt(np.clip(1.0 - (dist / radius) ** 2, 0.0, 1.0))
        front = inside & (height * radius - bone.head[1] > depth)
        colour = np.array(REGION_COLORS[bone.region])
        light = 0.35 + 0.65 * height
        for channel in range(3):
            rgba[..., channel] = np.where(front, colour[channel] * light, rgba[..., channel])
        rgba[..., 3] = np.where(front, 1.0, rgba[..., 3])
        depth = np.where(front, height * radius - bone.head[1], depth)
    # Eyes, so that the front is recognisable.
    for eye_x in (-0.04, 0.04):
        eye = np.hypot(gx - eye_x, gz - 1.66) < 0.015
        rgba[eye] = (0.05, 0.05, 0.05, 1.0)
    return [float(v) for v in rgba.reshape(-1)]


def _save_picture(pixels: list[float], size: int, path: Path, file_format: Literal["PNG", "JPEG"]) -> None:
    import bpy

    image = bpy.data.images.new(path.stem + "_" + file_format, size, size, alpha=True)
    image.pixels.foreach_set(pixels)
    image.filepath_raw = str(path)
    image.file_format = file_format
    image.save()
    bpy.data.images.remove(image)


def _write_pictures(out_dir: Path, size: int = 256) -> None:
    pixels = sample_pixels(size)
    _save_picture(pixels, size, out_dir / "sample.png", "PNG")
    # JPEG has no alpha: flatten over white.
    flat: list[float] = []
    for i in range(0, len(pixels), 4):
        a = pixels[i + 3]
        flat.extend((pixels[i] * a + 1.0 - a, pixels[i + 1] * a + 1.0 - a, pixels[i + 2] * a + 1.0 - a, 1.0))
    _save_picture(flat, size, out_dir / "sample.jpg", "JPEG")


def glb_animation_names(path: Path) -> list[str]:
    """The names of the animations of a GLB file, in file order (reads the JSON chunk, no bpy)."""
    data = Path(path).read_bytes()
    (json_length,) = struct.unpack_from("<I", data, 12)
    document = json.loads(data[20 : 20 + json_length])
    return [str(anim.get("name", "")) for anim in document.get("animations", [])]


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


def build_all(out_dir: Path) -> dict[str, Path]:
    """Build every test asset into `out_dir`. Resets the running Blender to an empty factory scene."""
    import bpy

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scene = _reset_scene()
    files: dict[str, Path] = {}
    manifest: dict[str, list[tuple[str, int, int]]] = {}

    with tempfile.TemporaryDirectory(prefix="marionette-assets-") as tmp:
        material = _make_material(Path(tmp))
        arm = _make_armature(scene)
        body = _make_mesh(scene, material, arm)

        files["model.glb"] = out_dir / "model.glb"
        _export_model_only(scene, body, files["model.glb"])
        manifest["model.glb"] = []

        _select_all(scene)
        bpy.context.view_layer.objects.active = arm
        _clear_animation(arm)
        files["rigged.glb"] = out_dir / "rigged.glb"
        _gltf_export(files["rigged.glb"], animations=False)
        manifest["rigged.glb"] = []
        files["rigged.fbx"] = out_dir / "rigged.fbx"
        _fbx_export(files["rigged.fbx"], animation=False)
        manifest["rigged.fbx"] = []

        for file_name, anim_name in SINGLE_FILES.items():
            spec = ANIMATIONS[anim_name]
            _clear_animation(arm)
            _key_animation(arm, spec)
            scene.frame_start, scene.frame_end = spec.first, spec.last
            files[file_name] = out_dir / file_name
            _gltf_export(files[file_name], animations=True, export_anim_single_armature=False)
            manifest[file_name] = [(spec.name, spec.first, spec.last)]
            if anim_name == "Walking":
                files["walking.fbx"] = out_dir / "walking.fbx"
                _fbx_export(files["walking.fbx"], animation=True)
                manifest["walking.fbx"] = [(spec.name, spec.first, spec.last)]

        # multi.glb: every animation on its own NLA track, exported as separate glTF animations.
        _clear_animation(arm)
        _key_on_tracks(arm, [ANIMATIONS[name] for name in MULTI_ORDER])
        scene.frame_start, scene.frame_end = 1, max(a.last for a in ANIMATIONS.values())
        files["multi.glb"] = out_dir / "multi.glb"
        _gltf_export(files["multi.glb"], animations=True, export_anim_single_armature=False)
        # The exporter decides the order of the animations in the file: record the file's order.
        manifest["multi.glb"] = [
            (n, ANIMATIONS[n].first, ANIMATIONS[n].last) for n in glb_animation_names(files["multi.glb"])
        ]

    for file_name in PROVIDER_STYLE:
        manifest[file_name] = _provider_style(out_dir, file_name)
        files[file_name] = out_dir / file_name

    _write_pictures(out_dir)
    files["sample.png"] = out_dir / "sample.png"
    files["sample.jpg"] = out_dir / "sample.jpg"

    manifest_path = out_dir / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    files["manifest.json"] = manifest_path
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return files


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUT_DIR", file=sys.stderr)
        return 2
    files = build_all(Path(argv[1]))
    for name, path in sorted(files.items()):
        print(f"{name}: {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    status = main(sys.argv)
    # The bpy 4.2 module build crashes in its C exit handlers once the glTF exporter has run (a SpaceType
    # destructor calls into the already finalised interpreter). Every file is written and closed by now,
    # so skip the interpreter teardown and report the real status.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
