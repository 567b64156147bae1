"""Finds what the artist wants to send: the selected reference image, the Image Editor's image, or
a file. Main thread only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy

from ..core.errors import InputError
from . import exporter


def reference_image(context: bpy.types.Context) -> bpy.types.Image | None:
    obj = context.active_object
    if obj and obj.type == "EMPTY" and obj.empty_display_type == "IMAGE" and isinstance(obj.data, bpy.types.Image):
        return obj.data
    return None


def image_editor_image(context: bpy.types.Context) -> bpy.types.Image | None:
    """The image of the Image Editor in this window (the active area first)."""
    area = context.area
    if area and area.type == "IMAGE_EDITOR" and area.spaces.active.image:
        return area.spaces.active.image
    screen = context.screen
    for candidate in screen.areas if screen else ():
        if candidate.type == "IMAGE_EDITOR" and candidate.spaces.active.image:
            return candidate.spaces.active.image
    return None


def describe(context: bpy.types.Context, settings: Any) -> tuple[str | None, str]:
    """(what would be sent, or None, and a short text for the panel). Cheap: reads no pixels."""
    mode = settings.source
    if mode in ("AUTO", "EMPTY") and (img := reference_image(context)):
        return img.name, f"Reference image: {img.name}"
    if mode in ("AUTO", "IMAGE_EDITOR") and (img := image_editor_image(context)):
        return img.name, f"Image Editor: {img.name}"
    if mode in ("AUTO", "FILE") and settings.image_path:
        return settings.image_path, f"File: {bpy.path.basename(settings.image_path)}"
    hints = {
        "AUTO": "No image: select a reference image, open one in an Image Editor, or pick a file",
        "EMPTY": "No image: select an image empty (reference image)",
        "IMAGE_EDITOR": "No image: open an image in an Image Editor",
        "FILE": "No image: pick an image file",
    }
    return None, hints[mode]


def selected_reference_images(context: bpy.types.Context) -> list[bpy.types.Image]:
    """Images of the selected image empties, by object name (name them view_1, view_2... to order them)."""
    empties = sorted((o for o in context.selected_objects if o.type == "EMPTY" and o.empty_display_type == "IMAGE"
                      and isinstance(o.data, bpy.types.Image)), key=lambda o: o.name)
    images: list[bpy.types.Image] = []
    for obj in empties:
        if isinstance(obj.data, bpy.types.Image):
            images.append(obj.data)
    return images


def resolve_many(context: bpy.types.Context, settings: Any) -> list[tuple[str, bytes]]:
    """Several views of one object: the selected image empties, else the panel's list of files."""
    images = selected_reference_images(context)
    if images:
        return [exporter.image_bytes(img) for img in images]
    paths = [item.filepath for item in settings.view_images if item.filepath]
    if paths:
        return [exporter.file_bytes(Path(bpy.path.abspath(p))) for p in paths]
    raise InputError("No images: select the image empties of the views, or add image files to the list")


def resolve(context: bpy.types.Context, settings: Any, filepath: str = "") -> tuple[str, bytes]:
    """(file name, PNG/JPEG bytes) of the image to send, or InputError saying what is missing."""
    if filepath:
        return exporter.file_bytes(Path(bpy.path.abspath(filepath)))
    mode = settings.source
    if mode in ("AUTO", "EMPTY") and (img := reference_image(context)):
        return exporter.image_bytes(img)
    if mode in ("AUTO", "IMAGE_EDITOR") and (img := image_editor_image(context)):
        return exporter.image_bytes(img)
    if mode in ("AUTO", "FILE") and settings.image_path:
        return exporter.file_bytes(Path(bpy.path.abspath(settings.image_path)))
    raise InputError(describe(context, settings)[1])
