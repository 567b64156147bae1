"""Bring a provider's result (a model plus animation files) into the open scene as one character.

:func:`import_character` runs on Blender's main thread (from an operator or a timer). It imports the
main file (GLB/glTF or FBX, recognised by content), then takes the animation out of every animation
file and moves it onto the main armature, deleting everything else that file brought in.

How the animations are laid out on the armature
-----------------------------------------------
* Every action (the main file's own animations first, in file order, then one per animation file, in the
  order given) gets its own NLA track named after the action, holding one strip that starts at the
  action's first frame (so strip time equals action time).
* The tracks are stacked like Blender's glTF importer does it: the first action is the top track of the
  NLA editor (``nla_tracks[-1]``), the last action the bottom one (``nla_tracks[0]``).
* Every track is **muted**, and the first action is also the armature's **active action**; the scene
  frame range is set to its range. Playback therefore shows exactly the first animation: muted tracks
  are not evaluated, so no other animation can bleed into channels the first one does not key. The
  tracks are there so that every action is kept (an NLA strip is a real user, no fake users needed) and
  listed by name. To switch, an artist picks another action in the Action Editor (on Blender 4.4+ the
  armature's slot is found automatically, see below), or clears the active action and un-mutes/solos a
  track; the glTF add-on's animation switcher works too, as track names are the animation names.

Which actions are kept
----------------------
Only actions that animate the main armature. The glTF importer also makes per-object actions (a rigged
mesh's own transform, shape-key weights) and the FBX importer per-object takes; they are dropped, and
the animation data of the other imported objects is cleared. Reason: provider results animate the
skeleton; an extra per-object action would be a second, independent action per animation that neither
follows the armature's active action nor its NLA tracks when an artist switches, so it would play out of
sync (and duplicate every animation in the Action Editor). An unrigged model keeps no animation at all,
and animation files cannot be added to it (:class:`ImportFailed`).

Blender 4.4+ layered actions (feature-detected, never by version number)
-----------------------------------------------------------------------
An action that animated another armature is bound to its *slot* for that armature; assigning it to our
armature alone would animate nothing. Where ``AnimData.action_slot`` exists, the armature slot of every
kept action is renamed to the main armature's name (so its identifier is ``OB<armature name>`` in every
action, which makes Blender's slot auto-assignment work when artists switch actions) and is set
explicitly on ``anim_data.action_slot`` and on each NLA ``strip.action_slot``.

Atomicity and side effects
--------------------------
Every ID created is found by comparing all ``bpy.data`` ID collections before and after (pre-existing
data is never touched). On any failure everything the call created is removed, the scene settings the
importers change (frame range, current frame, fps, scene custom properties, the glTF add-on's animation
track list) and the selection, active object, active collection and mode are restored, and
:class:`ImportFailed` is raised. Only the main file may change the scene's fps (Blender's FBX importer
sets it to the file's rate so that its keys keep their timing); animation files never change scene
settings. (glTF keys are in seconds and land on the scene's fps, so their timing is kept anyway.)

Selection and mode
------------------
On success Blender is in Object Mode (import operators need it; an artist's Edit Mode is left first,
which writes their edits back), the imported objects are selected and nothing else, and the armature (or
the first mesh of an unrigged model) is active, as after any import; the artist's active collection
stays active. Root objects are moved to ``location`` (the 3D cursor). Operators run under
``context.temp_override`` with the scene, view layer and, when there is one, a window (a GUI timer's
context has none), so the same code runs in background mode and from a timer.

Speed
-----
A GLB animation file is imported from a slimmed copy that holds only nodes, skins and animations (its
binary chunk cut down to the inverse bind matrices and animation keys), which skips reading, building
and deleting meshes and decoding textures. If the copy cannot be made or imported, the original file is
imported. There is no per-frame or per-keyframe Python loop anywhere; 127 small animation files import
in about two seconds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import struct
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
from mathutils import Matrix

from ..core.errors import ImportFailed
from ..core.formats import sniff_file
from ..core.resultcheck import check_model
from . import inplace, normalize
from .actions import fcurves

log = logging.getLogger(__name__)

__all__ = ["ImportFailed", "ImportedCharacter", "SceneFit", "import_character"]

# ID collections of bpy.data that belong to the UI or to libraries: never diffed, never removed.
_SKIPPED_ID_COLLECTIONS = frozenset({"libraries", "screens", "window_managers", "workspaces"})
# glTF JSON keys that only describe geometry and looks; dropped from animation files before import.
_GLTF_LOOKS_KEYS = ("meshes", "materials", "textures", "images", "samplers", "cameras")
_GLTF_NODE_LOOKS_KEYS = ("mesh", "skin", "camera", "weights", "extensions", "extras")
_TRS_PATHS = frozenset({"translation", "rotation", "scale"})
_LOOKS_EXTENSIONS = frozenset({
    "KHR_draco_mesh_compression", "KHR_mesh_quantization", "KHR_lights_punctual", "EXT_texture_webp",
    "EXT_texture_avif", "EXT_mesh_gpu_instancing",
})
# Layer/stack names that say nothing about an FBX animation.
_GENERIC_FBX_NAMES = frozenset({"baselayer", "base layer", "animlayer", "layer0", "take 001", "scene"})
_REST_TOLERANCE = 1e-3


@dataclass
class ImportedCharacter:
    collection: str  # name of the new collection
    armature: str | None  # the one armature object's name (None for an unrigged model)
    objects: list[str]  # every object left in the scene by the import
    actions: list[str]  # action names, in NLA/track order, first = active


# --------------------------------------------------------------------------------------------------
# File recognition
# --------------------------------------------------------------------------------------------------


def _model_kind(path: Path, what: str) -> str:
    """'glb', 'gltf' or 'fbx', from the file's content. Raises ImportFailed for anything else."""
    if not path.is_file():
        raise ImportFailed(f"The {what} {path.name!r} is missing; download the result again.")
    try:
        kind = sniff_file(path)
        if kind is None and _looks_like_gltf_json(path):
            kind = "gltf"
    except OSError as exc:
        raise ImportFailed(f"The {what} {path.name!r} cannot be read: {exc}") from exc
    if kind in ("glb", "gltf", "fbx"):
        check_model(path)  # nothing outside the job's folder may be read or packed through the file
        return kind
    found = f"a {kind.upper()} picture" if kind in ("png", "jpeg") else "not a GLB, glTF or FBX model"
    raise ImportFailed(f"The {what} {path.name!r} is {found}; nothing was imported.")


def _looks_like_gltf_json(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip()
    if not head.startswith(b"{"):
        return False
    try:
        document = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(document, dict) and isinstance(document.get("asset"), dict)


def _glb_animation_names(path: Path) -> list[str]:
    """Animation names of a GLB/glTF file in file order; [] when the file cannot be parsed."""
    try:
        document, _bin = _read_gltf_document(path)
    except (OSError, ValueError):
        return []
    animations = document.get("animations") or []
    return [str(a.get("name") or f"Animation_{i}") for i, a in enumerate(animations) if isinstance(a, dict)]


def _read_gltf_document(path: Path) -> tuple[dict[str, Any], bytes | None]:
    """The JSON document and the binary chunk of a GLB (or just the JSON of a .gltf)."""
    data = path.read_bytes()
    if not data.startswith(b"glTF"):
        document = json.loads(data)
        if not isinstance(document, dict):
            raise ValueError("not a glTF document")
        return document, None
    if len(data) < 20:
        raise ValueError("truncated GLB")
    json_length, json_type = struct.unpack_from("<II", data, 12)
    if json_type != 0x4E4F534A:  # 'JSON'
        raise ValueError("GLB without a JSON chunk first")
    document = json.loads(data[20 : 20 + json_length])
    if not isinstance(document, dict):
        raise ValueError("not a glTF document")
    offset = 20 + json_length
    binary: bytes | None = None
    if offset + 8 <= len(data):
        bin_length, bin_type = struct.unpack_from("<II", data, offset)
        if bin_type == 0x004E4942:  # 'BIN\0'
            binary = data[offset + 8 : offset + 8 + bin_length]
    return document, binary


def _droppable_extension(name: str) -> bool:
    """Extensions about meshes and looks only, safe to drop once meshes and materials are gone."""
    return name in _LOOKS_EXTENSIONS or name.startswith("KHR_materials_") or name.startswith("KHR_texture")


def _write_skeleton_only_glb(source: Path, target: Path) -> bool:
    """Write a small GLB with only the skeleton (nodes, skins) and the animations of GLB `source`.

    Meshes, materials, textures, images and cameras go, and the binary chunk keeps only the data the
    remaining accessors (inverse bind matrices, animation keys) use. Returns False, writing nothing,
    when the file is not a self-contained GLB this can safely be done to.
    """
    try:
        if not _is_glb(source):
            return False
        document, binary = _read_gltf_document(source)
        buffers = document.get("buffers") or []
        if not document.get("skins") or binary is None or len(buffers) != 1 or "uri" in buffers[0]:
            return False
        if not all(_droppable_extension(str(e)) for e in document.get("extensionsRequired") or []):
            return False
        for key in _GLTF_LOOKS_KEYS:
            document.pop(key, None)
        for key in ("extensions", "extensionsRequired", "extensionsUsed"):
            document.pop(key, None)
        for node in document.get("nodes") or []:
            for key in _GLTF_NODE_LOOKS_KEYS:
                node.pop(key, None)
        for scene in document.get("scenes") or []:
            scene.pop("extras", None)
        for animation in document.get("animations") or []:
            animation["channels"] = [
                c for c in animation.get("channels") or []
                if (c.get("target") or {}).get("path") in _TRS_PATHS and "node" in c["target"]
            ]
        binary = _keep_used_binary(document, binary)
    except (OSError, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        log.debug("cannot slim %s down, importing it whole: %s", source.name, exc)
        return False
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    binary += b"\x00" * (-len(binary) % 4)
    chunks = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(binary), 0x004E4942) + binary
    with open(target, "wb") as fh:
        fh.write(struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)))
        fh.write(chunks)
    return True


def _keep_used_binary(document: dict[str, Any], binary: bytes) -> bytes:
    """Renumber accessors and buffer views to those skins and animations use; return the new binary."""
    old_accessors = document.get("accessors") or []
    old_views = document.get("bufferViews") or []
    accessors: list[dict[str, Any]] = []
    accessor_map: dict[int, int] = {}
    views: list[dict[str, Any]] = []
    view_map: dict[int, int] = {}
    blob = bytearray()

    def use_view(index: int) -> int:
        if index not in view_map:
            view = dict(old_views[index])
            start, length = int(view.get("byteOffset", 0)), int(view["byteLength"])
            blob.extend(b"\x00" * (-len(blob) % 16))
            view["buffer"], view["byteOffset"] = 0, len(blob)
            blob.extend(binary[start : start + length])
            view_map[index] = len(views)
            views.append(view)
        return view_map[index]

    def use_accessor(index: int) -> int:
        if index not in accessor_map:
            accessor = json.loads(json.dumps(old_accessors[index]))
            if "bufferView" in accessor:
                accessor["bufferView"] = use_view(int(accessor["bufferView"]))
            sparse = accessor.get("sparse")
            if sparse:
                for part in ("indices", "values"):
                    sparse[part]["bufferView"] = use_view(int(sparse[part]["bufferView"]))
            accessor_map[index] = len(accessors)
            accessors.append(accessor)
        return accessor_map[index]

    for skin in document.get("skins") or []:
        if "inverseBindMatrices" in skin:
            skin["inverseBindMatrices"] = use_accessor(int(skin["inverseBindMatrices"]))
    for animation in document.get("animations") or []:
        for sampler in animation.get("samplers") or []:
            sampler["input"] = use_accessor(int(sampler["input"]))
            sampler["output"] = use_accessor(int(sampler["output"]))
    document["accessors"] = accessors
    document["bufferViews"] = views
    document["buffers"] = [{"byteLength": len(blob)}]
    return bytes(blob)


def _is_glb(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"glTF"


# --------------------------------------------------------------------------------------------------
# bpy.data bookkeeping
# --------------------------------------------------------------------------------------------------


@functools.cache
def _id_collection_names() -> tuple[str, ...]:
    """The ID collections of bpy.data (objects, meshes, actions, images, ...), found through RNA."""
    names = []
    for prop in bpy.types.BlendData.bl_rna.properties:
        if not isinstance(prop, bpy.types.CollectionProperty) or prop.identifier in _SKIPPED_ID_COLLECTIONS:
            continue
        fixed = prop.fixed_type
        rna_type = getattr(bpy.types, fixed.identifier, None) if fixed is not None else None
        # A collection typed as the base ID (Blender 5.2's `all_ids`) holds the data-blocks of every other
        # collection again: diffing it only costs time (the diff below dedupes anyway).
        if isinstance(rna_type, type) and issubclass(rna_type, bpy.types.ID) and rna_type is not bpy.types.ID:
            names.append(prop.identifier)
    return tuple(names)


Snapshot = dict[str, set[int]]


def _snapshot() -> Snapshot:
    return {name: {id_.as_pointer() for id_ in getattr(bpy.data, name)} for name in _id_collection_names()}


def _created_since(before: Snapshot) -> list[bpy.types.ID]:
    """Every data-block created since `before`, each once: a data-block reachable through two collections
    (Blender 5.2+'s `all_ids` holds them all) must not be counted, turned or removed twice."""
    created: dict[int, bpy.types.ID] = {}
    for name in _id_collection_names():
        known = before.get(name, set())
        for id_ in getattr(bpy.data, name):
            pointer = id_.as_pointer()
            if pointer not in known:
                created.setdefault(pointer, id_)
    return list(created.values())


def _remove_ids(ids: Sequence[bpy.types.ID]) -> None:
    if ids:
        bpy.data.batch_remove(ids=list(ids))


# --------------------------------------------------------------------------------------------------
# Scene state that importers touch, saved and restored
# --------------------------------------------------------------------------------------------------


@dataclass
class _SceneSettings:
    frame_start: int
    frame_end: int
    frame_current: int
    fps: int
    fps_base: float
    custom_keys: set[str]
    gltf_tracks: list[str] | None
    gltf_applied: int | None

    @classmethod
    def capture(cls, scene: bpy.types.Scene) -> _SceneSettings:
        first = bpy.data.scenes[0] if len(bpy.data.scenes) else None
        tracks = getattr(first, "gltf2_animation_tracks", None) if first is not None else None
        applied = getattr(first, "gltf2_animation_applied", None) if first is not None else None
        return cls(
            frame_start=scene.frame_start,
            frame_end=scene.frame_end,
            frame_current=scene.frame_current,
            fps=scene.render.fps,
            fps_base=scene.render.fps_base,
            custom_keys=set(scene.keys()),
            gltf_tracks=[t.name for t in tracks] if tracks is not None else None,
            gltf_applied=applied if isinstance(applied, int) else None,
        )

    def restore(self, scene: bpy.types.Scene, *, fps: bool = True) -> None:
        scene.frame_start = self.frame_start
        scene.frame_end = self.frame_end
        scene.frame_current = self.frame_current
        if fps:
            scene.render.fps = self.fps
            scene.render.fps_base = self.fps_base
        for key in set(scene.keys()) - self.custom_keys:
            del scene[key]
        self.restore_gltf_tracks(self.gltf_tracks)

    def restore_gltf_tracks(self, names: list[str] | None) -> None:
        if names is None or not len(bpy.data.scenes):
            return
        first = bpy.data.scenes[0]
        tracks = getattr(first, "gltf2_animation_tracks", None)
        if tracks is None or [t.name for t in tracks] == names:
            return
        tracks.clear()
        for name in names:
            tracks.add().name = name
        if self.gltf_applied is not None and hasattr(first, "gltf2_animation_applied"):
            first.gltf2_animation_applied = self.gltf_applied


@dataclass
class _UserState:
    """What the artist had selected/active, to restore when the import fails."""

    selected: list[str]
    active: str | None
    mode: str
    active_layer_collection: str | None
    settings: _SceneSettings

    @classmethod
    def capture(cls, scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> _UserState:
        active = view_layer.objects.active
        layer = view_layer.active_layer_collection
        return cls(
            selected=[o.name for o in view_layer.objects if o.select_get(view_layer=view_layer)],
            active=active.name if active is not None else None,
            mode=active.mode if active is not None else "OBJECT",
            active_layer_collection=layer.collection.name if layer is not None else None,
            settings=_SceneSettings.capture(scene),
        )

    def restore_selection(self, view_layer: bpy.types.ViewLayer) -> None:
        selected = set(self.selected)
        for obj in view_layer.objects:
            obj.select_set(obj.name in selected, view_layer=view_layer)
        active = view_layer.objects.get(self.active) if self.active else None
        view_layer.objects.active = active


def _find_layer_collection(root: bpy.types.LayerCollection, name: str) -> bpy.types.LayerCollection | None:
    if root.collection.name == name:
        return root
    for child in root.children:
        found = _find_layer_collection(child, name)
        if found is not None:
            return found
    return None


def _set_active_collection(view_layer: bpy.types.ViewLayer, name: str | None) -> None:
    if name is None:
        return
    layer = _find_layer_collection(view_layer.layer_collection, name)
    if layer is not None:
        view_layer.active_layer_collection = layer


@contextlib.contextmanager
def _context_override(
    context: bpy.types.Context, scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer
) -> Iterator[None]:
    """A context in which import operators run: a window when there is one (GUI, timers), our scene."""
    members: dict[str, Any] = {"scene": scene, "view_layer": view_layer}
    window = getattr(context, "window", None)
    manager = getattr(context, "window_manager", None)
    if window is None and manager is not None and len(manager.windows):
        window = manager.windows[0]
    if window is not None:
        members["window"] = window
    if (getattr(context, "window", None) == window and context.scene == scene
            and context.view_layer == view_layer):
        # Nothing to override: skip it, as every bpy.context lookup inside an override is slower and
        # the glTF importer makes many (about 15% of a 127-animation import).
        yield
        return
    with context.temp_override(**members):
        yield


def _ensure_object_mode(view_layer: bpy.types.ViewLayer) -> None:
    active = view_layer.objects.active
    mode_set: Any = bpy.ops.object.mode_set
    if active is not None and active.mode != "OBJECT" and mode_set.poll():
        mode_set(mode="OBJECT")


# --------------------------------------------------------------------------------------------------
# Running the import operators
# --------------------------------------------------------------------------------------------------


def _operator_options(operator: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """Keep only the options this Blender's operator knows (they differ between 4.2 and 5.0)."""
    known = {p.identifier for p in operator.get_rna_type().properties}
    return {k: v for k, v in wanted.items() if k in known}


def _run_importer(path: Path, kind: str, *, search_images: bool = True) -> None:
    operator: Any
    if kind == "fbx":
        operator = bpy.ops.import_scene.fbx
        wanted: dict[str, Any] = {
            "filepath": str(path),
            "use_anim": True,
            "use_custom_props": True,
            "use_image_search": search_images,
            "ignore_leaf_bones": False,
            "automatic_bone_orientation": False,
        }
    else:
        operator = bpy.ops.import_scene.gltf
        wanted = {
            "filepath": str(path),
            "import_pack_images": True,
            "import_shading": "NORMALS",
            "bone_heuristic": "BLENDER",
            "guess_original_bind_pose": True,
            "disable_bone_shape": True,
            "import_select_created_objects": False,
            "import_scene_as_collection": False,
            "import_scene_extras": False,
        }
    try:
        result = operator(**_operator_options(operator, wanted))
    except RuntimeError as exc:
        raise ImportFailed(f"Blender could not read {path.name!r}: {_operator_error(exc)}") from exc
    if "FINISHED" not in result:
        raise ImportFailed(f"Blender could not read {path.name!r} (the importer gave up).")


def _operator_error(exc: RuntimeError) -> str:
    """The useful line of an operator's error ("Error: Bad glTF: ...", or a Python traceback's last line)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = lines[-1] if "Traceback" in lines[0] else lines[0]
    for prefix in ("Error:", "Python:"):
        line = line.removeprefix(prefix).strip()
    return line or type(exc).__name__


# --------------------------------------------------------------------------------------------------
# Actions, slots and NLA
# --------------------------------------------------------------------------------------------------


@dataclass
class _Anim:
    """An action to put on the main armature, with the slot that animates an armature (Blender 4.4+)."""

    action: bpy.types.Action
    name: str
    slot_handle: int | None = None


def _slot_handle(owner: Any) -> int | None:
    """The handle of the slot an AnimData or NlaStrip uses, or None (no slots on this Blender)."""
    slot = getattr(owner, "action_slot", None)
    return int(slot.handle) if slot is not None else None


def _find_slot(action: bpy.types.Action, handle: int | None) -> Any:
    slots = getattr(action, "slots", None)
    if slots is None:
        return None
    if handle is not None:
        for slot in slots:
            if slot.handle == handle:
                return slot
    objects = [s for s in slots if s.target_id_type in ("OBJECT", "UNSPECIFIED")]
    return objects[0] if objects else None


def _animated_bones(action: bpy.types.Action, slot: Any) -> set[str]:
    bones: set[str] = set()
    for curve in fcurves(action, slot):
        path = curve.data_path
        if path.startswith('pose.bones["'):
            end = path.find('"]', 12)
            if end > 12:
                bones.add(path[12:end].replace('\\"', '"'))
    return bones


def _armature_anims(arm: bpy.types.Object, new_actions: set[int], file_names: list[str], fbx: bool) -> list[_Anim]:
    """The actions an importer put on `arm`, in the file's order, named after the file's animations."""
    anim_data = arm.animation_data
    found: list[_Anim] = []
    seen: set[int] = set()

    def add(action: bpy.types.Action | None, name: str, handle: int | None) -> None:
        if action is None or action.as_pointer() in seen or action.as_pointer() not in new_actions:
            return
        seen.add(action.as_pointer())
        found.append(_Anim(action, name, handle))

    if anim_data is not None:
        # glTF: one muted track per animation, first animation on top, named after the animation.
        for track in reversed(anim_data.nla_tracks):
            for strip in track.strips:
                add(strip.action, track.name or strip.name, _slot_handle(strip))
        if anim_data.action is not None:
            add(anim_data.action, _animation_name(anim_data.action.name, arm.name, fbx), _slot_handle(anim_data))
    if fbx:
        # FBX: one action per take, named "<object>|<take>"; only the first one is assigned.
        prefix = arm.name + "|"
        extra = sorted(
            (a for a in bpy.data.actions if a.as_pointer() in new_actions and a.name.startswith(prefix)),
            key=lambda a: a.name,
        )
        for action in extra:
            add(action, _animation_name(action.name, arm.name, fbx), None)
    if file_names:
        order = {name: i for i, name in enumerate(file_names)}
        found.sort(key=lambda a: order.get(a.name, len(order)))
    return found


def _animation_name(action_name: str, object_name: str, fbx: bool) -> str:
    """An FBX action is named "<object>|<take>[|<layer>]": keep the meaningful part of the take."""
    if not fbx:
        return action_name
    rest = action_name[len(object_name) + 1 :] if action_name.startswith(object_name + "|") else action_name
    parts = [p for p in rest.split("|") if p.strip()]
    meaningful = [p for p in parts if p.strip().lower() not in _GENERIC_FBX_NAMES]
    if meaningful:
        return meaningful[-1]
    return parts[0] if parts else rest


def _rename(id_: bpy.types.ID, name: str) -> None:
    if id_.name != name:
        id_.name = name


def _bind_slot(anim: _Anim, arm: bpy.types.Object) -> Any:
    """Blender 4.4+: name the armature slot after `arm` and return it. None on legacy Blender."""
    slot = _find_slot(anim.action, anim.slot_handle)
    if slot is None:
        return None
    wanted = "OB" + arm.name
    if slot.identifier != wanted:
        taken = any(s.identifier == wanted for s in anim.action.slots if s != slot)
        if not taken:
            try:
                slot.name_display = arm.name
            except (AttributeError, TypeError, ValueError) as exc:  # pragma: no cover - defensive
                log.debug("cannot rename slot %s: %s", slot.identifier, exc)
    anim.slot_handle = int(slot.handle)
    return slot


def _layout_nla(arm: bpy.types.Object, anims: Sequence[_Anim], scene: bpy.types.Scene) -> None:
    anim_data = arm.animation_data or arm.animation_data_create()
    assert anim_data is not None
    if anim_data.use_tweak_mode:
        anim_data.use_tweak_mode = False
    anim_data.action = None
    for track in list(anim_data.nla_tracks):
        anim_data.nla_tracks.remove(track)
    if not anims:
        return
    slots = [_bind_slot(anim, arm) for anim in anims]
    # New tracks go on top: create the last action's track first so that the first ends up on top.
    for anim, slot in reversed(list(zip(anims, slots, strict=True))):
        action = anim.action
        start = action.frame_range[0]
        track = anim_data.nla_tracks.new()
        track.name = action.name
        strip = track.strips.new(action.name, math.floor(start), action)
        if strip.frame_start != start:  # keys at fractional frames (fps differs from the file's)
            strip.frame_start_ui = start
        if slot is not None and hasattr(strip, "action_slot"):
            strip.action_slot = slot
        track.mute = True
        track.select = False
    first, first_slot = anims[0].action, slots[0]
    anim_data.action = first
    if first_slot is not None and hasattr(anim_data, "action_slot"):
        anim_data.action_slot = first_slot
    anim_data.action_extrapolation = "HOLD"
    anim_data.action_blend_type = "REPLACE"
    anim_data.action_influence = 1.0
    anim_data.use_nla = True
    start, end = anims[0].action.frame_range[0], anims[0].action.frame_range[1]
    scene.frame_start = math.floor(start)
    scene.frame_end = max(math.ceil(end), scene.frame_start)
    scene.frame_current = scene.frame_start


def _rest_mismatch(main: bpy.types.Object, other: bpy.types.Object, units: float = 1.0) -> list[str]:
    """Bones whose rest pose differs between two armatures (the animation would look distorted); `other`'s
    positions are first scaled by `units` (an animation file for a normalised character)."""
    bad: list[str] = []
    main_bones = _bones(main)
    for bone in _bones(other):
        target = main_bones.get(bone.name)
        if target is None:
            continue
        a, b = bone.matrix_local.copy(), target.matrix_local
        if units != 1.0:
            a.translation = a.translation * units
        if any(abs(a[r][c] - b[r][c]) > _REST_TOLERANCE for r in range(3) for c in range(4)):
            bad.append(bone.name)
    return bad


# --------------------------------------------------------------------------------------------------
# The import itself
# --------------------------------------------------------------------------------------------------


@dataclass
class _Session:
    context: bpy.types.Context
    scene: bpy.types.Scene
    view_layer: bpy.types.ViewLayer
    collection: bpy.types.Collection | None = None
    armature: bpy.types.Object | None = None
    objects: list[bpy.types.Object] = field(default_factory=list)
    anims: list[_Anim] = field(default_factory=list)


def _bones(obj: bpy.types.Object) -> bpy.types.ArmatureBones:
    data = obj.data
    assert isinstance(data, bpy.types.Armature)
    return data.bones


def _armatures(ids: Sequence[bpy.types.ID]) -> list[bpy.types.Object]:
    return [i for i in ids if isinstance(i, bpy.types.Object) and i.type == "ARMATURE"]


def _import_main(session: _Session, path: Path, kind: str) -> None:
    assert session.collection is not None
    before = _snapshot()
    _run_importer(path, kind)
    created = _created_since(before)
    objects = [i for i in created if isinstance(i, bpy.types.Object)]
    if not objects:
        raise ImportFailed(f"{path.name!r} contains no objects to import.")
    # Every imported object goes into our collection, and only there.
    ours = session.collection
    for obj in objects:
        for owner in list(obj.users_collection):
            if owner != ours:
                owner.objects.unlink(obj)
        if ours not in obj.users_collection:
            ours.objects.link(obj)
    stray_collections = [i for i in created if isinstance(i, bpy.types.Collection) and i != ours]
    _remove_ids(stray_collections)

    armatures = sorted(_armatures(objects), key=lambda o: len(_bones(o)), reverse=True)
    if len(armatures) > 1:
        log.warning("%s has %d armatures; animations go on %r", path.name, len(armatures), armatures[0].name)
    arm = armatures[0] if armatures else None
    new_actions = {i.as_pointer() for i in created if isinstance(i, bpy.types.Action)}
    anims: list[_Anim] = []
    if arm is not None:
        names = _glb_animation_names(path) if kind != "fbx" else []
        anims = _armature_anims(arm, new_actions, names, kind == "fbx")
    elif new_actions:
        log.warning("%s is not rigged; its animation is dropped", path.name)
    kept = {a.action.as_pointer() for a in anims}
    # Other objects' animation (mesh transforms, shape keys) is dropped, see the module docstring.
    for id_ in created:
        if id_ is arm or isinstance(id_, bpy.types.Action):
            continue
        if getattr(id_, "animation_data", None) is not None:
            id_.animation_data_clear()
    _remove_ids([i for i in created if isinstance(i, bpy.types.Action) and i.as_pointer() not in kept])
    for anim in anims:
        anim.action.use_fake_user = False
        _rename(anim.action, anim.name)
        anim.name = anim.action.name
    session.armature = arm
    session.objects = objects
    session.anims = anims


def _import_animation(session: _Session, display_name: str, path: Path, kind: str) -> None:
    arm = session.armature
    assert arm is not None
    settings = _SceneSettings.capture(session.scene)
    before = _snapshot()
    try:
        with tempfile.TemporaryDirectory(prefix="marionette-anim-") as tmp:
            source = path
            if kind == "glb":
                light = Path(tmp) / "skeleton.glb"
                if _write_skeleton_only_glb(path, light):
                    source = light
            try:
                _run_importer(source, kind, search_images=False)
            except ImportFailed:
                if source == path:
                    raise
                log.info("skeleton-only copy of %s failed, importing the whole file", path.name)
                _remove_ids(_created_since(before))
                _run_importer(path, kind, search_images=False)
        created = _created_since(before)
        candidates = _armatures(created)
        if not candidates:
            raise ImportFailed(f"The animation file {path.name!r} has no skeleton to take an animation from.")
        bones = {b.name for b in _bones(arm)}
        source_arm = max(candidates, key=lambda o: len(bones & {b.name for b in _bones(o)}))
        new_actions = {i.as_pointer() for i in created if isinstance(i, bpy.types.Action)}
        names = _glb_animation_names(path) if kind != "fbx" else []
        anims = _armature_anims(source_arm, new_actions, names, kind == "fbx")
        if not anims:
            raise ImportFailed(f"The animation file {path.name!r} contains no animation.")
        if len(anims) > 1:
            log.warning("%s holds %d animations; using the first, %r", path.name, len(anims), anims[0].name)
        anim = anims[0]
        units = normalize.conform_action(arm, source_arm, anim.action)  # to a normalised character's size
        slot = _find_slot(anim.action, anim.slot_handle)
        animated = _animated_bones(anim.action, slot)
        if animated and not animated & bones:
            raise ImportFailed(
                f"The animation in {path.name!r} does not fit this character's skeleton (no bone in common)."
            )
        mismatch = _rest_mismatch(arm, source_arm, units)
        if mismatch:
            log.warning("%s: rest pose differs on %d bones (e.g. %s); the animation may look distorted",
                        path.name, len(mismatch), mismatch[0])
        anim.slot_handle = int(slot.handle) if slot is not None else None
        _remove_ids([i for i in created if i != anim.action])
    finally:
        settings.restore(session.scene)
    anim.action.use_fake_user = False
    _rename(anim.action, display_name)
    anim.name = anim.action.name
    session.anims.append(anim)


@dataclass
class SceneFit:
    """How an imported character is fitted to the scene (normalize.py, inplace.py)."""

    normalize: bool = True
    height: float | None = None  # metres; None: as delivered
    facing: str | None = None  # the delivered character's front, when the provider's convention is known
    recentre: bool = True  # feet and centre at the origin (False: keep the provider's placement)
    in_place: bool = False  # locomotion actions loop in place (the originals are kept)


def _fit_to_scene(session: _Session, fit: SceneFit) -> None:
    if fit.normalize:
        _done, session.objects = normalize.normalize(
            session.objects, session.armature, [a.action for a in session.anims], view_layer=session.view_layer,
            height=fit.height, facing=fit.facing, recentre=fit.recentre)
    if fit.in_place and session.armature is not None:
        for anim in session.anims:
            copy = inplace.in_place_copy(session.armature, anim.action)
            if copy is not None:
                anim.action, anim.name = copy, copy.name


def _place_and_select(session: _Session, location: tuple[float, float, float], rotation_z: float = 0.0) -> None:
    view_layer = session.view_layer
    imported = set(session.objects)
    turn = Matrix.Rotation(rotation_z, 4, "Z")
    for obj in session.objects:
        if obj.parent is None or obj.parent not in imported:
            basis = obj.matrix_basis.copy()
            basis.translation = (0.0, 0.0, 0.0)
            obj.matrix_basis = Matrix.Translation(location) @ turn @ basis
    for obj in view_layer.objects:
        obj.select_set(obj in imported, view_layer=view_layer)
    active = session.armature
    if active is None:
        meshes = [o for o in session.objects if o.type == "MESH"]
        active = meshes[0] if meshes else (session.objects[0] if session.objects else None)
    view_layer.objects.active = active


def _rollback(session: _Session, before: Snapshot, state: _UserState) -> None:
    view_layer = session.view_layer
    try:
        _ensure_object_mode(view_layer)
    except RuntimeError as exc:  # pragma: no cover - defensive
        log.debug("could not leave edit mode during rollback: %s", exc)
    _remove_ids(_created_since(before))
    state.settings.restore(session.scene)
    _set_active_collection(view_layer, state.active_layer_collection)
    state.restore_selection(view_layer)
    active = view_layer.objects.active
    if active is not None and state.mode != "OBJECT" and active.mode != state.mode:
        mode_set: Any = bpy.ops.object.mode_set
        try:
            mode_set(mode=state.mode)
        except (RuntimeError, TypeError) as exc:
            log.debug("could not restore mode %s: %s", state.mode, exc)


def import_character(
    main_file: Path,
    animation_files: Sequence[tuple[str, Path]] = (),
    *,
    collection_name: str,
    location: tuple[float, float, float],
    rotation_z: float = 0.0,
    context: bpy.types.Context | None = None,
    scene_fit: SceneFit | None = None,
) -> ImportedCharacter:
    """Import `main_file` and the animation of every file of `animation_files` as one character.

    The root objects are placed at `location`, turned by `rotation_z` radians about Z (to undo a facing
    correction made when the artist's mesh was exported), after normalisation (`scene_fit`: unit scale,
    real-world size, on the ground, in-place loops; see normalize.py). Must run on Blender's main thread. Raises
    ImportFailed (and leaves the scene as it was) on any failure. See the module docstring for the
    layout of actions and NLA tracks.
    """
    ctx = context if context is not None else bpy.context
    main_path = Path(main_file)
    main_kind = _model_kind(main_path, "model file")
    animations: list[tuple[str, Path, str]] = []
    for display_name, anim_file in animation_files:
        anim_path = Path(anim_file)
        animations.append((display_name.strip() or anim_path.stem, anim_path, _model_kind(anim_path, "animation file")))
    scene = ctx.scene
    view_layer = ctx.view_layer
    if scene is None or view_layer is None:
        raise ImportFailed("There is no open scene to import into.")

    session = _Session(ctx, scene, view_layer)
    state = _UserState.capture(scene, view_layer)
    before = _snapshot()
    try:
        with _context_override(ctx, scene, view_layer):
            try:
                _ensure_object_mode(view_layer)
                collection = bpy.data.collections.new(collection_name.strip() or main_path.stem)
                scene.collection.children.link(collection)
                session.collection = collection
                _set_active_collection(view_layer, collection.name)
                _import_main(session, main_path, main_kind)
                state.settings.restore(scene, fps=False)  # the main file may set the fps, nothing else
                if animations and session.armature is None:
                    raise ImportFailed(
                        f"{main_path.name!r} has no skeleton, so animations cannot be added to it."
                    )
                for display_name, anim_path, anim_kind in animations:
                    _import_animation(session, display_name, anim_path, anim_kind)
                _fit_to_scene(session, scene_fit if scene_fit is not None else SceneFit())
                if session.armature is not None:
                    _layout_nla(session.armature, session.anims, scene)
                track_names = list(state.settings.gltf_tracks or [])
                track_names += [a.name for a in session.anims if a.name not in track_names]
                state.settings.restore_gltf_tracks(track_names if state.settings.gltf_tracks is not None else None)
                _set_active_collection(view_layer, state.active_layer_collection)
                _place_and_select(session, location, rotation_z)
            except BaseException:
                _rollback(session, before, state)
                raise
    except ImportFailed:
        raise
    except Exception as exc:
        log.exception("import of %s failed", main_path.name)
        raise ImportFailed(f"Could not import {main_path.name!r}: {exc}. The scene was left as it was.") from exc

    assert session.collection is not None
    result = ImportedCharacter(
        collection=session.collection.name,
        armature=session.armature.name if session.armature is not None else None,
        objects=[o.name for o in session.collection.objects],
        actions=[a.action.name for a in session.anims],
    )
    log.info(
        "imported %s into %r: %d objects, %d actions", main_path.name, result.collection, len(result.objects),
        len(result.actions),
    )
    return result


def _existing_anims(arm: bpy.types.Object) -> list[_Anim]:
    """The actions already on an armature Marionette imported, in track order (top track first)."""
    anims: list[_Anim] = []
    anim_data = arm.animation_data
    if anim_data is None:
        return anims
    for track in reversed(list(anim_data.nla_tracks)):
        for strip in track.strips:
            if strip.action is not None and all(a.action != strip.action for a in anims):
                anims.append(_Anim(strip.action, strip.action.name, _slot_handle(strip)))
    if anim_data.action is not None and all(a.action != anim_data.action for a in anims):
        anims.insert(0, _Anim(anim_data.action, anim_data.action.name, _slot_handle(anim_data)))
    return anims


def add_animations(
    armature_name: str,
    animation_files: Sequence[tuple[str, Path]],
    *,
    context: bpy.types.Context | None = None,
    in_place: bool = False,
) -> list[str]:
    """Add the animation of each file to an existing armature (a character imported earlier).

    The new actions get their own NLA tracks after the existing ones; the active action stays. Returns
    the new action names. Atomic like import_character: on failure nothing is left behind.
    """
    ctx = context if context is not None else bpy.context
    arm = bpy.data.objects.get(armature_name)
    if arm is None or arm.type != "ARMATURE":
        raise ImportFailed(f"The character's armature {armature_name!r} is no longer in this file.")
    scene, view_layer = ctx.scene, ctx.view_layer
    if scene is None or view_layer is None:
        raise ImportFailed("There is no open scene to import into.")
    animations = [(name.strip() or Path(path).stem, Path(path), _model_kind(Path(path), "animation file"))
                  for name, path in animation_files]
    session = _Session(ctx, scene, view_layer, armature=arm)
    existing = _existing_anims(arm)
    state = _UserState.capture(scene, view_layer)
    before = _snapshot()
    frame_range = (scene.frame_start, scene.frame_end, scene.frame_current)
    try:
        with _context_override(ctx, scene, view_layer):
            try:
                _ensure_object_mode(view_layer)
                for display_name, anim_path, anim_kind in animations:
                    _import_animation(session, display_name, anim_path, anim_kind)
                _fit_to_scene(session, SceneFit(normalize=False, in_place=in_place))
                _layout_nla(arm, existing + session.anims, scene)
                if existing:  # the character keeps its active action and the scene its frame range
                    scene.frame_start, scene.frame_end, scene.frame_current = frame_range
                state.restore_selection(view_layer)
            except BaseException:
                _rollback(session, before, state)
                if existing:
                    _layout_nla(arm, existing, scene)
                    scene.frame_start, scene.frame_end, scene.frame_current = frame_range
                raise
    except ImportFailed:
        raise
    except Exception as exc:
        log.exception("adding animations to %s failed", armature_name)
        raise ImportFailed(f"Could not add the animations: {exc}. The character was left as it was.") from exc
    return [a.action.name for a in session.anims]
