"""Bring a provider's result (a model plus animation files) into the open scene as one character.

:func:`import_character` runs on Blender's main thread (from an operator or a timer). It imports the
main file (GLB/glTF or FBX, recognised by content), then takes the animation out of every animation
file and moves it onto the main armature, deleting everything else that file brought in.

How the animations are laid out on the armature
-----------------------------------------------
* Every action (the main file's own animations first, in file order, then one per animation file, in the
  order given) gets its own NLA track named after the action, holding one strip that starts at the
  action's first frame (so strip time equals action time).
* The tracks are stacked like Blender's glTF importer does it: the first action is the top track of the
  NLA editor (``nla_tracks[-1]``), the last action the bottom one (``nla_tracks[0]``).
* Every track is **muted**, and the first action is also the armature's **active action**; the scene
  frame range is set to its range. Playback therefore shows exactly the first animation: muted tracks
  are not evaluated, so no other animation can bleed into channels the first one does not key. The
  tracks are there so that every action is kept (an NLA strip is a real user, no fake users needed) and
  listed by name. To switch, an artist picks another action in the Action Editor (on Blender 4.4+ the
  armature's slot is found automatically, see below), or clears the active action and un-mutes/solos a
  track; the glTF add-on's animation switcher works too, as track names are the animation names.

Which actions are kept
----------------------
Only actions that animate the main armature. The glTF importer also makes per-object actions (a rigged
mesh's own transform, shape-key weights) and the FBX importer per-object takes; they are dropped, and
the animation data of the other imported objects is cleared. Reason: provider results animate the
skeleton; an extra per-object action would be a second, independent action per animation that neither
follows the armature's active action nor its NLA tracks when an artist switches, so it would play out of
sync (and duplicate every animation in the Action Editor). An unrigged model keeps no animation at all,
and animation files cannot be added to it (:class:`ImportFailed`).

Blender 4.4+ layered actions (feature-detected, never by version number)
-----------------------------------------------------------------------
An action that animated another armature is bound to its *slot* for that armature; assigning it to our
armature alone would animate nothing. Where ``AnimData.action_slot`` exists, the armature slot of every
kept action is renamed to the main armature's name (so its identifier is ``OB<armature name>`` in every
action, which makes Blender's slot auto-assignment work when artists switch actions) and is set
explicitly on ``anim_data.action_slot`` and on each NLA ``strip.action_slot``.

Atomicity and side effects
--------------------------
Both entry points run in :func:`.transaction.atomic_import`. Every ID created is found by comparing all
``bpy.data`` ID collections before and after (pre-existing data is never touched). On any failure
everything the call created is removed, the scene settings the importers change (frame range, current
frame, fps, scene custom properties, the glTF add-on's animation track list) and the selection, active
object, active collection and mode are restored, and :class:`ImportFailed` is raised. Only the main file
may change the scene's fps (Blender's FBX importer sets it to the file's rate so that its keys keep
their timing); animation files never change scene settings. (glTF keys are in seconds and land on the
scene's fps, so their timing is kept anyway.)

Selection and mode
------------------
On success Blender is in Object Mode (import operators need it; an artist's Edit Mode is left first,
which writes their edits back), the imported objects are selected and nothing else, and the armature (or
the first mesh of an unrigged model) is active, as after any import; the artist's active collection
stays active. Root objects are moved to ``location`` (the 3D cursor). Operators run under
``context.temp_override`` with the scene, view layer and, when there is one, a window (a GUI timer's
context has none), so the same code runs in background mode and from a timer.

Speed
-----
A GLB animation file is imported from a slimmed copy that holds only nodes, skins and animations (its
binary chunk cut down to the inverse bind matrices and animation keys), which skips reading, building
and deleting meshes and decoding textures. If the copy cannot be made or imported, the original file is
imported. There is no per-frame or per-keyframe Python loop anywhere; 127 small animation files import
in about two seconds.

Modules
-------
``transaction`` the atomic import (saved state, snapshot, rollback); ``ids`` the bpy.data diff;
``reading`` file recognition and Blender's import operators; ``gltf_slim`` glTF JSON (animation names,
the slimmed animation file copy; no bpy); ``character`` the character being built, its main file and
animation files; ``animations`` actions, slots, NLA layout; ``fit`` normalisation, in-place loops,
placement and selection (normalize.py and inplace.py do the work). This module: the two entry points.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bpy

from ...core.errors import ImportFailed
from . import animations
from .character import Character, import_animation, import_main
from .fit import SceneFit, fit_to_scene, place_and_select
from .reading import ModelFile, read_model
from .transaction import atomic_import, set_active_collection

log = logging.getLogger(__name__)

__all__ = ["ImportFailed", "ImportedCharacter", "SceneFit", "add_animations", "import_character"]


@dataclass
class ImportedCharacter:
    collection: str  # name of the new collection
    armature: str | None  # the one armature object's name (None for an unrigged model)
    objects: list[str]  # every object left in the scene by the import
    actions: list[str]  # action names, in NLA/track order, first = active


def import_character(
    main_file: Path,
    animation_files: Sequence[tuple[str, Path]] = (),
    *,
    collection_name: str,
    location: tuple[float, float, float],
    rotation_z: float = 0.0,
    context: bpy.types.Context | None = None,
    scene_fit: SceneFit | None = None,
) -> ImportedCharacter:
    """Import `main_file` and the animation of every file of `animation_files` as one character.

    The root objects are placed at `location`, turned by `rotation_z` radians about Z (to undo a facing
    correction made when the artist's mesh was exported), after normalisation (`scene_fit`: unit scale,
    real-world size, on the ground, in-place loops; see normalize.py). Must run on Blender's main thread. Raises
    ImportFailed (and leaves the scene as it was) on any failure. See the module docstring for the
    layout of actions and NLA tracks.
    """
    ctx = context if context is not None else bpy.context
    main_path = Path(main_file)
    main_model = read_model(main_path, "model file")
    anim_files: list[tuple[str, ModelFile]] = []
    for display_name, anim_file in animation_files:
        anim_path = Path(anim_file)
        anim_files.append((display_name.strip() or anim_path.stem, read_model(anim_path, "animation file")))
    scene = ctx.scene
    view_layer = ctx.view_layer
    if scene is None or view_layer is None:
        raise ImportFailed("There is no open scene to import into.")

    fit = scene_fit if scene_fit is not None else SceneFit()
    character = Character(ctx, scene, view_layer)
    with atomic_import(ctx, scene, view_layer, what=f"import of {main_path.name}",
                       failure=f"Could not import {main_path.name!r}",
                       unchanged="The scene was left as it was.") as state:
        collection = bpy.data.collections.new(collection_name.strip() or main_path.stem)
        scene.collection.children.link(collection)
        character.collection = collection
        set_active_collection(view_layer, collection.name)
        import_main(character, main_model, sane_bones=fit.normalize)
        state.settings.restore(scene, fps=False)  # the main file may set the fps, nothing else
        if anim_files and character.armature is None:
            raise ImportFailed(f"{main_path.name!r} has no skeleton, so animations cannot be added to it.")
        for display_name, anim_model in anim_files:
            import_animation(character, display_name, anim_model)
        fit_to_scene(character, fit)
        if character.armature is not None:
            animations.layout_nla(character.armature, character.anims, scene)
        track_names = list(state.settings.gltf_tracks or [])
        track_names += [a.name for a in character.anims if a.name not in track_names]
        state.settings.restore_gltf_tracks(track_names if state.settings.gltf_tracks is not None else None)
        set_active_collection(view_layer, state.active_layer_collection)
        place_and_select(character, location, rotation_z)

    assert character.collection is not None
    result = ImportedCharacter(
        collection=character.collection.name,
        armature=character.armature.name if character.armature is not None else None,
        objects=[o.name for o in character.collection.objects],
        actions=[a.action.name for a in character.anims],
    )
    log.info(
        "imported %s into %r: %d objects, %d actions", main_path.name, result.collection, len(result.objects),
        len(result.actions),
    )
    return result


def add_animations(
    armature_name: str,
    animation_files: Sequence[tuple[str, Path]],
    *,
    context: bpy.types.Context | None = None,
    in_place: bool = False,
) -> list[str]:
    """Add the animation of each file to an existing armature (a character imported earlier).

    The new actions get their own NLA tracks after the existing ones; the active action stays. Returns
    the new action names. Atomic like import_character: on failure nothing is left behind.
    """
    ctx = context if context is not None else bpy.context
    arm = bpy.data.objects.get(armature_name)
    if arm is None or arm.type != "ARMATURE":
        raise ImportFailed(f"The character's armature {armature_name!r} is no longer in this file.")
    scene, view_layer = ctx.scene, ctx.view_layer
    if scene is None or view_layer is None:
        raise ImportFailed("There is no open scene to import into.")
    anim_files = [(name.strip() or Path(path).stem, read_model(Path(path), "animation file"))
                  for name, path in animation_files]
    character = Character(ctx, scene, view_layer, armature=arm)
    existing = animations.existing_anims(arm)
    frame_range = (scene.frame_start, scene.frame_end, scene.frame_current)

    def undo() -> None:  # the character keeps its tracks, active action and the scene its frame range
        if existing:
            animations.layout_nla(arm, existing, scene)
            scene.frame_start, scene.frame_end, scene.frame_current = frame_range

    with atomic_import(ctx, scene, view_layer, what=f"adding animations to {armature_name}",
                       failure="Could not add the animations", unchanged="The character was left as it was.",
                       undo=undo) as state:
        for display_name, anim_model in anim_files:
            import_animation(character, display_name, anim_model)
        fit_to_scene(character, SceneFit(normalize=False, in_place=in_place))
        animations.layout_nla(arm, existing + character.anims, scene)
        if existing:  # the character keeps its active action and the scene its frame range
            scene.frame_start, scene.frame_end, scene.frame_current = frame_range
        state.restore_selection(view_layer)
    return [a.action.name for a in character.anims]
