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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .bone_names import (
    CENTER_ROLES,
    FINGER_SEGMENTS,
    FINGERS,
    LIMB_ROLES,
    REQUIRED_ROLES,
    ROLES,
    SIDES,
    SYNONYMS,
    BoneInfo,
    Vec3,
    read_name,
    roles_by_name,
    split_words,
)
from .bone_structure import roles_by_structure
from .errors import InputError

# What the modules split out of this one offer, still reachable as bonemap.<name>.
__all__ = ["CENTER_ROLES", "FINGERS", "FINGER_SEGMENTS", "LIMB_ROLES", "REQUIRED_ROLES", "ROLES", "SIDES",
           "SYNONYMS", "BoneInfo", "BoneMap", "Vec3", "auto_map", "find_roles", "missing_required", "read_name",
           "roles_by_name", "roles_by_structure", "split_words"]


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
