"""Recognise files by their first bytes, never by their names: a server may lie about both.

GLB layout is gltf.py's, pictures are images.py's; this module names the kinds Marionette handles."""

from __future__ import annotations

from pathlib import Path

from .gltf import GLB_MAGIC, glb_header, is_glb
from .images import JPEG_MAGIC, PNG_MAGIC, image_kind

__all__ = ["FBX_MAGIC", "GLB_MAGIC", "JPEG_MAGIC", "PNG_MAGIC", "sniff_bytes", "sniff_file"]

FBX_MAGIC = b"Kaydara FBX Binary  \x00"


def sniff_bytes(head: bytes) -> str | None:
    """Return 'glb', 'fbx', 'png' or 'jpeg' for the start of a file, or None when it is none of them."""
    if glb_header(head) is not None:
        return "glb" if is_glb(head) else None
    if head.startswith(FBX_MAGIC):
        return "fbx"
    return image_kind(head)


def sniff_file(path: Path) -> str | None:
    """Like sniff_bytes, and for GLB also checks that the declared length matches the file size."""
    with open(path, "rb") as fh:
        head = fh.read(32)
    kind = sniff_bytes(head)
    if kind == "glb":
        header = glb_header(head)
        if header is None or header[1] != path.stat().st_size:
            return None
    return kind
