"""Humanoid roles from bone names (plain Python, no bpy): the role vocabulary, how a name is read as words
(namespaces, Rigify layers, prefixes and every side convention dropped or read; see bonemap.py), and the
roles a rig's names tell."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

Vec3 = tuple[float, float, float]

SIDES = ("L", "R")
CENTER_ROLES = ("hips", "spine", "chest", "upper_chest", "neck", "head")
LIMB_ROLES = ("shoulder", "upper_arm", "lower_arm", "hand", "upper_leg", "lower_leg", "foot", "toes")
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
FINGER_SEGMENTS = (1, 2, 3)


def _all_roles() -> tuple[str, ...]:
    roles: list[str] = list(CENTER_ROLES)
    for side in SIDES:
        roles.extend(f"{limb}.{side}" for limb in LIMB_ROLES)
    for side in SIDES:
        roles.extend(f"{finger}{seg}.{side}" for finger in FINGERS for seg in FINGER_SEGMENTS)
    return tuple(roles)


ROLES: tuple[str, ...] = _all_roles()
"""Every role, in the order maps list them (body first, then limbs, then fingers)."""

REQUIRED_ROLES: tuple[str, ...] = ("hips", "upper_leg.L", "lower_leg.L", "upper_leg.R", "lower_leg.R")
"""Roles both rigs need for a retarget: the hips carry the travel, the legs give its scale."""

# Core words (side and prefixes removed, words joined) -> role without side.
SYNONYMS: dict[str, str] = {
    # centre
    "hips": "hips", "hip": "hips", "pelvis": "hips", "hipsbone": "hips", "cog": "hips",
    "spine": "spine", "abdomen": "spine", "abdomenlower": "spine", "waist": "spine", "lowerback": "spine",
    "spinelower": "spine", "torso": "chest", "chestlower": "chest", "chest": "chest", "ribcage": "chest",
    "thorax": "chest",
    "upperchest": "upper_chest", "chestupper": "upper_chest", "abdomenupper": "spine", "spineupper": "chest",
    "neck": "neck", "neckbase": "neck",
    "head": "head", "skull": "head",
    # arms
    "shoulder": "shoulder", "clavicle": "shoulder", "collar": "shoulder", "collarbone": "shoulder",
    "upperarm": "upper_arm", "uparm": "upper_arm", "arm": "upper_arm", "armupper": "upper_arm",
    "humerus": "upper_arm", "bicep": "upper_arm", "shoulderarm": "upper_arm",
    "shldr": "upper_arm", "shldrbend": "upper_arm", "forearmbend": "lower_arm", "thighbend": "upper_leg",
    "lowerarm": "lower_arm", "forearm": "lower_arm", "armlower": "lower_arm", "elbow": "lower_arm",
    "loarm": "lower_arm", "radius": "lower_arm", "ulna": "lower_arm",
    "hand": "hand", "wrist": "hand", "fist": "hand", "palm": "hand",
    # legs
    "upperleg": "upper_leg", "upleg": "upper_leg", "thigh": "upper_leg", "legupper": "upper_leg",
    "femur": "upper_leg", "leg": "upper_leg",
    "lowerleg": "lower_leg", "calf": "lower_leg", "shin": "lower_leg", "knee": "lower_leg",
    "leglower": "lower_leg", "loleg": "lower_leg", "tibia": "lower_leg", "crus": "lower_leg",
    "foot": "foot", "ankle": "foot",
    "toes": "toes", "toe": "toes", "toebase": "toes", "ball": "toes", "toe0": "toes", "football": "toes",
}

_FINGER_WORDS: dict[str, str] = {
    "thumb": "thumb", "index": "index", "pointer": "index", "middle": "middle", "ring": "ring",
    "pinky": "pinky", "pinkie": "pinky", "little": "pinky", "small": "pinky",
}
_SEGMENT_WORDS: dict[str, int] = {"proximal": 1, "intermediate": 2, "medial": 2, "distal": 3}

_SIDE_WORDS: dict[str, str] = {
    "l": "L", "left": "L", "lf": "L", "lft": "L", "r": "R", "right": "R", "rt": "R", "rgt": "R",
}
# Words that make a bone a helper, never a humanoid role.
_HELPER_WORDS = frozenset({
    "ik", "fk", "mch", "ctrl", "ctl", "con", "control", "pole", "target", "tgt", "twist", "roll", "nub",
    "end", "tip", "helper", "corrective", "socket", "prop", "weapon", "attach", "ikfk", "vis", "mstr", "master",
    "root", "track", "tweak", "pivot", "gun", "jnt_end", "top", "null", "dummy", "leaf", "meta",
    "metacarpal", "breast", "jaw", "eye", "tongue", "teeth", "ear", "brow", "lid", "lip", "cheek", "nose",
    "hair", "tail", "wing", "skirt", "cape", "bag", "belly", "butt", "glute", "heel", "sub",
})
# Words that say nothing about the role (prefixes of rig families, centre markers).
_NOISE_WORDS = frozenset({"def", "org", "j", "bip", "bip01", "bip001", "c", "cc", "base", "mixamorig", "bone",
                          "jnt", "jt", "b", "bn", "sk", "skel", "character", "char", "ue", "x", "ctr", "center",
                          "centre", "mid"})

_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_NUMBERED_PREFIX_RE = re.compile(r"^(bip0*1|mixamorig\d*)", re.IGNORECASE)


@dataclass(frozen=True)
class BoneInfo:
    """One bone as the bpy layer describes it: rest head and tail in world space (any unit)."""

    name: str
    parent: str | None
    head: Vec3
    tail: Vec3
    deform: bool = True


@dataclass(frozen=True)
class NameReading:
    """What a bone's name tells: its role (or None) and how sure (higher wins among rivals)."""

    role: str | None
    rank: int = 0


def split_words(name: str) -> list[str]:
    """Lower-case words of a bone name, namespaces and rig prefixes kept as words (dropped later)."""
    text = name
    for sep in (":", "|"):
        if sep in text:
            text = text.rsplit(sep, 1)[1]
    words: list[str] = []
    for chunk in re.split(r"[\s_.\-]+", text):
        if not chunk:
            continue
        numbered = _NUMBERED_PREFIX_RE.match(chunk)
        if numbered and numbered.end() < len(chunk):  # "Bip01Pelvis", "mixamorigHips" glued
            words.append(numbered.group(0).lower())
            chunk = chunk[numbered.end():]
        elif numbered:
            words.append(chunk.lower())
            continue
        words.extend(w.lower() for w in _WORD_RE.findall(chunk))
    return words


def _prefix_rank(name: str) -> int:
    """Rigify: deform bones (DEF-) beat originals (ORG-), which beat anything else named alike."""
    upper = name.rsplit(":", 1)[-1].upper()
    if upper.startswith("DEF-") or upper.startswith("DEF_"):
        return 2
    if upper.startswith("ORG-") or upper.startswith("ORG_"):
        return 1
    return 0


def read_name(name: str) -> tuple[str | None, str | None, list[str], list[int]]:
    """(role without side, side, remaining words, numbers) of a bone name; role None when not told."""
    words = split_words(name)
    side: str | None = None
    rest: list[str] = []
    numbers: list[int] = []
    for word in words:
        if word in _SIDE_WORDS and side is None:
            side = _SIDE_WORDS[word]
            continue
        if word.isdigit():
            numbers.append(int(word))
            continue
        if word in _NOISE_WORDS:
            continue
        # "LeftArm" is split as "left", "arm"; "leftarm" typed in lower case is not: peel the side.
        for prefix, value in (("left", "L"), ("right", "R")):
            if side is None and word.startswith(prefix) and len(word) > len(prefix) + 2:
                side, word = value, word[len(prefix):]
        rest.append(word)
    if any(w in _HELPER_WORDS for w in rest):
        return None, side, rest, numbers
    finger = next((_FINGER_WORDS[w] for w in rest if w in _FINGER_WORDS), None)
    if finger is not None:
        segment = next((_SEGMENT_WORDS[w] for w in rest if w in _SEGMENT_WORDS), None)
        if segment is None and numbers:
            segment = numbers[-1]
        if segment is None:
            segment = 1
        return (f"{finger}{segment}" if segment in FINGER_SEGMENTS else None), side, rest, numbers
    if "finger" in rest and numbers:  # 3ds Max Biped: Finger0 (thumb) .. Finger4, Finger01 = thumb segment 2
        digits = str(numbers[0])
        raw = next((w for w in words if w.isdigit()), digits)
        which = int(raw[0])
        segment = int(raw[1]) + 1 if len(raw) > 1 else 1
        if which < len(FINGERS) and segment in FINGER_SEGMENTS:
            return f"{FINGERS[which]}{segment}", side, rest, numbers
        return None, side, rest, numbers
    core = "".join(rest)
    role = SYNONYMS.get(core)
    if role is None and core.startswith("spine"):
        role = "spine"
    if role is None and core.startswith("neck"):
        role = "neck"
    if role is None:
        return None, side, rest, numbers
    if role in CENTER_ROLES and side is not None:
        # A sided "hip" is a thigh; a sided pelvis/spine is a helper (Rigify's DEF-pelvis.L).
        if core == "hip":
            return "upper_leg", side, rest, numbers
        return None, side, rest, numbers
    if role not in CENTER_ROLES and side is None:
        return None, side, rest, numbers
    return role, side, rest, numbers


@dataclass
class Candidate:
    bone: str
    role: str
    rank: tuple[int, ...]


def _depths(bones: Sequence[BoneInfo]) -> dict[str, int]:
    parents = {b.name: b.parent for b in bones}
    depths: dict[str, int] = {}
    for bone in bones:
        depth, cur, seen = 0, bone.parent, set()
        while cur is not None and cur in parents and cur not in seen:
            seen.add(cur)
            depth += 1
            cur = parents[cur]
        depths[bone.name] = depth
    return depths


def roles_by_name(bones: Sequence[BoneInfo]) -> dict[str, str]:
    """role -> bone, from the names alone (with the few family rules names need)."""
    depths = _depths(bones)
    readings = {b.name: read_name(b.name) for b in bones}
    deforming_rig = any(b.deform for b in bones)
    sided_cores: dict[str, set[str]] = {"L": set(), "R": set()}
    for _role, side, rest, _numbers in readings.values():
        if side in sided_cores:
            sided_cores[side].add("".join(rest))
    candidates: list[Candidate] = []
    rigify = _looks_like_rigify(bones)
    prefixed = any(_prefix_rank(b.name) for b in bones)
    spine_bones: list[tuple[int, str]] = []
    for bone in bones:
        role, side, rest, numbers = readings[bone.name]
        if rigify and _RIGIFY_SPINE_RE.match(bone.name):
            spine_bones.append((numbers[0] if numbers else 0, bone.name))
            continue
        if role is None or (rigify and prefixed and _prefix_rank(bone.name) == 0):
            continue
        core = "".join(rest)
        if side is not None:
            cores = sided_cores[side]
            if core == "leg" and cores & {"upleg", "upperleg", "thigh", "hip"}:
                role = "lower_leg"  # Mixamo: UpLeg, Leg
            if core == "shoulder" and cores & {"collar", "clavicle", "collarbone"}:
                role = "upper_arm"  # joint-named rigs (SMPL): Collar, Shoulder, Elbow, Wrist
            if core == "elbow" and cores & {"forearm", "lowerarm"}:
                continue
            if core == "knee" and cores & {"calf", "shin", "lowerleg"}:
                continue
            if core in ("hand", "palm", "fist") and "wrist" in cores and core == "hand":
                continue
            if core == "foot" and "ankle" in cores:
                role = "toes"  # joint-named rigs: Ankle is the foot bone, Foot the toes
        if role in ("spine", "neck") and numbers and not side:
            spine_bones.append((numbers[0], bone.name))
            continue
        full = f"{role}.{side}" if side else role
        numbered_tail = 1 if re.search(r"\.\d{3}$", bone.name) else 0
        rank = (_prefix_rank(bone.name), int(bone.deform or not deforming_rig), -numbered_tail, -depths[bone.name])
        candidates.append(Candidate(bone.name, full, rank))
    result: dict[str, str] = {}
    for cand in sorted(candidates, key=lambda c: c.rank, reverse=True):
        if cand.role not in result and cand.bone not in result.values():
            result[cand.role] = cand.bone
    if rigify:
        _rigify_spine(sorted(spine_bones), result, bones)
    else:
        _numbered_spine(spine_bones, result, bones)
    return result


_RIGIFY_SPINE_RE = re.compile(r"^(?:(?:DEF|ORG)[-_])?spine(?:\.\d{3})?$")


def _looks_like_rigify(bones: Sequence[BoneInfo]) -> bool:
    """Rigify (metarig or generated rig) numbers its torso spine, spine.001 ... spine.006."""
    return sum(1 for b in bones if _RIGIFY_SPINE_RE.match(b.name)) >= 4


def _rigify_spine(spine: list[tuple[int, str]], result: dict[str, str], bones: Sequence[BoneInfo]) -> None:
    """Rigify numbers the whole torso: spine = hips, .001 spine, .002 chest, .003 upper chest, .004 neck,
    .006 head (DEF- bones preferred over ORG-)."""
    by_number: dict[int, str] = {}
    for number, name in spine:
        if number not in by_number or _prefix_rank(name) > _prefix_rank(by_number[number]):
            by_number[number] = name
    table = {0: "hips", 1: "spine", 2: "chest", 3: "upper_chest", 4: "neck", 6: "head"}
    for number, role in table.items():
        if number in by_number:
            result[role] = by_number[number]
    if "head" not in result and 5 in by_number and 6 not in by_number:
        result["head"] = by_number[5]


def _numbered_spine(spine: list[tuple[int, str]], result: dict[str, str], bones: Sequence[BoneInfo]) -> None:
    """Numbered spines (Mixamo Spine, Spine1, Spine2; Unreal spine_01..spine_05; neck_01, neck_02)."""
    names = {b.name for b in bones}
    spines = sorted((n, name) for n, name in spine if read_name(name)[0] == "spine")
    necks = sorted((n, name) for n, name in spine if read_name(name)[0] == "neck")
    chain = [name for _n, name in spines]
    if "spine" in result and result["spine"] in names:
        chain.insert(0, result.pop("spine"))
    if "chest" in result:
        chain.append(result.pop("chest"))
    if "upper_chest" in result:
        chain.append(result.pop("upper_chest"))
    if chain:
        for role, bone in zip(_spine_roles(len(chain)), chain, strict=True):
            if role:
                result.setdefault(role, bone)
    if necks and "neck" not in result:
        result["neck"] = necks[0][1]


def _spine_roles(count: int) -> list[str]:
    """Roles for a spine chain of `count` bones from the hips up (the top one is always the chest)."""
    if count == 1:
        return ["spine"]
    if count == 2:
        return ["spine", "chest"]
    if count == 3:
        return ["spine", "chest", "upper_chest"]
    roles = [""] * count
    roles[0], roles[count // 2], roles[-1] = "spine", "chest", "upper_chest"
    return roles
