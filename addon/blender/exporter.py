"""Blender data to bytes a provider accepts.

Meshes: joined, with modifiers, in world space, as GLB. Images: PNG and JPEG go as they are; anything
else (EXR, TIFF, packed, generated, edited) is converted to PNG from its pixels, without changing the
artist's image."""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

from ..core import png
from ..core.errors import InputError
from ..core.formats import PNG_MAGIC, sniff_bytes
from ..core.images import MAX_IMAGE_PIXELS, image_size, jpeg_problem, png_problem

log = logging.getLogger(__name__)


def sendable_as_is(data: bytes) -> bool:
    """JPEG, and PNG with 8 bits per channel, go as they are; 16-bit (and 1/2/4-bit) PNGs are converted."""
    kind = sniff_bytes(data[:32])
    if kind == "jpeg":
        return True
    return kind == "png" and len(data) > 24 and data[24] == 8  # IHDR bit depth


def fit_images(files: list[tuple[str, bytes]], max_side: int | None,
               label: str) -> tuple[list[tuple[str, bytes]], str | None]:
    """The pictures, those larger than `max_side` pixels downscaled (aspect kept) to PNG, and a note that
    says which were, for the job's notice. Nothing is changed in the artist's images."""
    out: list[tuple[str, bytes]] = []
    scaled: list[str] = []
    for name, data in files:
        size = image_size(data)
        if not max_side or size is None or max(size) <= max_side:
            out.append((name, data))
            continue
        width, height = size
        factor = max_side / max(width, height)
        new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
        out.append((f"{Path(name).stem}.png", _checked_scaled_png(name, data, size, new_size)))
        scaled.append(f"{name} from {width}x{height} to {new_size[0]}x{new_size[1]}")
    if not scaled:
        return out, None
    return out, f"Downscaled for {label} (up to {max_side} px): " + "; ".join(scaled)


def _checked_scaled_png(name: str, data: bytes, size: tuple[int, int], new_size: tuple[int, int]) -> bytes:
    """_scaled_png, after the checks that say in the artist's words why a picture cannot be scaled: a
    header claiming more pixels than any real picture, damaged data, or Blender refusing it."""
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(f"The image {name} says it is {width}x{height} pixels, more than Marionette reads "
                         f"({MAX_IMAGE_PIXELS >> 20} megapixels): it is damaged or far too large. Save it smaller.")
    problem = png_problem(data) if data.startswith(PNG_MAGIC) else jpeg_problem(data)
    if problem:
        raise InputError(f"The image {name} is damaged ({problem}): open it in an image editor and save it "
                         "again, or pick another picture")
    try:
        return _scaled_png(data, new_size)
    except RuntimeError as exc:
        raise InputError(f"Blender could not read the image {name} to downscale it; save it again as PNG or "
                         "JPEG") from exc


def _scaled_png(data: bytes, size: tuple[int, int]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="marionette-image-") as folder:
        path = Path(folder) / ("input.jpg" if sniff_bytes(data[:32]) == "jpeg" else "input.png")
        path.write_bytes(data)
        image = bpy.data.images.load(str(path), check_existing=False)
        try:
            image.scale(*size)
            return pixels_to_png(image)
        finally:
            bpy.data.images.remove(image)


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
    if data and sendable_as_is(data):
        return data
    return None


def pixels_to_png(image: bpy.types.Image) -> bytes:
    width, height = int(image.size[0]), int(image.size[1])  # type: ignore[index]  # stub gap
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
    if sendable_as_is(data):
        return path.name, data
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError as exc:
        raise InputError(f"{path.name} is not an image Blender can read") from exc
    try:
        if 0 in (image.size[0], image.size[1]):  # type: ignore[index]  # stub gap
            raise InputError(f"{path.name} is not an image Blender can read")
        return f"{path.stem}.png", pixels_to_png(image)
    finally:
        bpy.data.images.remove(image)


# -- selected mesh -> GLB ------------------------------------------------------------------------------

# Rotation about Z that turns the character's facing direction into -Y, which is glTF +Z: Meshy's front.
FACING_ROTATION = {"-Y": 0.0, "+Y": math.pi, "+X": -math.pi / 2, "-X": math.pi / 2}


@dataclass
class MeshExport:
    glb: bytes
    texture: bytes | None
    height: float  # world-space bounding box height, metres
    faces: int
    location: tuple[float, float, float]  # where the rigged result goes: the active mesh's origin
    rotation_z: float  # applied on export; the import turns the result back by -rotation_z


def check_meshes(objects: list[bpy.types.Object]) -> None:
    """Refuse what Meshy cannot rig, before anything is exported or sent."""
    if not objects:
        raise InputError("Select the character's mesh first")
    for obj in objects:
        if obj.type != "MESH":
            raise InputError(f"{obj.name} is a {obj.type.lower()}, not a mesh: select only the character's meshes")
        if obj.library or obj.data.library or obj.override_library:
            raise InputError(f"{obj.name} is linked from a library: make it local first "
                             "(Object > Relations > Make Local)")


def base_color_image(objects: list[bpy.types.Object]) -> bpy.types.Image | None:
    """The first image feeding a Principled BSDF's Base Color in the meshes' materials."""
    for obj in objects:
        for slot in obj.material_slots:
            mat = slot.material
            if not mat or not mat.node_tree:  # use_nodes is deprecated in 5.0; node_tree tells
                continue
            for node in mat.node_tree.nodes:
                if node.type != "BSDF_PRINCIPLED":
                    continue
                for link in node.inputs["Base Color"].links:
                    source = link.from_node
                    if source.type == "TEX_IMAGE" and source.image is not None:
                        return source.image
    return None


def face_count(context: bpy.types.Context, objects: list[bpy.types.Object]) -> int:
    depsgraph = context.evaluated_depsgraph_get()
    meshes: list[Any] = [obj.evaluated_get(depsgraph).data for obj in objects]
    return sum(len(mesh.polygons) for mesh in meshes)


def export_meshes(context: bpy.types.Context, objects: list[bpy.types.Object], facing: str) -> MeshExport:
    """The meshes joined (with modifiers, in world space, origin at the active mesh's origin, turned to
    face glTF +Z) as GLB bytes. The scene is left as it was: only temporary data is created."""
    check_meshes(objects)
    image = base_color_image(objects)
    if image is None:
        raise InputError("Meshy rigs textured characters: give the mesh a material whose Base Color is an "
                         "image texture")
    faces = face_count(context, objects)
    if faces == 0:
        raise InputError(f"{objects[0].name} has no faces to rig")
    primary = context.active_object if context.active_object in objects else objects[0]
    origin = primary.matrix_world.translation.copy()
    angle = FACING_ROTATION[facing]
    to_export = Matrix.Rotation(angle, 4, "Z") @ Matrix.Translation((-origin.x, -origin.y, -origin.z))
    depsgraph = context.evaluated_depsgraph_get()
    scene = context.scene
    collection = bpy.data.collections.new("Marionette Export")
    temp_objects: list[bpy.types.Object] = []
    temp_meshes: list[bpy.types.Mesh] = []
    selection = [o for o in context.view_layer.objects if o.select_get()]
    active = context.view_layer.objects.active
    scene.collection.children.link(collection)
    try:
        for obj in objects:
            mesh = bpy.data.meshes.new_from_object(obj.evaluated_get(depsgraph), preserve_all_data_layers=True,
                                                   depsgraph=depsgraph)
            mesh.transform(to_export @ obj.matrix_world)
            temp_meshes.append(mesh)
            temp = bpy.data.objects.new(f"{obj.name}_export", mesh)
            collection.objects.link(temp)
            temp_objects.append(temp)
        for obj in selection:
            obj.select_set(False)
        for temp in temp_objects:
            temp.select_set(True)
        context.view_layer.objects.active = temp_objects[0]
        if len(temp_objects) > 1:
            with context.temp_override(active_object=temp_objects[0], selected_objects=temp_objects,
                                       selected_editable_objects=temp_objects):
                bpy.ops.object.join()
            temp_objects = [temp_objects[0]]
        joined = temp_objects[0]
        zs = [v.co.z for v in joined.data.vertices]
        height = (max(zs) - min(zs)) if zs else 0.0
        glb = _gltf_bytes(context, joined)
    finally:
        for temp in [o for o in collection.objects]:
            bpy.data.objects.remove(temp)
        bpy.data.collections.remove(collection)
        for mesh in temp_meshes:
            if mesh.name in bpy.data.meshes and mesh.users == 0:
                bpy.data.meshes.remove(mesh)
        for obj in selection:
            if obj.name in context.view_layer.objects:
                obj.select_set(True)
        context.view_layer.objects.active = active
    _name, texture = image_bytes(image)
    if not texture.startswith(PNG_MAGIC):
        # Meshy's rigging takes texture_image_url as PNG only ("We currently support .png formats",
        # seed 002): a JPEG base colour is converted, the artist's image untouched.
        texture = pixels_to_png(image)
    return MeshExport(glb=glb, texture=texture, height=height, faces=faces,
                      location=(origin.x, origin.y, origin.z), rotation_z=angle)


def _gltf_bytes(context: bpy.types.Context, obj: bpy.types.Object) -> bytes:
    with tempfile.TemporaryDirectory(prefix="marionette-export-") as folder:
        path = Path(folder) / "character.glb"
        wanted = {
            "filepath": str(path), "export_format": "GLB", "use_selection": True, "export_animations": False,
            "export_skins": False, "export_morph": False, "export_apply": True, "export_yup": True,
            "export_materials": "EXPORT", "export_cameras": False, "export_lights": False,
        }
        # Options differ between 4.2 and 5.0: pass only those this Blender's exporter knows.
        export: Any = bpy.ops.export_scene.gltf
        known = export.get_rna_type().properties
        kwargs = {k: v for k, v in wanted.items() if k in known}
        with context.temp_override(active_object=obj, selected_objects=[obj]):
            result = export(**kwargs)
        if "FINISHED" not in result or not path.is_file():
            raise InputError("Blender's glTF exporter could not export the mesh")
        return path.read_bytes()
