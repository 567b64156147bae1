"""Registers every Blender class of the extension (placeholder until the layer lands)."""


def register() -> None:
    pass


def unregister() -> None:
    pass
