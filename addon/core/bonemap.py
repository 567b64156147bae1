"""Automatic bone maps between humanoid armatures (plain Python, no bpy).

Every bone of a rig gets a humanoid *role* (``hips``, ``spine``, ``upper_arm.L``, ``index2.R``...) from its
name when the name tells, and from the rig's structure (chains from the hips, rest positions) when it does
not. Two rigs' roles give the map: the source bone and the target bone of each role both rigs have.

Names are read as words, whatever the family: a namespace (``mixamorig:``, ``mixamorig7:``,
``Armature|``), a Rigify layer (``DEF-``, ``ORG-``), a VRM or CC prefix (``J_Bip_C_``, ``CC_Base_``) or a
3ds Max Biped prefix (``Bip01``) is dropped, camelCase, ``_``, ``.``, ``-`` and spaces split words, and a
side is any of ``L``/``R``, ``Left``/``Right``, ``Lf``/``Rt``, ``lft``/``rgt`` before, inside or after the
name (``UpperArm.L``, ``upper_arm_L``, ``L_Thigh``, ``upperarm_l``, ``LeftUpLeg``, ``J_Bip_L_UpperArm``,
``ShoulderL``). What is left (``upperarm``, ``upleg``, ``calf``, ``forearm``...) is looked up in
:data:`SYNONYMS`. Helper bones (IK, FK, twist, roll, pole, control, mechanism and end bones) get no role.

The bpy layer describes a rig with :class:`BoneInfo` (name, parent, rest head and tail in world space,
whether it deforms). A map is saved and loaded as a small JSON preset (:meth:`BoneMap.to_json`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError

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


# --------------------------------------------------------------------------------------------------
# Structure: chains from the hips
# --------------------------------------------------------------------------------------------------


def _sub(a: Vec3, b: Vec3) -> Vec3:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _dot(a: Vec3, b: Vec3) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _length(a: Vec3) -> float:
    return math.sqrt(_dot(a, a))


def _cross(a: Vec3, b: Vec3) -> Vec3:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


class _Tree:
    def __init__(self, bones: Sequence[BoneInfo]) -> None:
        self.bones = {b.name: b for b in bones}
        self.children: dict[str, list[str]] = {b.name: [] for b in bones}
        for b in bones:
            if b.parent in self.children:
                self.children[b.parent].append(b.name)
        self.roots = [b.name for b in bones if b.parent not in self.bones]

    def subtree(self, name: str) -> list[str]:
        out, stack = [], [name]
        while stack:
            cur = stack.pop()
            out.append(cur)
            stack.extend(self.children[cur])
        return out

    def extreme(self, name: str, axis: Vec3) -> float:
        """The largest projection on `axis` of any head or tail in the subtree of `name`."""
        return max(max(_dot(self.bones[n].head, axis), _dot(self.bones[n].tail, axis)) for n in self.subtree(name))

    def reach(self, name: str, origin: Vec3) -> float:
        return max(max(_length(_sub(self.bones[n].head, origin)), _length(_sub(self.bones[n].tail, origin)))
                   for n in self.subtree(name))

    def chain(self, start: str, score: Any) -> list[str]:
        """From `start`, keep following the child whose subtree scores highest."""
        out = [start]
        cur = start
        while self.children[cur]:
            cur = max(self.children[cur], key=score)
            out.append(cur)
        return out


UP: Vec3 = (0.0, 0.0, 1.0)


def _find_hips(tree: _Tree) -> str | None:
    """The bone nearest the root with a child chain going up and two going down on opposite sides."""
    best: tuple[int, str] | None = None
    depths = _depths(list(tree.bones.values()))
    height = max(tree.extreme(r, UP) for r in tree.roots) - min(
        -tree.extreme(r, (0.0, 0.0, -1.0)) for r in tree.roots)
    for name, bone in tree.bones.items():
        kids = tree.children[name]
        if len(kids) < 2:
            continue
        z = bone.head[2]
        down = [k for k in kids if -tree.extreme(k, (0.0, 0.0, -1.0)) < z - 0.25 * height]
        up = [k for k in kids if tree.extreme(k, UP) > z + 0.25 * height]
        if len(down) >= 2 and (up or len(kids) >= 3) and (best is None or depths[name] < best[0]):
            best = (depths[name], name)
    return best[1] if best else None


def _significant(tree: _Tree, chain: list[str], fraction: float = 0.08) -> list[str]:
    """The bones of a chain longer than `fraction` of the whole (tiny joint helpers left out)."""
    lengths = {n: _length(_sub(tree.bones[n].tail, tree.bones[n].head)) for n in chain}
    total = sum(lengths.values()) or 1.0
    out: list[str] = []
    for name in chain:
        if lengths[name] < fraction * total:
            continue
        out.append(name)
    return out


def roles_by_structure(bones: Sequence[BoneInfo], hips: str | None = None) -> dict[str, str]:
    """role -> bone from the hierarchy and rest positions alone (world space, +Z up)."""
    if not bones:
        return {}
    tree = _Tree(bones)
    hips = hips if hips in tree.bones else _find_hips(tree)
    if hips is None:
        return {}
    result: dict[str, str] = {"hips": hips}
    origin = tree.bones[hips].head
    down: Vec3 = (0.0, 0.0, -1.0)
    kids = tree.children[hips]
    legs = sorted(kids, key=lambda k: tree.extreme(k, down), reverse=True)[:2]
    # Left is +X when the character faces -Y; the feet say which way it faces.
    leg_chains = {k: _significant(tree, tree.chain(k, lambda c: tree.extreme(c, down))) for k in legs}
    forward: Vec3 = (0.0, -1.0, 0.0)
    for chain in leg_chains.values():
        if len(chain) >= 3:
            foot = tree.bones[chain[2]]
            d = _sub(foot.tail, foot.head)
            flat = (d[0], d[1], 0.0)
            if _length(flat) > 1e-6:
                forward = (flat[0] / _length(flat), flat[1] / _length(flat), 0.0)
            break
    left_axis = _cross(UP, forward)

    def side_of(name: str) -> str:
        b = tree.bones[name]
        mid = ((b.head[0] + b.tail[0]) / 2, (b.head[1] + b.tail[1]) / 2, 0.0)
        return "L" if _dot(_sub(mid, (origin[0], origin[1], 0.0)), left_axis) > 0 else "R"

    for k, chain in leg_chains.items():
        if len(legs) == 2 and -tree.extreme(k, down) > origin[2]:
            continue
        side = side_of(chain[0]) if chain else "L"
        for role, bone in zip(("upper_leg", "lower_leg", "foot"), chain, strict=False):
            result.setdefault(f"{role}.{side}", bone)
        if len(chain) >= 3 and tree.children[chain[2]]:  # toes: short, whatever their length
            result.setdefault(f"toes.{side}", max(tree.children[chain[2]], key=lambda c: tree.reach(c, origin)))
    # Spine: up from the hips to the top of the head.
    up_kids = [k for k in kids if k not in legs]
    if not up_kids:
        return result
    torso = tree.chain(max(up_kids, key=lambda c: tree.extreme(c, UP)), lambda c: tree.extreme(c, UP))
    torso_height = tree.extreme(torso[0], UP) - origin[2]
    arm_root: str | None = None
    arm_starts: list[str] = []
    for name in torso:
        side_kids = [k for k in tree.children[name] if k not in torso]
        reaching = [k for k in side_kids if tree.reach(k, tree.bones[name].head) > 0.3 * torso_height]
        if len(reaching) >= 2:
            arm_root, arm_starts = name, sorted(reaching, key=lambda k: tree.reach(k, tree.bones[k].head),
                                                reverse=True)[:2]
    if arm_root is None:
        return result
    idx = torso.index(arm_root)
    spine = torso[: idx + 1]
    for role, bone in zip(_spine_roles(len(spine)), spine, strict=True):
        if role:
            result.setdefault(role, bone)
    above = torso[idx + 1 :]
    if len(above) >= 2:
        result.setdefault("neck", above[0])
        result.setdefault("head", above[1])
    elif above:
        result.setdefault("head", above[0])
    for start in arm_starts:
        chain = tree.chain(start, lambda c, s=start: tree.reach(c, tree.bones[s].head))
        hand_index = next((i for i, n in enumerate(chain) if len(tree.children[n]) >= 2), len(chain) - 1)
        arm = _significant(tree, chain[: hand_index + 1], 0.05)
        if chain[hand_index] not in arm:
            arm.append(chain[hand_index])
        if not 3 <= len(arm) <= 4:
            continue
        side = side_of(arm[-1])
        for role, bone in zip(("shoulder", "upper_arm", "lower_arm", "hand")[-len(arm):], arm, strict=True):
            result.setdefault(f"{role}.{side}", bone)
    return result


def find_roles(bones: Sequence[BoneInfo]) -> dict[str, str]:
    """role -> bone for a rig: names first, the structure for what names do not tell."""
    by_name = roles_by_name(bones)
    taken = set(by_name.values())
    by_structure = roles_by_structure(bones, by_name.get("hips"))
    result = dict(by_name)
    for role, bone in by_structure.items():
        if role not in result and bone not in taken:
            result[role] = bone
            taken.add(bone)
    return {role: result[role] for role in ROLES if role in result}


# --------------------------------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------------------------------

PRESET_FORMAT = "marionette-bone-map"


@dataclass
class BoneMap:
    """source bone -> target bone, with each pair's role (empty when set by hand without one)."""

    pairs: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # source bone -> role
    unmapped_source: list[str] = field(default_factory=list)
    unmapped_target: list[str] = field(default_factory=list)

    def target_of(self, role: str) -> str | None:
        for source, r in self.roles.items():
            if r == role:
                return self.pairs.get(source)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PRESET_FORMAT,
            "version": 1,
            "bones": [{"source": s, "target": t, "role": self.roles.get(s, "")} for s, t in self.pairs.items()],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> BoneMap:
        if not isinstance(data, dict) or data.get("format") != PRESET_FORMAT:
            raise InputError("Not a Marionette bone map preset (expected a JSON object with "
                             f"\"format\": \"{PRESET_FORMAT}\")")
        entries = data.get("bones")
        if not isinstance(entries, list):
            raise InputError("Bone map preset: \"bones\" must be a list of {source, target, role}")
        result = cls()
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("source"), str) \
                    or not isinstance(entry.get("target"), str):
                raise InputError(f"Bone map preset: bad entry {entry!r} (needs source and target names)")
            result.pairs[entry["source"]] = entry["target"]
            role = entry.get("role") or ""
            if role:
                if role not in ROLES:
                    raise InputError(f"Bone map preset: unknown role {role!r}")
                result.roles[entry["source"]] = role
        return result

    @classmethod
    def from_json(cls, text: str) -> BoneMap:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"Bone map preset is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_pairs(cls, pairs: Mapping[str, str], source_roles: Mapping[str, str] | None = None) -> BoneMap:
        """A map given by hand (source -> target); roles filled in from the source rig's roles."""
        by_bone = {bone: role for role, bone in (source_roles or {}).items()}
        result = cls(pairs=dict(pairs))
        result.roles = {s: by_bone[s] for s in pairs if s in by_bone}
        return result

    def checked(self, source_bones: Iterable[str], target_bones: Iterable[str]) -> BoneMap:
        """This map restricted to bones both rigs have; raises InputError when a name is unknown."""
        src, tgt = set(source_bones), set(target_bones)
        missing_src = [s for s in self.pairs if s not in src]
        missing_tgt = [t for t in self.pairs.values() if t not in tgt]
        if missing_src or missing_tgt:
            parts = []
            if missing_src:
                parts.append(f"not in the source: {', '.join(missing_src[:6])}")
            if missing_tgt:
                parts.append(f"not in the target: {', '.join(missing_tgt[:6])}")
            raise InputError("The bone map names bones these armatures do not have (" + "; ".join(parts) + ")")
        seen: dict[str, str] = {}
        for s, t in self.pairs.items():
            if t in seen:
                raise InputError(f"Target bone {t!r} is mapped twice (from {seen[t]!r} and {s!r})")
            seen[t] = s
        result = BoneMap(dict(self.pairs), dict(self.roles))
        result.unmapped_source = sorted(src - set(self.pairs))
        result.unmapped_target = sorted(tgt - set(self.pairs.values()))
        return result


def auto_map(source: Sequence[BoneInfo], target: Sequence[BoneInfo]) -> BoneMap:
    """The automatic map: every role both rigs have, and the bones left unmapped on each side."""
    src_roles = find_roles(source)
    tgt_roles = find_roles(target)
    # Spines of different lengths: the top bones (the chest the arms and neck hang from) go together.
    if "upper_chest" in src_roles and "upper_chest" not in tgt_roles and "chest" in tgt_roles:
        tgt_roles["upper_chest"] = tgt_roles.pop("chest")
    elif "upper_chest" in tgt_roles and "upper_chest" not in src_roles and "chest" in src_roles:
        src_roles["upper_chest"] = src_roles.pop("chest")
    result = BoneMap()
    for role in ROLES:
        if role in src_roles and role in tgt_roles:
            result.pairs[src_roles[role]] = tgt_roles[role]
            result.roles[src_roles[role]] = role
    result.unmapped_source = [b.name for b in source if b.name not in result.pairs]
    mapped = set(result.pairs.values())
    result.unmapped_target = [b.name for b in target if b.name not in mapped]
    return result


def missing_required(roles: Mapping[str, str]) -> list[str]:
    """The required roles (hips, both legs) a rig's roles lack."""
    return [r for r in REQUIRED_ROLES if r not in roles]
