"""Blender data to bytes a provider accepts. Images: PNG and JPEG go as they are; anything else
(EXR, TIFF, packed, generated, edited) is converted to PNG from its pixels, without changing the
artist's image."""

from __future__ import annotations

import logging
from pathlib import Path

import bpy
import numpy as np

from ..core import png
from ..core.errors import InputError
from ..core.formats import sniff_bytes

log = logging.getLogger(__name__)


def image_bytes(image: bpy.types.Image) -> tuple[str, bytes]:
    """(file name, PNG or JPEG bytes) for a Blender image."""
    stem = Path(bpy.path.basename(image.filepath_raw) or image.name).stem or "image"
    if not image.is_dirty:
        original = _original_bytes(image)
        if original is not None:
            kind = sniff_bytes(original[:32])
            return f"{stem}.{'jpg' if kind == 'jpeg' else 'png'}", original
    return f"{stem}.png", pixels_to_png(image)


def _original_bytes(image: bpy.types.Image) -> bytes | None:
    data: bytes | None = None
    if image.packed_file is not None:
        data = bytes(image.packed_file.data)
    elif image.source == "FILE" and image.filepath_raw:
        path = Path(bpy.path.abspath(image.filepath_raw, library=image.library))
        if path.is_file():
            data = path.read_bytes()
    if data and sniff_bytes(data[:32]) in ("png", "jpeg"):
        return data
    return None


def pixels_to_png(image: bpy.types.Image) -> bytes:
    width, height = image.size
    if width == 0 or height == 0:
        raise InputError(f"The image {image.name!r} has no pixels (is its file missing?)")
    channels = image.channels
    buf = np.empty(width * height * channels, dtype=np.float32)
    image.pixels.foreach_get(buf)
    pixels = buf.reshape(height, width, channels)
    if channels < 4:
        rgba = np.ones((height, width, 4), dtype=np.float32)
        rgba[..., :3] = pixels[..., :1] if channels < 3 else pixels[..., :3]
        if channels == 2:
            rgba[..., 3] = pixels[..., 1]
        pixels = rgba
    if image.is_float:
        # Float buffers hold scene-linear values; a PNG wants sRGB-encoded ones.
        rgb = np.clip(pixels[..., :3], 0.0, 1.0)
        pixels = pixels.copy()
        pixels[..., :3] = np.where(rgb <= 0.0031308, rgb * 12.92, 1.055 * np.power(rgb, 1 / 2.4) - 0.055)
    as_bytes = (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return png.encode_rgba8(width, height, np.flipud(as_bytes).tobytes())  # Blender stores bottom row first


def file_bytes(path: Path) -> tuple[str, bytes]:
    """(name, bytes) for an image file: PNG/JPEG as is, other formats Blender reads converted to PNG."""
    if not path.is_file():
        raise InputError(f"Image file not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"The image file is empty: {path.name}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"The image file cannot be read: {path.name} ({exc.strerror})") from exc
    if sniff_bytes(data[:32]) in ("png", "jpeg"):
        return path.name, data
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError as exc:
        raise InputError(f"{path.name} is not an image Blender can read") from exc
    try:
        if image.size[0] == 0 or image.size[1] == 0:
            raise InputError(f"{path.name} is not an image Blender can read")
        return f"{path.stem}.png", pixels_to_png(image)
    finally:
        bpy.data.images.remove(image)
