"""The test humanoid with many actions in one GLB, for the bench's import and normalisation timings.

Like ``multi.glb`` of :func:`tests.assets.build_character.build_all`, with the five test motions repeated
under new names, each action on its own (muted) NLA track. Built with bpy at run time from
build_character's parts; nothing fetched.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.assets import build_character as bc


def build_many_actions_glb(path: Path, count: int, scaled: bool = False) -> Path:
    """Write the humanoid with `count` actions to `path` (GLB). `scaled`: delivered like Meshy's rigs, at
    object scale 0.01 with the data (and root motion) in cm. Resets the running Blender to a factory
    scene first (call before installing the extension) and leaves the character in it."""
    import bpy

    path.parent.mkdir(parents=True, exist_ok=True)
    scene = bc._reset_scene()
    with tempfile.TemporaryDirectory(prefix="marionette-bench-tex-") as tmp:
        material = bc._make_material(Path(tmp))
        arm = bc._make_armature(scene)
        body = bc._make_mesh(scene, material, arm)
        unit = 100.0 if scaled else 1.0
        if scaled:
            from mathutils import Matrix

            arm.data.transform(Matrix.Scale(unit, 4))
            body.data.transform(Matrix.Scale(unit, 4))
            arm.scale = (1.0 / unit,) * 3
        bc._select_all(scene)
        bpy.context.view_layer.objects.active = arm
        bc._clear_animation(arm)
        for index in range(count):
            base = bc.MULTI_ORDER[index % len(bc.MULTI_ORDER)]
            action = bc._key_animation(arm, bc.ANIMATIONS[base], unit)
            action.name = f"{base}_{index:03d}"
            anim_data = arm.animation_data
            assert anim_data is not None
            anim_data.action = None
            track = anim_data.nla_tracks.new()
            track.name = action.name
            track.strips.new(action.name, int(action.frame_range[0]), action)
            track.mute = True
        scene.frame_start, scene.frame_end = 1, max(a.last for a in bc.ANIMATIONS.values())
        bc._gltf_export(path, animations=True, export_anim_single_armature=False)
    found = len(bc.glb_animation_names(path))
    if found != count:
        raise RuntimeError(f"{path.name} holds {found} animations, not {count}")
    return path
