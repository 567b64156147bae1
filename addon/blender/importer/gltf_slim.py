"""glTF at the JSON level, for the importer: a file's animation names, and the slimmed copy of a GLB
animation file that Blender imports instead of the whole file (plain Python, no bpy).

An animation file is a whole character (meshes, textures, skin, animations) of which the importer keeps
one action. :func:`write_skeleton_only_glb` writes a GLB with only the nodes, skins and animations (its
binary chunk cut down to the inverse bind matrices and animation keys), which skips reading, building and
deleting meshes and decoding textures. When the copy cannot be made (returns False) or imported, the
importer takes the original file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ...core import gltf

log = logging.getLogger(__name__)

# glTF JSON keys that only describe geometry and looks; dropped from animation files before import.
_GLTF_LOOKS_KEYS = ("meshes", "materials", "textures", "images", "samplers", "cameras")
_GLTF_NODE_LOOKS_KEYS = ("mesh", "skin", "camera", "weights", "extensions", "extras")
_TRS_PATHS = frozenset({"translation", "rotation", "scale"})
_LOOKS_EXTENSIONS = frozenset({
    "KHR_draco_mesh_compression", "KHR_mesh_quantization", "KHR_lights_punctual", "EXT_texture_webp",
    "EXT_texture_avif", "EXT_mesh_gpu_instancing",
})


def looks_like_gltf_json(path: Path) -> bool:
    """True for a .gltf (JSON) document: an object with an ``asset`` object."""
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip()
    if not head.startswith(b"{"):
        return False
    try:
        document = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(document, dict) and isinstance(document.get("asset"), dict)


def read_gltf_document(path: Path) -> tuple[dict[str, Any], bytes | None]:
    """The JSON document and the binary chunk of a GLB (or just the JSON of a .gltf): core.gltf's reading."""
    return gltf.read_gltf(path)


def _droppable_extension(name: str) -> bool:
    """Extensions about meshes and looks only, safe to drop once meshes and materials are gone."""
    return name in _LOOKS_EXTENSIONS or name.startswith("KHR_materials_") or name.startswith("KHR_texture")


def write_skeleton_only_glb(source: Path, target: Path) -> bool:
    """Write a small GLB with only the skeleton (nodes, skins) and the animations of GLB `source`.

    Meshes, materials, textures, images and cameras go, and the binary chunk keeps only the data the
    remaining accessors (inverse bind matrices, animation keys) use. Returns False, writing nothing,
    when the file is not a self-contained GLB this can safely be done to.
    """
    try:
        if not is_glb(source):
            return False
        document, binary = read_gltf_document(source)
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
    gltf.write_glb(target, document, binary)
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


def is_glb(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == gltf.GLB_MAGIC
