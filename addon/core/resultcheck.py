"""Checks a downloaded result file before Blender imports it: a model may name other files (glTF images
and buffers by URI, FBX textures by path), and an importer that follows such a name reads (and the glTF
importer packs) whatever file it points to, into the scene and every .blend saved afterwards.

A reference is allowed when it is embedded (a GLB's own binary chunk, a buffer view), a `data:` URI, or a
plain relative name that stays inside the job's folder (after URL-decoding, with symbolic links
followed). Anything else (an absolute path, `..` out of the folder, a drive letter, a UNC path, a URL with
a scheme) makes the file refused: `ResultRefused` names the reference, nothing is read through it, and
the file stays in the job's folder for inspection.

For FBX the binary node tree is walked (no bpy): for every `Texture` and `Video` node, the path
Blender's FBX importer opens (its `RelativeFilename`, else its `FileName`/`Filename`) is checked. ASCII
FBX is not imported by Blender at all.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

from . import gltf
from .errors import ImportFailed
from .formats import FBX_MAGIC, GLB_MAGIC

# Deeper FBX nesting than this is damage (real files nest fewer than 10 levels).
MAX_FBX_DEPTH = 64
_FBX_TEXTURE_NODES = (b"Texture", b"Video")
_FBX_PATH_FIELDS = (b"FileName", b"Filename", b"RelativeFilename")
_DRIVE = re.compile(r"^[A-Za-z]:")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class ResultRefused(ImportFailed):
    """The result file names a file outside its job's folder; it is kept, not imported."""


def check_model(path: Path, folder: Path | None = None) -> dict[str, Any] | None:
    """Raise ResultRefused when the model at `path` (GLB, glTF or FBX, by content) refers to anything
    outside `folder` (its own folder by default); ImportFailed when it cannot be read for the check.
    Returns the glTF JSON document it read (None for anything else), so that the importer need not parse
    a large file's JSON a second time (a 127-animation GLB's takes tens of milliseconds)."""
    folder = folder if folder is not None else path.parent
    document: dict[str, Any] | None = None
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
        if head.startswith(GLB_MAGIC):
            document = gltf.read_glb_json(path)
            refs = list(_gltf_refs(document))
        elif head.startswith(FBX_MAGIC):
            # Mapped, not read: an FBX may be hundreds of MB and only its node headers are looked at.
            with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                refs = list(_fbx_refs(mapped))
        elif head.lstrip().startswith(b"{"):
            document = gltf.json_document(path.read_bytes())
            refs = list(_gltf_refs(document))
        else:
            return None  # not a model that can name other files (the importer refuses what it cannot read)
    except OSError as exc:
        raise ImportFailed(f"{path.name!r} cannot be read: {exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise ImportFailed(f"{path.name!r} is damaged ({exc}); nothing was imported.") from exc
    for what, ref in refs:
        problem = reference_problem(ref, folder)
        if problem:
            raise ResultRefused(
                f"{path.name!r} was not imported: its {what} {_show(ref)} {problem}. A result may only use "
                f"files embedded in it or next to it in the job's folder; the file was kept in {folder} for "
                "inspection.")
    return document


def reference_problem(ref: str, folder: Path, *, url: bool = True) -> str | None:
    """Why the reference `ref` (a URI when `url`, else an FBX path) is not allowed, or None."""
    if url and ref.startswith("data:"):
        return None
    text = unquote(ref) if url else ref
    if not text:
        return None
    if "\x00" in text:
        return "holds a NUL character"
    if url and _SCHEME.match(text) and not _DRIVE.match(text):
        return "is a URL, not a file next to the model"
    unified = text.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        return "is an absolute path"
    parts = PurePosixPath(unified).parts
    if ".." in parts:
        return "leaves the job's folder"
    try:
        root = folder.resolve()
        target = (root / unified).resolve()
    except (OSError, RuntimeError, ValueError):
        return "cannot be resolved"
    if target != root and root not in target.parents:
        return "leads out of the job's folder (a link)"
    return None


def _show(ref: str) -> str:
    short = ref if len(ref) <= 80 else ref[:77] + "..."
    return repr(short)


# -- glTF --------------------------------------------------------------------------------------------


def _gltf_refs(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key, what in (("images", "image"), ("buffers", "buffer")):
        items = document.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            raise ValueError(f"its {key} are not a list")
        for index, item in enumerate(items):
            if not isinstance(item, dict) or "uri" not in item:
                continue
            uri = item["uri"]
            if not isinstance(uri, str):
                raise ValueError(f"{what} {index} has a URI that is not text")
            yield f"{what} {index}", uri


# -- FBX ---------------------------------------------------------------------------------------------

_FIXED = {ord("Y"): 2, ord("C"): 1, ord("I"): 4, ord("F"): 4, ord("D"): 8, ord("L"): 8}
_ARRAYS = {ord(c) for c in "fdlibc"}


def _fbx_refs(data: bytes | mmap.mmap) -> Iterator[tuple[str, str]]:
    """The texture path Blender's FBX importer would open for every Texture and Video node: its
    RelativeFilename (joined to the file's folder) when that is set, else its FileName (or Filename),
    used as it is. The other one is never opened, so it is not checked (exporters write both, the
    absolute one pointing at the author's disk)."""
    if len(data) < 27:
        raise ValueError("the FBX file is cut short")
    (version,) = struct.unpack_from("<I", data, 23)
    wide = version >= 7500
    for owner, fields in _fbx_walk(data, 27, len(data), wide, 0):
        kind = "texture" if owner == b"Texture" else "video"
        for field in (b"RelativeFilename", b"FileName", b"Filename"):
            value = fields.get(field, "")
            if value.strip():
                yield f"{kind} {field.decode()}", value
                break


def _fbx_walk(data: bytes | mmap.mmap, pos: int, end: int, wide: bool,
              depth: int) -> Iterator[tuple[bytes, dict[bytes, str]]]:
    """(node name, {child name: its first string property}) for every Texture and Video node."""
    if depth > MAX_FBX_DEPTH:
        raise ValueError("its FBX nodes nest too deeply")
    header = struct.Struct("<QQQB" if wide else "<IIIB")
    while pos + header.size <= end:
        node_end, count, props_len, name_len = header.unpack_from(data, pos)
        if node_end == 0:  # the empty record that closes a list of nodes
            return
        name_at = pos + header.size
        props_at = name_at + name_len
        children_at = props_at + props_len
        if not (props_at <= children_at <= node_end <= end):
            raise ValueError("its FBX node tree is damaged")
        name = data[name_at:props_at]
        _first_string(data, props_at, children_at, count)  # checks the property's type code
        if name in _FBX_TEXTURE_NODES:
            yield name, dict(_fbx_children(data, children_at, node_end, header))
        elif children_at < node_end:
            yield from _fbx_walk(data, children_at, node_end, wide, depth + 1)
        pos = node_end


def _fbx_children(data: bytes | mmap.mmap, pos: int, end: int, header: struct.Struct) -> Iterator[tuple[bytes, str]]:
    """(name, first string property) of the direct children of a node whose children span pos..end."""
    while pos + header.size <= end:
        node_end, count, props_len, name_len = header.unpack_from(data, pos)
        if node_end == 0:
            return
        name_at = pos + header.size
        props_at = name_at + name_len
        if not (props_at <= props_at + props_len <= node_end <= end):
            raise ValueError("its FBX node tree is damaged")
        value = _first_string(data, props_at, props_at + props_len, count)
        if value is not None and name_len and data[name_at:props_at] in _FBX_PATH_FIELDS:
            yield data[name_at:props_at], value
        pos = node_end


def _first_string(data: bytes | mmap.mmap, pos: int, end: int, count: int) -> str | None:
    """The first property of a node when it is a string ('S'), else None."""
    if count == 0 or pos >= end:
        return None
    code = data[pos]
    if code != ord("S"):
        if code not in _FIXED and code not in _ARRAYS and code != ord("R"):
            raise ValueError("its FBX node tree is damaged")
        return None
    if pos + 5 > end:
        raise ValueError("its FBX node tree is damaged")
    (length,) = struct.unpack_from("<I", data, pos + 1)
    if pos + 5 + length > end:
        raise ValueError("its FBX node tree is damaged")
    raw = data[pos + 5:pos + 5 + length]
    # Object names carry a "\x00\x01Class" suffix; paths never do, but cut it the same way.
    raw = raw.split(b"\x00\x01", 1)[0]
    return raw.decode("utf-8", "replace")
