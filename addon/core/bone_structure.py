"""Humanoid roles from a rig's structure (plain Python, no bpy), for the bones whose names do not tell: the
hips found from the hierarchy and rest positions, then chains from them (legs, spine, arms), the feet
telling which way the character faces and so which side is left."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .bone_names import BoneInfo, Vec3, _depths, _spine_roles

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
