"""Marionette: a picture or a mesh to a rigged, animated character, through cloud providers.

This is the extension's entry point and holds nothing but register/unregister. The Blender layer is
imported lazily so that `addon.core` can be used (and unit-tested) without `bpy`.
"""

from typing import Any


def register() -> None:
    from .blender import registration

    registration.register()


def unregister() -> None:
    from .blender import registration

    registration.unregister()


def __getattr__(name: str) -> Any:
    """Blender's glTF importer looks for this name on every enabled add-on's module at each import: the
    hooks that give Marionette's imports bones of the rig's own size (blender/gltf_hooks.py), loaded on
    that first look rather than at register."""
    if name == "glTF2ImportUserExtension":
        from .blender.gltf_hooks import GltfImportHooks

        return GltfImportHooks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
