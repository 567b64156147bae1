"""The automatic bone map (addon/core/bonemap.py): every naming family, sides, structure, presets."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from addon.core.bonemap import (
    REQUIRED_ROLES,
    BoneInfo,
    BoneMap,
    auto_map,
    find_roles,
    missing_required,
    read_name,
    roles_by_structure,
)
from addon.core.errors import InputError
from tests.assets.build_character import BONES

Vec3 = tuple[float, float, float]

# A canonical humanoid (character faces -Y, its left is +X), one entry per role: head, tail, parent role.
# The spine (hips top to neck base) is cut into as many bones as a family has.
LIMBS: dict[str, tuple[Vec3, Vec3, str]] = {
    "shoulder": ((0.05, 0.0, 1.38), (0.18, 0.0, 1.38), "chest"),
    "upper_arm": ((0.18, 0.0, 1.38), (0.45, 0.0, 1.38), "shoulder"),
    "lower_arm": ((0.45, 0.0, 1.38), (0.70, 0.0, 1.38), "upper_arm"),
    "hand": ((0.70, 0.0, 1.38), (0.78, 0.0, 1.38), "lower_arm"),
    "upper_leg": ((0.09, 0.0, 0.92), (0.09, 0.0, 0.50), "hips"),
    "lower_leg": ((0.09, 0.0, 0.50), (0.09, 0.0, 0.10), "upper_leg"),
    "foot": ((0.09, 0.0, 0.10), (0.09, -0.12, 0.03), "lower_leg"),
    "toes": ((0.09, -0.12, 0.03), (0.09, -0.18, 0.03), "foot"),
}
FINGER_Y = {"thumb": -0.03, "index": -0.015, "middle": 0.0, "ring": 0.015, "pinky": 0.03}


def humanoid(names: dict[str, str], spine: list[str], *, fingers: Callable[[str, int, str], str] | None = None,
             extra: list[BoneInfo] | None = None, neck: list[str] | None = None,
             head: str = "", root: str | None = None) -> list[BoneInfo]:
    """Bones named by `names` (role -> name, sided roles as "upper_arm.L"), a spine chain of `spine`
    names from the hips up (the last is the chest the arms hang from), `neck` names, then the head."""
    bones: list[BoneInfo] = []
    if root:
        bones.append(BoneInfo(root, None, (0.0, 0.0, 0.0), (0.0, 0.2, 0.0)))
    bones.append(BoneInfo(names["hips"], root, (0.0, 0.0, 0.92), (0.0, 0.0, 1.05)))
    parent = names["hips"]
    z0, z1 = 1.05, 1.42
    for i, name in enumerate(spine):
        a = z0 + (z1 - z0) * i / len(spine)
        b = z0 + (z1 - z0) * (i + 1) / len(spine)
        bones.append(BoneInfo(name, parent, (0.0, 0.0, a), (0.0, 0.0, b)))
        parent = name
    chest = spine[-1]
    necks = neck if neck is not None else [names["neck"]]
    for i, name in enumerate(necks):
        a = 1.42 + 0.10 * i / len(necks)
        bones.append(BoneInfo(name, parent, (0.0, 0.0, a), (0.0, 0.0, a + 0.10 / len(necks))))
        parent = name
    bones.append(BoneInfo(head or names["head"], parent, (0.0, 0.0, 1.52), (0.0, 0.0, 1.76)))
    for side, sign in (("L", 1.0), ("R", -1.0)):
        for limb, (h, t, par) in LIMBS.items():
            key = f"{limb}.{side}"
            if key not in names:
                continue
            if par == "chest" or (par == "shoulder" and f"shoulder.{side}" not in names):
                parent_name = chest
            else:
                parent_name = names["hips"] if par == "hips" else names[f"{par}.{side}"]
            bones.append(BoneInfo(names[key], parent_name, (h[0] * sign, h[1], h[2]), (t[0] * sign, t[1], t[2])))
        if fingers is not None:
            for finger, y in FINGER_Y.items():
                parent_name = names[f"hand.{side}"]
                for seg in (1, 2, 3):
                    x = 0.78 + 0.03 * (seg - 1)
                    name = fingers(finger, seg, side)
                    bones.append(BoneInfo(name, parent_name, (x * sign, y, 1.38), ((x + 0.03) * sign, y, 1.38)))
                    parent_name = name
    bones.extend(extra or [])
    return bones


BODY_ROLES = {"hips", "spine", "chest", "neck", "head", "upper_arm.L", "lower_arm.L", "hand.L", "upper_arm.R",
              "lower_arm.R", "hand.R", "upper_leg.L", "lower_leg.L", "foot.L", "upper_leg.R", "lower_leg.R",
              "foot.R"}


def check(bones: list[BoneInfo], expected: dict[str, str]) -> dict[str, str]:
    roles = find_roles(bones)
    for role, name in expected.items():
        assert roles.get(role) == name, f"{role}: expected {name!r}, got {roles.get(role)!r} in {roles}"
    assert not missing_required(roles)
    return roles


def mixamo(prefix: str) -> tuple[list[BoneInfo], dict[str, str]]:
    n = {"hips": "Hips", "neck": "Neck", "head": "Head"}
    for side, word in (("L", "Left"), ("R", "Right")):
        n.update({f"shoulder.{side}": f"{word}Shoulder", f"upper_arm.{side}": f"{word}Arm",
                  f"lower_arm.{side}": f"{word}ForeArm", f"hand.{side}": f"{word}Hand",
                  f"upper_leg.{side}": f"{word}UpLeg", f"lower_leg.{side}": f"{word}Leg",
                  f"foot.{side}": f"{word}Foot", f"toes.{side}": f"{word}ToeBase"})
    names = {k: prefix + v for k, v in n.items()}

    def finger(f: str, seg: int, side: str) -> str:
        return f"{prefix}{'Left' if side == 'L' else 'Right'}Hand{f.capitalize()}{seg}"

    ends = [BoneInfo(prefix + "HeadTop_End", prefix + "Head", (0, 0, 1.76), (0, 0, 1.86)),
            BoneInfo(prefix + "LeftToe_End", prefix + "LeftToeBase", (0.09, -0.18, 0.03), (0.09, -0.22, 0.03)),
            BoneInfo(prefix + "LeftHandIndex4", prefix + "LeftHandIndex3", (0.87, -0.015, 1.38),
                     (0.9, -0.015, 1.38))]
    bones = humanoid(names, [prefix + "Spine", prefix + "Spine1", prefix + "Spine2"], fingers=finger, extra=ends)
    expected = {**names, "spine": prefix + "Spine", "chest": prefix + "Spine1", "upper_chest": prefix + "Spine2",
                "index1.L": prefix + "LeftHandIndex1", "thumb3.R": prefix + "RightHandThumb3"}
    return bones, expected


@pytest.mark.parametrize("prefix", ["mixamorig:", "mixamorig1:", "mixamorig12:", ""])
def test_mixamo_with_and_without_numbered_namespace(prefix: str) -> None:
    bones, expected = mixamo(prefix)
    roles = check(bones, expected)
    assert prefix + "HeadTop_End" not in roles.values()
    assert prefix + "LeftHandIndex4" not in roles.values()
    assert prefix + "LeftToe_End" not in roles.values()


def test_meshy_rig_as_the_test_character_and_the_emulator_have_it() -> None:
    bones = [BoneInfo(b.name, b.parent, b.head, b.tail) for b in BONES]
    expected = {"hips": "Hips", "spine": "Spine", "chest": "Chest", "neck": "Neck", "head": "Head"}
    for side, word in (("L", "Left"), ("R", "Right")):
        expected.update({f"shoulder.{side}": f"{word}Shoulder", f"upper_arm.{side}": f"{word}UpperArm",
                         f"lower_arm.{side}": f"{word}LowerArm", f"hand.{side}": f"{word}Hand",
                         f"upper_leg.{side}": f"{word}UpperLeg", f"lower_leg.{side}": f"{word}LowerLeg",
                         f"foot.{side}": f"{word}Foot"})
    roles = check(bones, expected)
    assert len(roles) == len(BONES)  # every bone of Meshy's rig has a role


def unreal(ue5: bool) -> tuple[list[BoneInfo], dict[str, str]]:
    n = {"hips": "pelvis", "head": "head"}
    for side in ("L", "R"):
        s = side.lower()
        n.update({f"shoulder.{side}": f"clavicle_{s}", f"upper_arm.{side}": f"upperarm_{s}",
                  f"lower_arm.{side}": f"lowerarm_{s}", f"hand.{side}": f"hand_{s}",
                  f"upper_leg.{side}": f"thigh_{s}", f"lower_leg.{side}": f"calf_{s}",
                  f"foot.{side}": f"foot_{s}", f"toes.{side}": f"ball_{s}"})
    spine = [f"spine_0{i}" for i in range(1, 6 if ue5 else 4)]
    extra = [BoneInfo("thigh_twist_01_l", "thigh_l", (0.09, 0, 0.7), (0.09, 0, 0.6)),
             BoneInfo("upperarm_twist_01_r", "upperarm_r", (-0.3, 0, 1.38), (-0.4, 0, 1.38)),
             BoneInfo("ik_foot_root", "root", (0, 0, 0), (0, 0.1, 0)),
             BoneInfo("ik_hand_gun", "ik_foot_root", (0, 0, 0), (0, 0.1, 0))]

    def finger(f: str, seg: int, side: str) -> str:
        return f"{f}_0{seg}_{side.lower()}"

    bones = humanoid(n, spine, neck=["neck_01", "neck_02"] if ue5 else ["neck_01"], root="root", fingers=finger,
                     extra=extra)
    expected = {**n, "spine": "spine_01", "neck": "neck_01", "upper_chest": spine[-1], "middle2.L": "middle_02_l",
                "chest": "spine_03" if ue5 else "spine_02"}
    return bones, expected


@pytest.mark.parametrize("ue5", [False, True])
def test_unreal_mannequin(ue5: bool) -> None:
    bones, expected = unreal(ue5)
    roles = check(bones, expected)
    for helper in ("root", "thigh_twist_01_l", "upperarm_twist_01_r", "ik_foot_root", "ik_hand_gun"):
        assert helper not in roles.values()


def test_quaternius_universal_library_uses_the_unreal_names() -> None:
    bones, expected = unreal(False)
    check(bones, expected)


def test_quaternius_classic_names_with_glued_sides() -> None:
    n = {"hips": "Hips", "neck": "Neck", "head": "Head"}
    for side in ("L", "R"):
        n.update({f"shoulder.{side}": f"Shoulder{side}", f"upper_arm.{side}": f"UpperArm{side}",
                  f"lower_arm.{side}": f"LowerArm{side}", f"hand.{side}": f"Fist{side}",
                  f"upper_leg.{side}": f"UpperLeg{side}", f"lower_leg.{side}": f"LowerLeg{side}",
                  f"foot.{side}": f"Foot{side}"})
    bones = humanoid(n, ["Abdomen", "Torso"])
    check(bones, {**n, "spine": "Abdomen", "chest": "Torso"})


def rigify(prefix: str) -> tuple[list[BoneInfo], dict[str, str]]:
    n = {"hips": f"{prefix}spine", "neck": f"{prefix}spine.004", "head": f"{prefix}spine.006"}
    for side in ("L", "R"):
        n.update({f"shoulder.{side}": f"{prefix}shoulder.{side}", f"upper_arm.{side}": f"{prefix}upper_arm.{side}",
                  f"lower_arm.{side}": f"{prefix}forearm.{side}", f"hand.{side}": f"{prefix}hand.{side}",
                  f"upper_leg.{side}": f"{prefix}thigh.{side}", f"lower_leg.{side}": f"{prefix}shin.{side}",
                  f"foot.{side}": f"{prefix}foot.{side}", f"toes.{side}": f"{prefix}toe.{side}"})

    def finger(f: str, seg: int, side: str) -> str:
        return f"{prefix}{'thumb' if f == 'thumb' else 'f_' + f}.0{seg}.{side}"

    extra = [BoneInfo(f"{prefix}pelvis.L", f"{prefix}spine", (0, 0, 1.0), (0.1, -0.1, 1.1)),
             BoneInfo(f"{prefix}upper_arm.L.001", f"{prefix}upper_arm.L", (0.3, 0, 1.38), (0.45, 0, 1.38)),
             BoneInfo(f"{prefix}breast.L", f"{prefix}spine.003", (0.1, 0, 1.3), (0.1, -0.1, 1.3))]
    bones = humanoid(n, [f"{prefix}spine.001", f"{prefix}spine.002", f"{prefix}spine.003"], fingers=finger,
                     neck=[f"{prefix}spine.004", f"{prefix}spine.005"], extra=extra)
    expected = {**n, "spine": f"{prefix}spine.001", "chest": f"{prefix}spine.002",
                "upper_chest": f"{prefix}spine.003", "index1.L": f"{prefix}f_index.01.L",
                "thumb2.R": f"{prefix}thumb.02.R"}
    return bones, expected


@pytest.mark.parametrize("prefix", ["DEF-", "ORG-", ""])
def test_rigify_deform_original_and_metarig_names(prefix: str) -> None:
    bones, expected = rigify(prefix)
    roles = check(bones, expected)
    assert f"{prefix}pelvis.L" not in roles.values()
    assert f"{prefix}upper_arm.L.001" not in roles.values()


def test_rigify_generated_rig_prefers_deform_bones_over_controls() -> None:
    bones, expected = rigify("DEF-")
    controls = [BoneInfo("torso", None, (0, 0, 1.0), (0, -0.3, 1.0), deform=False),
                BoneInfo("hips", "torso", (0, 0, 1.0), (0, 0, 0.9), deform=False),
                BoneInfo("chest", "torso", (0, 0, 1.2), (0, 0, 1.4), deform=False),
                BoneInfo("upper_arm_fk.L", "chest", (0.18, 0, 1.38), (0.45, 0, 1.38), deform=False),
                BoneInfo("hand_ik.L", "torso", (0.7, 0, 1.38), (0.8, 0, 1.38), deform=False),
                BoneInfo("shoulder.L", "chest", (0.05, 0, 1.38), (0.18, 0, 1.38), deform=False),
                BoneInfo("ORG-shoulder.L", "chest", (0.05, 0, 1.38), (0.18, 0, 1.38), deform=False)]
    check(bones + controls, expected)


def test_unity_humanoid_names() -> None:
    n = {"hips": "Hips", "neck": "Neck", "head": "Head"}
    for side, word in (("L", "Left"), ("R", "Right")):
        n.update({f"shoulder.{side}": f"{word}Shoulder", f"upper_arm.{side}": f"{word}UpperArm",
                  f"lower_arm.{side}": f"{word}LowerArm", f"hand.{side}": f"{word}Hand",
                  f"upper_leg.{side}": f"{word}UpperLeg", f"lower_leg.{side}": f"{word}LowerLeg",
                  f"foot.{side}": f"{word}Foot", f"toes.{side}": f"{word}Toes"})
    seg_words = {1: "Proximal", 2: "Intermediate", 3: "Distal"}

    def finger(f: str, seg: int, side: str) -> str:
        return f"{'Left' if side == 'L' else 'Right'}{'Little' if f == 'pinky' else f.capitalize()}{seg_words[seg]}"

    bones = humanoid(n, ["Spine", "Chest", "UpperChest"], fingers=finger)
    check(bones, {**n, "spine": "Spine", "chest": "Chest", "upper_chest": "UpperChest",
                  "pinky3.L": "LeftLittleDistal", "ring2.R": "RightRingIntermediate"})


def test_vrm_names_both_versions() -> None:
    n = {"hips": "J_Bip_C_Hips", "neck": "J_Bip_C_Neck", "head": "J_Bip_C_Head"}
    for side in ("L", "R"):
        n.update({f"shoulder.{side}": f"J_Bip_{side}_Shoulder", f"upper_arm.{side}": f"J_Bip_{side}_UpperArm",
                  f"lower_arm.{side}": f"J_Bip_{side}_LowerArm", f"hand.{side}": f"J_Bip_{side}_Hand",
                  f"upper_leg.{side}": f"J_Bip_{side}_UpperLeg", f"lower_leg.{side}": f"J_Bip_{side}_LowerLeg",
                  f"foot.{side}": f"J_Bip_{side}_Foot", f"toes.{side}": f"J_Bip_{side}_ToeBase"})

    def finger(f: str, seg: int, side: str) -> str:
        return f"J_Bip_{side}_{'Little' if f == 'pinky' else f.capitalize()}{seg}"

    bones = humanoid(n, ["J_Bip_C_Spine", "J_Bip_C_Chest", "J_Bip_C_UpperChest"], fingers=finger)
    check(bones, {**n, "chest": "J_Bip_C_Chest", "upper_chest": "J_Bip_C_UpperChest", "pinky1.R": "J_Bip_R_Little1"})
    # VRM 1.0 humanoid bone names (lowerCamelCase)
    n1 = {"hips": "hips", "neck": "neck", "head": "head"}
    for side, word in (("L", "left"), ("R", "right")):
        n1.update({f"shoulder.{side}": f"{word}Shoulder", f"upper_arm.{side}": f"{word}UpperArm",
                   f"lower_arm.{side}": f"{word}LowerArm", f"hand.{side}": f"{word}Hand",
                   f"upper_leg.{side}": f"{word}UpperLeg", f"lower_leg.{side}": f"{word}LowerLeg",
                   f"foot.{side}": f"{word}Foot", f"toes.{side}": f"{word}Toes"})
    check(humanoid(n1, ["spine", "chest", "upperChest"]), {**n1, "upper_chest": "upperChest"})


@pytest.mark.parametrize("style", [
    "{Part}.{S}", "{part}_{S}", "{S}_{Part}", "{Part}_{s}", "{part}.{s}", "{S} {Part}", "{Side}{Part}",
    "{part}{Side}", "{side}_{part}", "{Part}-{S}", "{Side}_{Part}", "{Lf}_{part}", "{s}_{part}", "{Part}{S}",
    "{part}_{Lf}", "{S}{Part}", "{Part}.{Side}", "{part} ({Side})",
])
def test_plain_names_and_every_side_convention(style: str) -> None:
    parts = {"shoulder": ("Shoulder", "shoulder"), "upper_arm": ("UpperArm", "upper_arm"),
             "lower_arm": ("Forearm", "forearm"), "hand": ("Hand", "hand"), "upper_leg": ("Thigh", "thigh"),
             "lower_leg": ("Shin", "shin"), "foot": ("Foot", "foot"), "toes": ("Toe", "toe")}
    n = {"hips": "Hips", "neck": "Neck", "head": "Head"}
    for side in ("L", "R"):
        word = "Left" if side == "L" else "Right"
        for role, (cap, low) in parts.items():
            n[f"{role}.{side}"] = style.format(Part=cap, part=low, S=side, s=side.lower(), Side=word,
                                               side=word.lower(), Lf="Lf" if side == "L" else "Rt")
    bones = humanoid(n, ["Spine", "Chest"])
    check(bones, {**n, "spine": "Spine", "chest": "Chest"})


def test_mixamo_leg_is_the_lower_leg_only_beside_an_upleg() -> None:
    assert read_name("LeftLeg")[0:2] == ("upper_leg", "L")  # alone, a leg is the thigh
    n = {"hips": "Hips", "neck": "Neck", "head": "Head"}
    for side, word in (("L", "Left"), ("R", "Right")):
        n.update({f"upper_arm.{side}": f"{word}Arm", f"lower_arm.{side}": f"{word}ForeArm",
                  f"hand.{side}": f"{word}Hand", f"upper_leg.{side}": f"{word}Leg",
                  f"lower_leg.{side}": f"{word}Shin", f"foot.{side}": f"{word}Foot"})
    check(humanoid(n, ["Spine"]), n)


def test_daz_genesis_names() -> None:
    n = {"hips": "hip", "neck": "neckLower", "head": "head"}
    for side in ("l", "r"):
        s = side.upper()
        n.update({f"shoulder.{s}": f"{side}Collar", f"upper_arm.{s}": f"{side}ShldrBend",
                  f"lower_arm.{s}": f"{side}ForearmBend", f"hand.{s}": f"{side}Hand",
                  f"upper_leg.{s}": f"{side}ThighBend", f"lower_leg.{s}": f"{side}Shin",
                  f"foot.{s}": f"{side}Foot", f"toes.{s}": f"{side}Toe"})
    extra = [BoneInfo("lShldrTwist", "lShldrBend", (0.3, 0, 1.38), (0.45, 0, 1.38)),
             BoneInfo("lThighTwist", "lThighBend", (0.09, 0, 0.7), (0.09, 0, 0.5))]
    bones = humanoid(n, ["abdomenLower", "abdomenUpper", "chestLower", "chestUpper"], extra=extra,
                     neck=["neckLower", "neckUpper"])
    roles = check(bones, {**n, "spine": "abdomenLower", "upper_chest": "chestUpper"})
    assert "lShldrTwist" not in roles.values() and "lThighTwist" not in roles.values()


def test_3ds_max_biped_and_joint_named_rigs() -> None:
    n = {"hips": "Bip01 Pelvis", "neck": "Bip01 Neck", "head": "Bip01 Head"}
    for side in ("L", "R"):
        n.update({f"shoulder.{side}": f"Bip01 {side} Clavicle", f"upper_arm.{side}": f"Bip01 {side} UpperArm",
                  f"lower_arm.{side}": f"Bip01 {side} Forearm", f"hand.{side}": f"Bip01 {side} Hand",
                  f"upper_leg.{side}": f"Bip01 {side} Thigh", f"lower_leg.{side}": f"Bip01 {side} Calf",
                  f"foot.{side}": f"Bip01 {side} Foot", f"toes.{side}": f"Bip01 {side} Toe0"})

    def finger(f: str, seg: int, side: str) -> str:
        return f"Bip01 {side} Finger{list(FINGER_Y).index(f)}{'' if seg == 1 else seg - 1}"

    bones = humanoid(n, ["Bip01 Spine", "Bip01 Spine1"], fingers=finger, root="Bip01")
    check(bones, {**n, "spine": "Bip01 Spine", "chest": "Bip01 Spine1", "thumb1.L": "Bip01 L Finger0",
                  "index2.R": "Bip01 R Finger11"})
    # SMPL-style joint names: Collar, Shoulder (the upper arm), Elbow, Wrist; Hip, Knee, Ankle
    j = {"hips": "Pelvis", "neck": "Neck", "head": "Head"}
    for side in ("L", "R"):
        j.update({f"shoulder.{side}": f"{side}_Collar", f"upper_arm.{side}": f"{side}_Shoulder",
                  f"lower_arm.{side}": f"{side}_Elbow", f"hand.{side}": f"{side}_Wrist",
                  f"upper_leg.{side}": f"{side}_Hip", f"lower_leg.{side}": f"{side}_Knee",
                  f"foot.{side}": f"{side}_Ankle", f"toes.{side}": f"{side}_Foot"})
    check(humanoid(j, ["Spine1", "Spine2", "Spine3"]), j)


def _anonymous(bones: list[BoneInfo]) -> tuple[list[BoneInfo], dict[str, str]]:
    rename = {b.name: f"bone_{i:03d}" for i, b in enumerate(bones)}
    out = [BoneInfo(rename[b.name], rename.get(b.parent) if b.parent else None, b.head, b.tail) for b in bones]
    return out, rename


def _a_pose(bones: list[BoneInfo]) -> list[BoneInfo]:
    """Arms rotated 40 degrees down about each shoulder joint (an A-pose)."""
    import math

    out = []
    for b in bones:
        def turn(p: Vec3) -> Vec3:
            if abs(p[0]) < 0.17 or p[2] < 1.3:
                return p
            sign = 1.0 if p[0] > 0 else -1.0
            dx, dz = abs(p[0]) - 0.18, p[2] - 1.38
            a = math.radians(-40.0)
            x = dx * math.cos(a) - dz * math.sin(a)
            z = dx * math.sin(a) + dz * math.cos(a)
            return (sign * (0.18 + x), p[1], 1.38 + z)
        out.append(BoneInfo(b.name, b.parent, turn(b.head), turn(b.tail), b.deform))
    return out


@pytest.mark.parametrize("pose", ["T", "A"])
@pytest.mark.parametrize("facing", ["-Y", "+Y"])
def test_structure_alone_finds_the_body(pose: str, facing: str) -> None:
    bones, expected = mixamo("mixamorig:")
    if pose == "A":
        bones = _a_pose(bones)
    if facing == "+Y":  # turned around: its left is now -X
        bones = [BoneInfo(b.name, b.parent, (-b.head[0], -b.head[1], b.head[2]), (-b.tail[0], -b.tail[1], b.tail[2]))
                 for b in bones]
    anonymous, rename = _anonymous(bones)
    roles = roles_by_structure(anonymous)
    for role in BODY_ROLES | {"shoulder.L", "shoulder.R", "toes.L"}:
        assert roles.get(role) == rename[expected[role]], f"{role}: {roles.get(role)} in {roles}"


def test_structure_fills_what_names_do_not_tell() -> None:
    bones, _expected = unreal(False)
    renamed = [BoneInfo("bone_a" if b.name == "calf_l" else b.name, "bone_a" if b.parent == "calf_l" else b.parent,
                        b.head, b.tail) for b in bones]
    roles = find_roles(renamed)
    assert roles["lower_leg.L"] == "bone_a"
    assert roles["foot.L"] == "foot_l"


def test_auto_map_between_families_lists_unmapped_bones() -> None:
    source = [BoneInfo(b.name, b.parent, b.head, b.tail) for b in BONES]
    target, _ = unreal(False)
    bone_map = auto_map(source, target)
    assert bone_map.pairs["Hips"] == "pelvis"
    assert bone_map.pairs["LeftUpperArm"] == "upperarm_l"
    assert bone_map.pairs["RightLowerLeg"] == "calf_r"
    assert bone_map.pairs["Chest"] == "spine_03"  # the top of the spine, where the arms hang, goes to the top
    assert bone_map.roles["LeftFoot"] == "foot.L"
    assert len(bone_map.pairs) == len(BONES)
    assert bone_map.unmapped_source == []
    assert {"root", "ball_l", "spine_02", "thigh_twist_01_l", "index_01_l"} <= set(bone_map.unmapped_target)
    assert "pelvis" not in bone_map.unmapped_target
    assert len(set(bone_map.pairs.values())) == len(bone_map.pairs)


def test_spines_of_different_lengths_pair_their_tops() -> None:
    source, _ = mixamo("mixamorig:")  # Spine, Spine1, Spine2
    target = [BoneInfo(b.name, b.parent, b.head, b.tail) for b in BONES]  # Spine, Chest
    bone_map = auto_map(source, target)
    assert bone_map.pairs["mixamorig:Spine"] == "Spine"
    assert bone_map.pairs["mixamorig:Spine2"] == "Chest"
    assert "mixamorig:Spine1" in bone_map.unmapped_source
    back = auto_map(target, source)
    assert back.pairs["Chest"] == "mixamorig:Spine2" and "mixamorig:Spine1" in back.unmapped_target


def test_preset_round_trip_and_bad_presets() -> None:
    source = [BoneInfo(b.name, b.parent, b.head, b.tail) for b in BONES]
    target, _ = mixamo("mixamorig:")
    bone_map = auto_map(source, target)
    text = bone_map.to_json()
    assert len(text) < 4000 and json.loads(text)["format"] == "marionette-bone-map"
    again = BoneMap.from_json(text)
    assert again.pairs == bone_map.pairs and again.roles == bone_map.roles
    checked = again.checked([b.name for b in source], [b.name for b in target])
    assert "mixamorig:HeadTop_End" in checked.unmapped_target
    with pytest.raises(InputError, match="not valid JSON"):
        BoneMap.from_json("{nope")
    with pytest.raises(InputError, match="Not a Marionette bone map"):
        BoneMap.from_json('{"bones": []}')
    with pytest.raises(InputError, match="unknown role"):
        BoneMap.from_json('{"format": "marionette-bone-map", "bones": [{"source": "a", "target": "b", '
                          '"role": "tail"}]}')
    with pytest.raises(InputError, match="not in the target: nope"):
        BoneMap({"Hips": "nope"}).checked(["Hips"], ["pelvis"])
    with pytest.raises(InputError, match="mapped twice"):
        BoneMap({"Hips": "pelvis", "Spine": "pelvis"}).checked(["Hips", "Spine"], ["pelvis"])


def test_required_roles_missing_on_a_rig_without_legs() -> None:
    bones = [BoneInfo("Hips", None, (0, 0, 1), (0, 0, 1.1)), BoneInfo("Spine", "Hips", (0, 0, 1.1), (0, 0, 1.3))]
    roles = find_roles(bones)
    assert missing_required(roles) == [r for r in REQUIRED_ROLES if r != "hips"]
    assert find_roles([]) == {}
