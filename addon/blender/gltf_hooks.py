"""Hooks into Blender's own glTF importer, for Marionette's imports only: bones of the rig's own size.

Blender's glTF importer (the ``BLENDER`` bone heuristic, every version from 4.2 to 5.3) gives each bone
the distance to its child as length but divides it by the largest scale of the armature object. On a rig
delivered at object scale 0.01 with its data in centimetres (Meshy's rigged GLB, Mixamo-style files) every
bone becomes 100 times too long: a 44 m skeleton drawn around a 1.8 m character. Bone lengths can only be
changed in Edit Mode, and an Edit Mode visit after the import costs as much as a fifth of a small
character's whole import. So the armature object is shown to the importer at unit scale while it makes
the bones, and given back its scale once every node exists (before any animation is read):

* ``gather_import_node_after_hook`` runs right after the importer made an object and set its transform,
  and right before it makes that armature's bones: a scaled armature object is set to scale 1 there;
* ``gather_import_scene_after_nodes_hook`` runs once every node is made: the scales are put back;
* :func:`sane_bone_lengths` (around Marionette's own call of the importer) turns the hooks on and puts
  back any scale left changed if the importer stopped half-way.

Objects parented to a bone are placed by the importer from the same unscaled length, so they land where
the file says. Nothing else the importer does reads the armature object's scale before the restore (the
bone-shape sizing that does is turned off by Marionette's import options). The importer finds the hooks
through the ``glTF2ImportUserExtension`` attribute of every enabled add-on's module (the extension's
package gives this class under that name, on first look); it makes one per import, for the artist's own
imports too, where the hooks do nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Import:
    scaled: list[tuple[Any, tuple[float, float, float]]] = field(default_factory=list)

    def restore(self) -> None:
        for obj, scale in self.scaled:
            with suppress(ReferenceError):  # removed since (an import that failed and was rolled back)
                obj.scale = scale
        self.scaled.clear()


_current: _Import | None = None  # set while Marionette's importer runs (the main thread only)


@contextmanager
def sane_bone_lengths() -> Iterator[None]:
    """Turn the hooks on for the glTF import made inside the block."""
    global _current
    state = _Import()
    previous, _current = _current, state
    try:
        yield
    finally:
        _current = previous
        state.restore()


class GltfImportHooks:
    """What Blender's glTF importer instantiates for each import (see the module docstring)."""

    def __init__(self) -> None:
        self._import = _current  # None for an import that is not Marionette's

    def gather_import_node_after_hook(self, vnode: Any, gltf_node: Any, blender_object: Any, gltf: Any) -> None:
        state = self._import
        if state is None or blender_object is None or getattr(blender_object, "type", None) != "ARMATURE":
            return
        scale = tuple(blender_object.scale)
        if all(abs(s - 1.0) < 1e-9 for s in scale):
            return
        state.scaled.append((blender_object, (scale[0], scale[1], scale[2])))
        blender_object.scale = (1.0, 1.0, 1.0)

    def gather_import_scene_after_nodes_hook(self, gltf_scene: Any, blender_scene: Any, gltf: Any) -> None:
        if self._import is not None:
            self._import.restore()
