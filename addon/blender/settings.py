"""What the artist sets in the panel, saved with the scene (never any key). Provider options are
generated from each provider's declared OptionSpecs, so the panel needs no per-provider code."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..core.providers import all_providers
from ..core.providers.base import OptionSpec, Provider

SOURCES = (
    ("AUTO", "Automatic", "The selected reference image, else the Image Editor's image, else the file below"),
    ("EMPTY", "Reference Image", "The selected image empty"),
    ("IMAGE_EDITOR", "Image Editor", "The image shown in an Image Editor"),
    ("FILE", "Image File", "An image file on disk"),
)


def _prop_for(spec: OptionSpec) -> Any:
    common = {"name": spec.label, "description": spec.description}
    if spec.kind == "bool":
        return BoolProperty(default=bool(spec.default), **common)
    if spec.kind == "int":
        return IntProperty(default=int(spec.default), min=int(spec.min or 0), max=int(spec.max or 2**31 - 1),
                           **common)
    if spec.kind == "float":
        return FloatProperty(default=float(spec.default), min=spec.min or 0.0, max=spec.max or 1e9, **common)
    if spec.kind == "enum":
        return EnumProperty(items=list(spec.items), default=str(spec.default), **common)
    return StringProperty(default=str(spec.default), **common)


def _options_group(provider: Provider) -> type[bpy.types.PropertyGroup]:
    return type(
        f"MARIONETTE_PG_{provider.id}_options",
        (bpy.types.PropertyGroup,),
        {"__annotations__": {spec.name: _prop_for(spec) for spec in provider.options}},
    )


def _animation_flags(provider: Provider) -> Any:
    items = [(str(c.action_id), c.name.replace("_", " "), f"Meshy action {c.action_id}", 1 << i)
             for i, c in enumerate(provider.common_animations)]
    return EnumProperty(name="Animations", description="Animations to add to the rigged character",
                        items=items, options={"ENUM_FLAG"}, default=set())


PROVIDERS = all_providers()
OPTION_GROUPS = {pid: _options_group(p) for pid, p in PROVIDERS.items()}


def _settings_annotations() -> dict[str, Any]:
    ann: dict[str, Any] = {
        "provider": EnumProperty(
            name="Provider",
            items=[(p.id, p.label, f"Generate with {p.label}") for p in PROVIDERS.values()],
        ),
        "source": EnumProperty(name="Image", items=SOURCES, default="AUTO"),
        "image_path": StringProperty(name="Image File", subtype="FILE_PATH",
                                     description="A PNG or JPEG (other formats are converted to PNG)"),
        "job_name": StringProperty(name="Name", description="Name of the job and of the imported collection "
                                   "(empty: the image's name)"),
        "rig": BoolProperty(name="Rig & Animate", default=True,
                            description="Rig the generated model and add the chosen animations"),
    }
    for pid, provider in PROVIDERS.items():
        ann[f"{pid}_options"] = PointerProperty(type=OPTION_GROUPS[pid])
        if provider.common_animations:
            ann[f"{pid}_animations"] = _animation_flags(provider)
    return ann


class MARIONETTE_PG_settings(bpy.types.PropertyGroup):
    __annotations__ = _settings_annotations()


def options_of(settings: Any, provider: Provider) -> dict[str, Any]:
    group = getattr(settings, f"{provider.id}_options")
    return {spec.name: getattr(group, spec.name) for spec in provider.options}


classes = (*OPTION_GROUPS.values(), MARIONETTE_PG_settings)


def register_properties() -> None:
    bpy.types.Scene.marionette = PointerProperty(type=MARIONETTE_PG_settings)  # type: ignore[attr-defined]


def unregister_properties() -> None:
    del bpy.types.Scene.marionette  # type: ignore[attr-defined]
