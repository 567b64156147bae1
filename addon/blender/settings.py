"""What the artist sets in the panel, saved with the scene (never any key). Provider options are
generated from each provider's declared options, so the panel needs no per-provider code. They come from
the light declarations (core.declared): registering imports neither pydantic nor requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..core.declared import DeclaredOption, DeclaredProvider
from ..core.declared import providers as declared_providers

if TYPE_CHECKING:
    from ..core.providers.base import Provider

SOURCES = (
    ("AUTO", "Automatic", "The selected reference image, else the Image Editor's image, else the file below"),
    ("EMPTY", "Reference Image", "The selected image empty"),
    ("IMAGE_EDITOR", "Image Editor", "The image shown in an Image Editor"),
    ("FILE", "Image File", "An image file on disk"),
)


FACINGS = (
    ("-Y", "Front View (-Y)", "The character looks toward Blender's front view, -Y (most characters)"),
    ("+Y", "Back (+Y)", "The character looks toward +Y"),
    ("+X", "Right (+X)", "The character looks toward +X"),
    ("-X", "Left (-X)", "The character looks toward -X"),
)


def _prop_for(spec: DeclaredOption) -> Any:
    name, desc = spec.label, spec.description
    if spec.kind == "bool":
        return BoolProperty(name=name, description=desc, default=bool(spec.default))
    if spec.kind == "int":
        return IntProperty(name=name, description=desc, default=int(spec.default), min=int(spec.min or 0),
                           max=int(spec.max or 2**31 - 1))
    if spec.kind == "float":
        return FloatProperty(name=name, description=desc, default=float(spec.default), min=spec.min or 0.0,
                             max=spec.max or 1e9)
    if spec.kind == "enum":
        return EnumProperty(name=name, description=desc, items=list(spec.items), default=str(spec.default))
    return StringProperty(name=name, description=desc, default=str(spec.default))


def _options_group(provider: DeclaredProvider) -> type[bpy.types.PropertyGroup]:
    return type(
        f"MARIONETTE_PG_{provider.id}_options",
        (bpy.types.PropertyGroup,),
        {"__annotations__": {spec.name: _prop_for(spec) for spec in provider.options}},
    )


INPUTS = (
    ("image", "Image", "A picture of the character", "IMAGE_DATA"),
    ("mesh", "Selected Mesh", "Rig and animate the selected mesh(es)", "MESH_DATA"),
    ("multi_image", "Several Images", "Views of one object from different angles", "RENDERLAYERS"),
    ("text", "Text Prompt", "Describe the model", "FONT_DATA"),
)


def _input_items(self: Any, _context: Any) -> list[tuple[str, str, str, str, int]]:
    provider = PROVIDERS.get(getattr(self, "provider", ""))
    accepted = provider.inputs if provider else frozenset()
    items: list[tuple[str, str, str, str, int]] = [
        (i, label, desc, icon, n) for n, (i, label, desc, icon) in enumerate(INPUTS) if i in accepted]
    _input_items.cache = items  # type: ignore[attr-defined]  # Blender needs the strings kept alive
    return items


PROVIDERS = declared_providers()
OPTION_GROUPS = {pid: _options_group(p) for pid, p in PROVIDERS.items()}


def _settings_annotations() -> dict[str, Any]:
    ann: dict[str, Any] = {
        "provider": EnumProperty(
            name="Provider",
            items=[(p.id, p.label, f"Generate with {p.label}") for p in PROVIDERS.values()],
        ),
        "input": EnumProperty(name="Input", items=_input_items,
                              description="What to send; each provider offers the inputs it accepts"),
        "source": EnumProperty(name="Image", items=SOURCES, default="AUTO"),
        "mesh_facing": EnumProperty(name="Faces", items=FACINGS, default="-Y",
                                    description="Which way the character looks; Meshy needs to know its front"),
        "mesh_height_auto": BoolProperty(name="Height From Bounds", default=True,
                                         description="Use the mesh's world-space height as the character height"),
        "hide_original": BoolProperty(name="Hide Original", default=True,
                                      description="Hide the original mesh when the rigged one arrives "
                                      "(it is never deleted)"),
        "image_path": StringProperty(name="Image File", subtype="FILE_PATH",
                                     description="A PNG or JPEG (other formats are converted to PNG)"),
        "job_name": StringProperty(name="Name", description="Name of the job and of the imported collection "
                                   "(empty: the image's name)"),
        "prompt": StringProperty(name="Prompt", description="Describe the model to generate"),
        "view_images": bpy.props.CollectionProperty(type=MARIONETTE_PG_image_path),
        "fit_height": FloatProperty(name="Height", default=0.0, min=0.0, soft_max=10.0, unit="LENGTH",
                                    description="Scale the imported character to this height (0: the height the "
                                    "provider states, such as Meshy's rigging height, else as delivered)"),
        "in_place": BoolProperty(name="In Place", default=False,
                                 description="Walk, run and other locomotion animations loop on the spot (their "
                                 "horizontal travel removed, the vertical bob kept); the originals are kept too"),
        "rig": BoolProperty(name="Rig & Animate", default=True,
                            description="Rig the generated model and add the chosen animations"),
    }
    for pid in PROVIDERS:
        ann[f"{pid}_options"] = PointerProperty(type=OPTION_GROUPS[pid])
    return ann


class MARIONETTE_PG_image_path(bpy.types.PropertyGroup):
    filepath: StringProperty(name="Image", subtype="FILE_PATH")  # type: ignore[valid-type]


class MARIONETTE_PG_settings(bpy.types.PropertyGroup):
    __annotations__ = _settings_annotations()


def options_of(settings: Any, provider: Provider, kind: str) -> dict[str, Any]:
    """The option values the artist set, for the options that apply to this input kind."""
    group = getattr(settings, f"{provider.id}_options")
    return {spec.name: getattr(group, spec.name) for spec in provider.options
            if spec.inputs is None or kind in spec.inputs}


classes = (*OPTION_GROUPS.values(), MARIONETTE_PG_image_path, MARIONETTE_PG_settings)


def register_properties() -> None:
    bpy.types.Scene.marionette = PointerProperty(type=MARIONETTE_PG_settings)  # type: ignore[attr-defined]


def unregister_properties() -> None:
    del bpy.types.Scene.marionette  # type: ignore[attr-defined]
