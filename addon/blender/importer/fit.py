"""Fitting an imported character to the scene: normalisation and in-place loops (normalize.py,
inplace.py do the work), then placing its root objects at the 3D cursor and selecting it."""

from __future__ import annotations

from dataclasses import dataclass

from mathutils import Matrix

from .. import inplace, normalize
from .character import Character


@dataclass
class SceneFit:
    """How an imported character is fitted to the scene (normalize.py, inplace.py)."""

    normalize: bool = True
    height: float | None = None  # metres; None: as delivered
    facing: str | None = None  # the delivered character's front, when the provider's convention is known
    recentre: bool = True  # feet and centre at the origin (False: keep the provider's placement)
    in_place: bool = False  # locomotion actions loop in place (the originals are kept)


def fit_to_scene(character: Character, fit: SceneFit) -> None:
    if fit.normalize:
        _done, character.objects = normalize.normalize(
            character.objects, character.armature, [a.action for a in character.anims],
            view_layer=character.view_layer, height=fit.height, facing=fit.facing, recentre=fit.recentre)
    if fit.in_place and character.armature is not None:
        for anim in character.anims:
            copy = inplace.in_place_copy(character.armature, anim.action)
            if copy is not None:
                anim.action, anim.name = copy, copy.name


def place_and_select(character: Character, location: tuple[float, float, float], rotation_z: float = 0.0) -> None:
    view_layer = character.view_layer
    imported = set(character.objects)
    turn = Matrix.Rotation(rotation_z, 4, "Z")
    for obj in character.objects:
        if obj.parent is None or obj.parent not in imported:
            basis = obj.matrix_basis.copy()
            basis.translation = (0.0, 0.0, 0.0)
            obj.matrix_basis = Matrix.Translation(location) @ turn @ basis
    for obj in view_layer.objects:
        obj.select_set(obj in imported, view_layer=view_layer)
    active = character.armature
    if active is None:
        meshes = [o for o in character.objects if o.type == "MESH"]
        active = meshes[0] if meshes else (character.objects[0] if character.objects else None)
    view_layer.objects.active = active
