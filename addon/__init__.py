"""Marionette: a picture or a mesh to a rigged, animated character, through cloud providers.

This is the extension's entry point and holds nothing but register/unregister. The Blender layer is
imported lazily so that `addon.core` can be used (and unit-tested) without `bpy`.
"""


def register() -> None:
    from .blender import registration

    registration.register()


def unregister() -> None:
    from .blender import registration

    registration.unregister()
