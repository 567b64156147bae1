"""The character an import builds, and the two steps that add files to it: the main file (its objects
moved into the character's collection, the armature's actions kept, everything else's animation dropped)
and each animation file (one action taken from it, conformed to the character, the rest removed).

Both run inside :func:`.transaction.atomic_import`, which removes whatever they leave behind on failure.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from ...core.errors import ImportFailed
from .. import normalize
from . import gltf_slim, ids, reading
from .animations import Anim, animated_bones, armature_anims, armatures, bones, find_slot, rename, rest_mismatch
from .transaction import SceneSettings

log = logging.getLogger(__name__)


@dataclass
class Character:
    """The character being imported (Blender objects; ImportedCharacter holds its names once done)."""

    context: bpy.types.Context
    scene: bpy.types.Scene
    view_layer: bpy.types.ViewLayer
    collection: bpy.types.Collection | None = None
    armature: bpy.types.Object | None = None
    objects: list[bpy.types.Object] = field(default_factory=list)
    anims: list[Anim] = field(default_factory=list)


def import_main(character: Character, model: reading.ModelFile, *, sane_bones: bool) -> None:
    assert character.collection is not None
    path, kind = model.path, model.kind
    before = ids.snapshot()
    reading.run_importer(path, kind, sane_bones=sane_bones)
    created = ids.created_since(before)
    objects = [i for i in created if isinstance(i, bpy.types.Object)]
    if not objects:
        raise ImportFailed(f"{path.name!r} contains no objects to import.")
    # Every imported object goes into our collection, and only there.
    ours = character.collection
    for obj in objects:
        for owner in list(obj.users_collection):
            if owner != ours:
                owner.objects.unlink(obj)
        if ours not in obj.users_collection:
            ours.objects.link(obj)
    stray_collections = [i for i in created if isinstance(i, bpy.types.Collection) and i != ours]
    ids.remove_ids(stray_collections)

    found = sorted(armatures(objects), key=lambda o: len(bones(o)), reverse=True)
    if len(found) > 1:
        log.warning("%s has %d armatures; animations go on %r", path.name, len(found), found[0].name)
    arm = found[0] if found else None
    new_actions = {i.as_pointer() for i in created if isinstance(i, bpy.types.Action)}
    anims: list[Anim] = []
    if arm is not None:
        anims = armature_anims(arm, new_actions, model.animation_names, kind == "fbx")
    elif new_actions:
        log.warning("%s is not rigged; its animation is dropped", path.name)
    kept = {a.action.as_pointer() for a in anims}
    # Other objects' animation (mesh transforms, shape keys) is dropped, see the package docstring.
    for id_ in created:
        if id_ is arm or isinstance(id_, bpy.types.Action):
            continue
        if getattr(id_, "animation_data", None) is not None:
            id_.animation_data_clear()
    ids.remove_ids([i for i in created if isinstance(i, bpy.types.Action) and i.as_pointer() not in kept])
    for anim in anims:
        anim.action.use_fake_user = False
        rename(anim.action, anim.name)
        anim.name = anim.action.name
    character.armature = arm
    character.objects = objects
    character.anims = anims


def import_animation(character: Character, display_name: str, model: reading.ModelFile) -> None:
    arm = character.armature
    path, kind = model.path, model.kind
    assert arm is not None
    settings = SceneSettings.capture(character.scene)
    before = ids.snapshot()
    try:
        with tempfile.TemporaryDirectory(prefix="marionette-anim-") as tmp:
            source = path
            if kind == "glb":
                light = Path(tmp) / "skeleton.glb"
                if gltf_slim.write_skeleton_only_glb(path, light):
                    source = light
            try:
                reading.run_importer(source, kind, search_images=False)
            except ImportFailed:
                if source == path:
                    raise
                log.info("skeleton-only copy of %s failed, importing the whole file", path.name)
                ids.remove_ids(ids.created_since(before))
                reading.run_importer(path, kind, search_images=False)
        created = ids.created_since(before)
        candidates = armatures(created)
        if not candidates:
            raise ImportFailed(f"The animation file {path.name!r} has no skeleton to take an animation from.")
        bone_names = {b.name for b in bones(arm)}
        source_arm = max(candidates, key=lambda o: len(bone_names & {b.name for b in bones(o)}))
        new_actions = {i.as_pointer() for i in created if isinstance(i, bpy.types.Action)}
        anims = armature_anims(source_arm, new_actions, model.animation_names, kind == "fbx")
        if not anims:
            raise ImportFailed(f"The animation file {path.name!r} contains no animation.")
        if len(anims) > 1:
            log.warning("%s holds %d animations; using the first, %r", path.name, len(anims), anims[0].name)
        anim = anims[0]
        units = normalize.conform_action(arm, source_arm, anim.action)  # to a normalised character's size
        slot = find_slot(anim.action, anim.slot_handle)
        animated = animated_bones(anim.action, slot)
        if animated and not animated & bone_names:
            raise ImportFailed(
                f"The animation in {path.name!r} does not fit this character's skeleton (no bone in common)."
            )
        mismatch = rest_mismatch(arm, source_arm, units)
        if mismatch:
            log.warning("%s: rest pose differs on %d bones (e.g. %s); the animation may look distorted",
                        path.name, len(mismatch), mismatch[0])
        anim.slot_handle = int(slot.handle) if slot is not None else None
        ids.remove_ids([i for i in created if i != anim.action])
    finally:
        settings.restore(character.scene)
    anim.action.use_fake_user = False
    rename(anim.action, display_name)
    anim.name = anim.action.name
    character.anims.append(anim)
