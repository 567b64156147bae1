"""GLB (binary glTF 2.0) reading and writing: the 12-byte header, the chunks, the JSON document.

Plain Python (struct and json). The download check, the file sniffing, the result check and the Blender
importer all read GLBs through here. Damage is a ValueError (GlbError) with a short reason; callers word
it for the artist.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

GLB_MAGIC = b"glTF"
GLB_VERSION = 2
HEADER_SIZE = 12  # magic, version, total length
CHUNK_HEADER_SIZE = 8  # length, type
JSON_CHUNK = b"JSON"
BIN_CHUNK = b"BIN\x00"
# A JSON chunk larger than this is not a model from a provider.
MAX_JSON_BYTES = 256 << 20

_HEADER = struct.Struct("<4sII")
_CHUNK = struct.Struct("<I4s")


class GlbError(ValueError):
    """The bytes are not a readable GLB (or glTF JSON document)."""


def glb_header(head: bytes) -> tuple[int, int] | None:
    """(version, declared total length) of a GLB from its first 12 bytes, or None when it is no GLB."""
    if len(head) < HEADER_SIZE or not head.startswith(GLB_MAGIC):
        return None
    _magic, version, length = _HEADER.unpack_from(head, 0)
    return int(version), int(length)


def is_glb(head: bytes) -> bool:
    """Whether these first bytes start a glTF 2.0 binary file."""
    header = glb_header(head)
    return header is not None and header[0] == GLB_VERSION


def chunk_header(data: bytes, offset: int) -> tuple[int, bytes] | None:
    """(length, type) of the chunk whose header starts at `offset`, or None when the bytes end before it."""
    if offset < 0 or offset + CHUNK_HEADER_SIZE > len(data):
        return None
    length, kind = _CHUNK.unpack_from(data, offset)
    return int(length), bytes(kind)


def first_chunk(head: bytes) -> tuple[int, bytes] | None:
    """(length, type) of a GLB's first chunk (the JSON one in a valid file) from its first 20 bytes."""
    return chunk_header(head, HEADER_SIZE)


def load_json(data: bytes) -> Any:
    """The JSON value in `data` (UTF-8). ValueError (UnicodeDecodeError is one) when it does not parse."""
    return json.loads(data.decode("utf-8"))


def json_document(data: bytes) -> dict[str, Any]:
    """A glTF JSON document (an object) from its bytes; GlbError when it is not one."""
    if len(data) > MAX_JSON_BYTES:
        raise GlbError("its glTF JSON is implausibly large")
    try:
        document = load_json(data)
    except UnicodeDecodeError as exc:
        raise GlbError("its glTF JSON is not UTF-8") from exc
    except ValueError as exc:
        raise GlbError(str(exc)) from exc
    if not isinstance(document, dict):
        raise GlbError("its glTF JSON is not an object")
    return document


def read_json_chunk(path: Path) -> bytes:
    """The bytes of a GLB file's JSON chunk, read without the rest of the file (a GLB may be large)."""
    with open(path, "rb") as fh:
        first = first_chunk(fh.read(HEADER_SIZE + CHUNK_HEADER_SIZE))
        if first is None:
            raise GlbError("the GLB is cut short")
        length, kind = first
        if kind != JSON_CHUNK or length > MAX_JSON_BYTES:
            raise GlbError("the GLB has no readable JSON chunk")
        data = fh.read(length)
    if len(data) < length:
        raise GlbError("the GLB is cut short")
    return data


def read_glb_json(path: Path) -> dict[str, Any]:
    """The glTF JSON document of a GLB file; GlbError when it cannot be read."""
    return json_document(read_json_chunk(path))


def parse_glb(data: bytes) -> tuple[dict[str, Any], bytes | None]:
    """The JSON document and the binary chunk (None when there is none) of a whole GLB in memory."""
    if not data.startswith(GLB_MAGIC):
        raise GlbError("not a GLB")
    first = first_chunk(data)
    if first is None:
        raise GlbError("truncated GLB")
    json_length, json_type = first
    if json_type != JSON_CHUNK:
        raise GlbError("GLB without a JSON chunk first")
    start = HEADER_SIZE + CHUNK_HEADER_SIZE
    document = json.loads(data[start:start + json_length])
    if not isinstance(document, dict):
        raise GlbError("not a glTF document")
    binary: bytes | None = None
    offset = start + json_length
    second = chunk_header(data, offset)
    if second is not None and second[1] == BIN_CHUNK:
        binary = data[offset + CHUNK_HEADER_SIZE:offset + CHUNK_HEADER_SIZE + second[0]]
    return document, binary


def read_gltf(path: Path) -> tuple[dict[str, Any], bytes | None]:
    """The JSON document and binary chunk of a GLB file, or just the JSON of a .gltf file."""
    data = path.read_bytes()
    if data.startswith(GLB_MAGIC):
        return parse_glb(data)
    document = json.loads(data)
    if not isinstance(document, dict):
        raise GlbError("not a glTF document")
    return document, None


def animation_names(document: dict[str, Any]) -> list[str]:
    """The animation names of a glTF document in file order (unnamed ones as Blender's importer names
    them)."""
    animations = document.get("animations") or []
    if not isinstance(animations, list):
        return []
    return [str(a.get("name") or f"Animation_{i}") for i, a in enumerate(animations) if isinstance(a, dict)]


def build_glb(document: dict[str, Any], binary: bytes | None = None) -> bytes:
    """A GLB of `document` (compact JSON) and `binary` (the BIN chunk, when given), each padded to 4 bytes."""
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    chunks = _CHUNK.pack(len(text), JSON_CHUNK) + text
    if binary is not None:
        binary += b"\x00" * (-len(binary) % 4)
        chunks += _CHUNK.pack(len(binary), BIN_CHUNK) + binary
    return _HEADER.pack(GLB_MAGIC, GLB_VERSION, HEADER_SIZE + len(chunks)) + chunks


def write_glb(path: Path, document: dict[str, Any], binary: bytes | None = None) -> None:
    """Write build_glb(document, binary) to `path`."""
    with open(path, "wb") as fh:
        fh.write(build_glb(document, binary))
