"""Make an imported character right in the scene: unit scale, real-world size, on the ground, sane bones.

Provider results rarely arrive clean: Meshy's rigged GLB (and Mixamo-style FBX files in centimetres) come
with object scale 0.01 and data 100 times too large, normalised-size models (Rodin, image3d.io) fit a unit
cube centred on the origin, and files carry empty nodes from their node tree. :func:`normalize` is called
by the importer once every animation is on the armature and gives a character where:

* every object has unit scale and no rotation, its world-space size baked into its data (armature rest
  pose and meshes), and the location keys of every action of the armature are scaled by the same factor,
  so the motion plays exactly as authored (bone heads equal within float precision at every frame, after
  the uniform size change). Rotation and scale keys of bones are relative to the rest pose and need no change;
* the lowest point of the rest pose is at the object origin and the character centred on it in X/Y (the
  importer then moves the origin to the 3D cursor), unless ``recentre`` is False (the selected-mesh flow
  keeps the result where the provider put it relative to the original's origin);
* it faces -Y when the front it was delivered with is known (``facing``);
* it is ``height`` metres tall when a height is given (the artist's setting or the provider's stated
  height), else as delivered;
* no bone is longer than a quarter of the character (Blender's glTF importer alone makes 0.01-scale rigs'
  bones thousands of units long; gltf_hooks.py has it make them their own size during Marionette's glTF
  imports, so this is for what remains: FBX files, a root bone far from the hips): a too-long bone gets the
  length to its nearest child's head (or a twentieth of the height), along the same direction, which
  leaves its rest matrix and so the animation unchanged;
* an object parented to a bone (a rigid prop) stays on that bone where it was at the rest pose, at unit
  scale with its size in its data and its own origin and orientation (not the pose of the current frame);
* empties that carry nothing (no data, no instance; their transform is baked into their children) and
  bone-shape objects are removed.

Everything here is plain RNA data access plus one short Edit Mode visit for the bone lengths when needed
(it costs about as much as the rest of the normalisation together: gltf_hooks.py avoids it for glTF);
key scaling works on whole F-curves with ``foreach_get``/``foreach_set`` (no per-key Python loop), on
legacy actions (``action.fcurves``, Blender 4.2/4.3) and layered ones (layers/strips/channelbags, 4.4+).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Vector

log = logging.getLogger(__name__)

# Rotation about Z that turns a character looking along the key's axis to look along -Y.
FACING_TO_FRONT = {"-Y": 0.0, "+X": -math.pi / 2.0, "+Y": math.pi, "-X": math.pi / 2.0}
# Each provider declares the front its files have once Blender's importers converted them
# (Provider.result_front); the importer passes it in SceneFit.facing.
MAX_BONE_FRACTION = 0.25  # of the character's height
FALLBACK_BONE_FRACTION = 0.05
KEY_SCALE_PROP = "marionette_unit"  # on the armature: file units -> metres factor its location keys got
_UNIFORM_TOLERANCE = 1e-3
_LOCOMOTION = re.compile(r"walk|run|jog|sprint|stroll|march|strut|sneak|crawl|trot|gallop|skip|limp|stride",
                         re.IGNORECASE)
_OBJECT_TRANSFORMS = frozenset({
    "location", "rotation_euler", "rotation_quaternion", "rotation_axis_angle", "scale", "delta_location",
    "delta_rotation_euler", "delta_rotation_quaternion", "delta_scale",
})
_PLAIN_PARENTS = frozenset({"OBJECT", "ARMATURE"})  # parent types whose world is the parent's world
_BONE_LOCATION = re.compile(r'^pose\.bones\["((?:[^"\\]|\\.)*)"\]\.location$')


@dataclass
class Normalized:
    height: float  # metres, rest pose, after normalisation
    factor: float  # the uniform scale applied to the data (and to the location keys), from file units
    removed: list[str]  # names of the helper objects removed


# --------------------------------------------------------------------------------------------------
# F-curves, legacy and layered
# --------------------------------------------------------------------------------------------------


def _curve_owners(action: bpy.types.Action) -> list[Any]:
    """What holds `action`'s F-curves and can remove one: the channelbags, or the legacy action."""
    layers = getattr(action, "layers", None)
    if layers is not None and len(layers):
        return [bag for layer in layers for strip in layer.strips for bag in getattr(strip, "channelbags", ())]
    return [action]


def _find_curves(owner: Any, paths: Iterable[str], indices: int = 3) -> Iterator[Any]:
    """The F-curves of `owner` (an action or a channelbag) for `paths` x array indices: looked up in C with
    fcurves.find, much faster than reading the data path of every curve of a large action."""
    find = owner.fcurves.find
    for path in paths:
        for index in range(indices):
            curve = find(path, index=index)
            if curve is not None:
                yield curve


def drop_static_object_transforms(actions: Iterable[bpy.types.Action]) -> list[str]:
    """Remove object-level transform curves that hold one value (FBX files key the armature object's own
    transform on every frame): that transform is baked into the data now, the keys would undo it.
    Returns the paths of the moving object-level curves left (root motion on the object itself)."""
    moving: list[str] = []
    seen: set[int] = set()
    for action in actions:
        if action.as_pointer() in seen:
            continue
        seen.add(action.as_pointer())
        for owner in _curve_owners(action):
            for curve in list(_find_curves(owner, _OBJECT_TRANSFORMS, 4)):
                count = len(curve.keyframe_points)
                values = np.empty(count * 2, dtype=np.float64)
                curve.keyframe_points.foreach_get("co", values)
                ys = values[1::2]
                if count == 0 or float(ys.max() - ys.min()) <= 1e-6 * max(1.0, float(abs(ys).max())):
                    owner.fcurves.remove(curve)
                else:
                    moving.append(f"{action.name}: {curve.data_path}[{curve.array_index}]")
    return moving


def bone_of(curve: Any) -> str | None:
    """The bone name of a ``pose.bones["..."].location`` curve, else None."""
    match = _BONE_LOCATION.match(curve.data_path)
    return match.group(1).replace('\\"', '"') if match else None


def location_paths(arm: bpy.types.Object) -> list[str]:
    data = arm.data
    assert isinstance(data, bpy.types.Armature)
    return [f'pose.bones["{bpy.utils.escape_identifier(b.name)}"].location' for b in data.bones]


def scale_location_keys(actions: Iterable[bpy.types.Action], factor: float, paths: Sequence[str],
                        negligible: float = 0.0) -> None:
    """Multiply the bone location keys (values and handles) of `actions` by `factor`, each action once.
    `paths`: the location data paths of the armature's bones (location_paths). A curve whose keys would
    move by at most `negligible` (new units) is left alone: sampled files key every bone's location, and
    all but the root's are float noise around zero (thousands of curves in a 127-animation file)."""
    limit = negligible / abs(1.0 - factor) if factor != 1.0 else float("inf")
    if abs(factor - 1.0) < 1e-9:
        return
    seen: set[int] = set()
    for action in actions:
        if action.as_pointer() in seen:
            continue
        seen.add(action.as_pointer())
        for curve in (c for owner in _curve_owners(action) for c in _find_curves(owner, paths)):
            points = curve.keyframe_points
            count = len(points)
            if not count:
                continue
            co = [0.0] * (count * 2)  # a list: most curves hold 2 keys, where numpy's overhead dominates
            points.foreach_get("co", co)
            ys = co[1::2]
            if max(ys) <= limit and min(ys) >= -limit:
                continue  # zero or noise (a child bone's sampled location): scaling would not show
            values = np.array(co, dtype=np.float64)
            values[1::2] *= factor
            points.foreach_set("co", values)
            for prop in ("handle_left", "handle_right"):  # same times, so the key order stays: no update()
                points.foreach_get(prop, values)
                values[1::2] *= factor
                points.foreach_set(prop, values)
        action.update_tag()  # foreach_set does not tell the depsgraph, whose copy of the action would stay old


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------


def _mesh_world_points(obj: bpy.types.Object, world: Matrix) -> np.ndarray:
    mesh = obj.data
    assert isinstance(mesh, bpy.types.Mesh)
    count = len(mesh.vertices)
    if not count:
        return np.empty((0, 3))
    co = np.empty(count * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", co)
    points = co.reshape(count, 3)
    m = np.array(world, dtype=np.float64)
    return points @ m[:3, :3].T + m[:3, 3]


def _bone_world_points(arm: bpy.types.Object, world: Matrix) -> np.ndarray:
    data = arm.data
    assert isinstance(data, bpy.types.Armature)
    points = [world @ b.head_local for b in data.bones] + [world @ b.tail_local for b in data.bones]
    return np.array([(p.x, p.y, p.z) for p in points], dtype=np.float64).reshape(-1, 3)


def uniform_scale(matrix: Matrix) -> tuple[float, bool]:
    """The scale of a 3x3/4x4 matrix's linear part (the mean of its axes) and whether it is uniform."""
    linear = matrix.to_3x3()
    axes = [Vector((linear[0][i], linear[1][i], linear[2][i])).length for i in range(3)]
    mean = sum(axes) / 3.0
    uniform = mean > 0 and all(abs(a - mean) <= _UNIFORM_TOLERANCE * mean for a in axes)
    return mean, uniform


def rig_size(arm: bpy.types.Object, bones: Sequence[str] | None = None) -> float:
    """Mean distance of the bone heads from their centroid, in the armature's data units."""
    data = arm.data
    assert isinstance(data, bpy.types.Armature)
    wanted = set(bones) if bones is not None else None
    heads = [b.head_local for b in data.bones if wanted is None or b.name in wanted]
    if len(heads) < 2:
        return 0.0
    centre = sum(heads, Vector()) / len(heads)
    return sum((h - centre).length for h in heads) / len(heads)


# --------------------------------------------------------------------------------------------------
# The normalisation
# --------------------------------------------------------------------------------------------------


def _helpers(objects: Sequence[bpy.types.Object], arm: bpy.types.Object | None) -> list[bpy.types.Object]:
    """Empties that carry nothing, and bone-shape objects of the armature."""
    shapes: set[int] = set()
    if arm is not None and arm.pose is not None:
        for pose_bone in arm.pose.bones:
            if pose_bone.custom_shape is not None:
                shapes.add(pose_bone.custom_shape.as_pointer())
    found: list[bpy.types.Object] = []
    for obj in objects:
        empty = obj.type == "EMPTY" and obj.instance_type == "NONE" and obj.animation_data is None
        if empty or obj.as_pointer() in shapes:
            found.append(obj)
    return found


def _bone_parent(obj: bpy.types.Object) -> bpy.types.Bone | None:
    """The bone `obj` is parented to (a rigid prop in a hand), else None."""
    parent = obj.parent
    if parent is None or obj.parent_type != "BONE" or parent.type != "ARMATURE":
        return None
    data = parent.data
    assert isinstance(data, bpy.types.Armature)
    return data.bones.get(obj.parent_bone)


def _bone_tail(bone: bpy.types.Bone) -> Matrix:
    """Where a bone's children hang, in armature space at rest: the bone's frame moved to its tail."""
    return bone.matrix_local @ Matrix.Translation((0.0, bone.length, 0.0))


def _rest_worlds(objects: Sequence[bpy.types.Object], view_layer: bpy.types.ViewLayer) -> dict[int, Matrix]:
    """Each object's world matrix with its armature in the rest pose, from its own transform and its
    parents' (below a bone: the bone's rest matrix, not the pose of the current frame, which must not end
    up baked into a prop's data). Blender's dependency graph is evaluated only for what that cannot give
    (constraints, vertex or curve parents): the import leaves it to evaluate, and doing it here would
    cost more than the rest of the normalisation of a small character."""
    worlds: dict[int, Matrix] = {}
    evaluated = False

    def world(obj: bpy.types.Object) -> Matrix:
        nonlocal evaluated
        key = obj.as_pointer()
        if key in worlds:
            return worlds[key]
        parent, bone = obj.parent, _bone_parent(obj)
        if len(obj.constraints) or (parent is not None and bone is None and obj.parent_type not in _PLAIN_PARENTS):
            if not evaluated:
                view_layer.update()
                evaluated = True
            result = obj.matrix_world.copy()
        elif parent is None:
            result = obj.matrix_basis.copy()
        else:
            base = world(parent) if bone is None else world(parent) @ _bone_tail(bone)
            result = base @ obj.matrix_parent_inverse @ obj.matrix_basis
        worlds[key] = result
        return result

    for obj in objects:
        world(obj)
    return worlds


def _kept_parent(obj: bpy.types.Object, removed: set[int]) -> bpy.types.Object | None:
    parent = obj.parent
    while parent is not None and parent.as_pointer() in removed:
        parent = parent.parent
    return parent


def normalize(
    objects: Sequence[bpy.types.Object],
    armature: bpy.types.Object | None,
    actions: Sequence[bpy.types.Action],
    *,
    view_layer: bpy.types.ViewLayer,
    height: float | None = None,
    facing: str | None = None,
    recentre: bool = True,
) -> tuple[Normalized, list[bpy.types.Object]]:
    """Normalise the character made of `objects` (see the module docstring). Returns what was done and the
    objects still there (helpers removed). The objects end with identity world matrices (a root at the
    origin), but for props on bones, which keep their own origin; the caller places the roots."""
    helpers = _helpers(objects, armature)
    removed_ids = {h.as_pointer() for h in helpers}
    kept = [o for o in objects if o.as_pointer() not in removed_ids]
    worlds = _rest_worlds(objects, view_layer)

    if armature is not None and armature.pose is not None:
        for pose_bone in armature.pose.bones:
            if pose_bone.custom_shape is not None and pose_bone.custom_shape.as_pointer() in removed_ids:
                pose_bone.custom_shape = None

    # Rest-pose bounds in world space: the meshes, else the bones.
    meshes = [o for o in kept if o.type == "MESH"]
    chunks = [_mesh_world_points(o, worlds[o.as_pointer()]) for o in meshes]
    points = np.concatenate(chunks) if chunks else np.empty((0, 3))
    if not len(points) and armature is not None:
        points = _bone_world_points(armature, worlds[armature.as_pointer()])
    if len(points):
        low, high = points.min(axis=0), points.max(axis=0)
    else:
        low = high = np.zeros(3)
    delivered = float(high[2] - low[2])
    k = height / delivered if height and height > 0 and delivered > 1e-9 else 1.0
    turn = FACING_TO_FRONT.get(facing or "-Y", 0.0)
    anchor = ((low[0] + high[0]) / 2.0, (low[1] + high[1]) / 2.0, low[2]) if recentre else (0.0, 0.0, 0.0)
    to_scene = (Matrix.Rotation(turn, 4, "Z") @ Matrix.Scale(k, 4)
                @ Matrix.Translation((-float(anchor[0]), -float(anchor[1]), -float(anchor[2]))))

    factor = 1.0
    if armature is not None:
        factor, uniform = uniform_scale(to_scene @ worlds[armature.as_pointer()])
        if not uniform:
            log.warning("%s had a non-uniform scale; its root motion is scaled by the mean", armature.name)
        # Bone lengths first, in the file's units: the Edit Mode visit then evaluates the scene as imported,
        # before the changes below make Blender rebuild its dependency graph.
        if factor > 0:
            _fix_bone_lengths(armature, delivered * k / factor, view_layer)

    done: set[int] = set()
    placed: dict[int, Matrix] = {}  # each object's world matrix once normalised (identity unless on a bone)
    for obj in kept:
        bake = to_scene @ worlds[obj.as_pointer()]
        placed[obj.as_pointer()] = Matrix.Identity(4)
        if _bone_parent(obj) is not None:
            # A rigid prop on a bone keeps its own origin and orientation: only its scale goes into its data.
            location, rotation, _scale = bake.decompose()
            placed[obj.as_pointer()] = Matrix.Translation(location.to_tuple()) @ rotation.to_matrix().to_4x4()
            bake = placed[obj.as_pointer()].inverted_safe() @ bake
        data = obj.data
        if data is not None and data.as_pointer() not in done:
            done.add(data.as_pointer())
            if isinstance(data, bpy.types.Mesh):
                data.transform(bake, shape_keys=True)
                if bake.to_3x3().determinant() < 0:
                    data.flip_normals()
            elif hasattr(data, "transform"):  # armatures, curves...
                data.transform(bake)
    for obj in kept:
        # Set from the matrices computed here (no evaluation needed): world = parent's world @ basis.
        parent = _kept_parent(obj, removed_ids)
        obj.parent = parent
        obj.matrix_parent_inverse = Matrix.Identity(4)
        origin = Matrix.Identity(4)
        if parent is not None:
            origin = placed.get(parent.as_pointer(), parent.matrix_world)
            bone = _bone_parent(obj)
            if bone is not None:
                origin = origin @ _bone_tail(bone)
        obj.matrix_basis = origin.inverted_safe() @ placed[obj.as_pointer()]

    if armature is not None:
        # Keys left unscaled move by at most 10 micrometres per metre of character.
        scale_location_keys(actions, factor, location_paths(armature), negligible=1e-5 * delivered * k)
        moving = drop_static_object_transforms(actions)
        if moving:
            log.warning("%s: the armature object itself is animated (%s); that motion is left unscaled",
                        armature.name, ", ".join(moving[:3]))
        armature[KEY_SCALE_PROP] = float(armature.get(KEY_SCALE_PROP, 1.0)) * factor
        armature.show_in_front = True
    removed = [h.name for h in helpers]
    if helpers:
        bpy.data.batch_remove(ids=list(helpers))
    return Normalized(height=delivered * k, factor=factor, removed=removed), kept


def _fix_bone_lengths(arm: bpy.types.Object, height: float, view_layer: bpy.types.ViewLayer) -> None:
    """Shorten bones longer than MAX_BONE_FRACTION of the height (in the armature's data units), keeping
    head, direction and roll (so the rest matrices, and the animation, do not change)."""
    data = arm.data
    assert isinstance(data, bpy.types.Armature)
    if height <= 0:
        return
    cap = height * MAX_BONE_FRACTION
    if all(b.length <= cap for b in data.bones):
        return
    previous = view_layer.objects.active
    hidden = arm.hide_get(view_layer=view_layer)
    view_layer.objects.active = arm
    arm.hide_set(False, view_layer=view_layer)
    mode_set: Any = bpy.ops.object.mode_set
    mode_set(mode="EDIT")
    try:
        for bone in data.edit_bones:
            if bone.length <= cap:
                continue
            if any(child.use_connect for child in bone.children):
                continue  # its tail is its child's head
            distances = [(child.head - bone.head).length for child in bone.children]
            distances = [d for d in distances if d > height * 1e-3]
            length = min(distances) if distances else height * FALLBACK_BONE_FRACTION
            length = min(length, cap)
            bone.tail = bone.head + (bone.tail - bone.head).normalized() * length
    finally:
        mode_set(mode="OBJECT")
        arm.hide_set(hidden, view_layer=view_layer)
        view_layer.objects.active = previous


# --------------------------------------------------------------------------------------------------
# Animation files added to a normalised armature
# --------------------------------------------------------------------------------------------------


def conform_action(target: bpy.types.Object, source: bpy.types.Object, action: bpy.types.Action) -> float:
    """Scale `action`'s location keys from `source`'s data units to `target`'s (an animation file for a
    character that was normalised). Returns the factor used (1.0 when the units already agree)."""
    common = [b.name for b in _armature(source).bones if b.name in _armature(target).bones]
    there, here = rig_size(source, common), rig_size(target, common)
    if there <= 0 or here <= 0:
        return 1.0
    factor = here / there
    if abs(factor - 1.0) < 1e-4:
        return 1.0
    scale_location_keys([action], factor, location_paths(target), negligible=1e-5 * here)
    return factor


def _armature(obj: bpy.types.Object) -> bpy.types.Armature:
    data = obj.data
    assert isinstance(data, bpy.types.Armature)
    return data


def is_locomotion(name: str) -> bool:
    return bool(_LOCOMOTION.search(name))
