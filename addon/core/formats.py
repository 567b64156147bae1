"""Recognise files by their first bytes, never by their names: a server may lie about both."""

from __future__ import annotations

import struct
from pathlib import Path

GLB_MAGIC = b"glTF"
FBX_MAGIC = b"Kaydara FBX Binary  \x00"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


def sniff_bytes(head: bytes) -> str | None:
    """Return 'glb', 'fbx', 'png' or 'jpeg' for the start of a file, or None when it is none of them."""
    if head.startswith(GLB_MAGIC) and len(head) >= 12:
        version, _length = struct.unpack_from("<II", head, 4)
        return "glb" if version == 2 else None
    if head.startswith(FBX_MAGIC):
        return "fbx"
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    return None


def sniff_file(path: Path) -> str | None:
    """Like sniff_bytes, and for GLB also checks that the declared length matches the file size."""
    with open(path, "rb") as fh:
        head = fh.read(32)
    kind = sniff_bytes(head)
    if kind == "glb":
        _version, declared = struct.unpack_from("<II", head, 4)
        if declared != path.stat().st_size:
            return None
    return kind
