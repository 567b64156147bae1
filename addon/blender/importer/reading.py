"""Reading one model file with Blender's own importers: what the file is (read_model: by content, checked
by core.resultcheck before any importer opens it), and the glTF or FBX import operator run on it with
Marionette's options (only those this Blender's operator knows), its errors turned into ImportFailed."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from ...core.errors import ImportFailed
from ...core.formats import sniff_file
from ...core.gltf import animation_names
from ...core.resultcheck import check_model
from .. import gltf_hooks
from ..operator_options import known_options
from .gltf_slim import looks_like_gltf_json


@dataclass(frozen=True)
class ModelFile:
    """A model file checked for import."""

    path: Path
    kind: str  # 'glb', 'gltf' or 'fbx', from the content
    animation_names: list[str]  # a glTF file's animations in file order ([] for FBX)


def read_model(path: Path, what: str) -> ModelFile:
    """What the file is, from its content, checked (core.resultcheck) before any importer opens it.
    Raises ImportFailed for anything but a GLB, glTF or FBX model, or one that refers outside its folder."""
    if not path.is_file():
        raise ImportFailed(f"The {what} {path.name!r} is missing; download the result again.")
    try:
        kind = sniff_file(path)
        if kind is None and looks_like_gltf_json(path):
            kind = "gltf"
    except OSError as exc:
        raise ImportFailed(f"The {what} {path.name!r} cannot be read: {exc}") from exc
    if kind in ("glb", "gltf", "fbx"):
        document = check_model(path)  # nothing outside the job's folder may be read or packed through it
        names = animation_names(document) if document is not None else []
        return ModelFile(path, kind, names)
    found = f"a {kind.upper()} picture" if kind in ("png", "jpeg") else "not a GLB, glTF or FBX model"
    raise ImportFailed(f"The {what} {path.name!r} is {found}; nothing was imported.")


def run_importer(path: Path, kind: str, *, search_images: bool = True, sane_bones: bool = False) -> None:
    """`sane_bones`: a glTF rig delivered at an object scale gets bones of its own size (gltf_hooks.py)
    instead of lengths divided by that scale."""
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
        with gltf_hooks.sane_bone_lengths() if sane_bones and kind != "fbx" else nullcontext():
            result = operator(**known_options(operator, wanted))
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
