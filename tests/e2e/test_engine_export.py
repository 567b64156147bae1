"""Export for game engines: each preset's file read back with Blender's own importers, checking the
character's size, its actions (one animation each), their lengths and the motion itself."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import bpy
import numpy as np
import pytest

from addon.blender import engine_export, importer
from addon.core.errors import InputError
from tests.assets.build_character import CHARACTER_HEIGHT, glb_animation_names
from tests.assets.cache import ensure_assets
from tests.support.motion import head_track

MM = 1e-3


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return ensure_assets()


def make_character(files: dict[str, Path]) -> bpy.types.Object:
    """A normalised 0.01-scale rig with an in-place walk: three actions (Dance, Strolling, its in-place copy)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = importer.import_character(files["scaled_rig.glb"], [], collection_name="Hero", location=(1.0, 2.0, 0.0),
                                       scene_fit=importer.SceneFit(in_place=True))
    assert result.armature is not None
    return bpy.data.objects[result.armature]


def short_name(action_name: str, armature: str) -> str:
    """FBX takes come back as "<object>|<take>"; Blender 4.2's glTF importer names actions "<anim>_<object>"."""
    return action_name.rsplit("|", 1)[-1].removesuffix("_" + armature)


@pytest.mark.parametrize("preset", ["unreal", "unity", "godot"])
def test_export_reads_back_with_every_action(files: dict[str, Path], tmp_path: Path, preset: str) -> None:
    arm = make_character(files)
    actions = {a.name: a for a in bpy.data.actions}
    assert sorted(actions) == ["Dance", "Strolling", "Strolling In Place"]
    expected = {name: (action.frame_range[1] - action.frame_range[0], head_track(arm, action))
                for name, action in actions.items()}
    written = engine_export.export(arm, tmp_path / "hero", preset)
    key = engine_export.preset_id(preset)
    assert written == tmp_path / ("hero" + engine_export.PRESETS[key].extension)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    if written.suffix == ".glb":
        assert sorted(glb_animation_names(written)) == sorted(expected)  # one glTF animation per action
    if written.suffix == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(written))
    else:
        bpy.ops.import_scene.gltf(filepath=str(written), disable_bone_shape=True)
    bpy.context.view_layer.update()
    [back] = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    meshes = [o for o in bpy.data.objects if o.type == "MESH"]
    assert [m.name for m in meshes] == ["Body"]
    co = np.empty(len(meshes[0].data.vertices) * 3)
    meshes[0].data.vertices.foreach_get("co", co)
    m = np.array(meshes[0].matrix_world)
    points = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
    assert np.ptp(points[:, 2]) == pytest.approx(CHARACTER_HEIGHT, abs=MM)
    assert points[:, 2].min() == pytest.approx(0.0, abs=MM)

    found = {short_name(a.name, back.name): a for a in bpy.data.actions}
    assert sorted(found) == sorted(expected)
    for name, (length, before) in expected.items():
        action = found[name]
        assert action.frame_range[1] - action.frame_range[0] == pytest.approx(length, abs=0.01), name
        after = head_track(back, action)
        assert after.shape == before.shape
        worst = float(np.abs(after - before).max())
        assert worst < MM, f"{preset} {name}: bone heads off by {worst * 1000:.2f} mm"


def test_export_refuses_what_is_not_a_character(files: dict[str, Path], tmp_path: Path) -> None:
    arm = make_character(files)
    body = bpy.data.objects["Body"]
    with pytest.raises(InputError, match="armature"):
        engine_export.export(body, tmp_path / "x", "godot")
    with pytest.raises(InputError, match="preset"):
        engine_export.export(arm, tmp_path / "x", "blender")
    with pytest.raises(InputError, match="does not exist"):
        engine_export.export(arm, tmp_path / "missing" / "x", "unity")
    assert engine_export.armature_of(body) == arm
    assert not list(tmp_path.iterdir())


def test_api_and_operator_export(ext: ModuleType, files: dict[str, Path], tmp_path: Path) -> None:
    api = importlib.import_module(ext.__name__ + ".api")
    result = importer.import_character(files["scaled_rig.glb"], [], collection_name="Hero", location=(0, 0, 0))
    assert result.armature is not None
    arm = bpy.data.objects[result.armature]
    written = Path(api.export(arm.name, tmp_path / "hero.glb", "web"))
    assert written == tmp_path / "hero.glb" and written.stat().st_size > 1000
    bpy.context.view_layer.objects.active = bpy.data.objects["Body"]  # a mesh of the character will do
    assert bpy.ops.marionette.export_character(filepath=str(tmp_path / "hero_ue"), preset="UNREAL") == {"FINISHED"}
    assert (tmp_path / "hero_ue.fbx").is_file()
    with pytest.raises(RuntimeError, match="does not exist"):  # reported as an error, nothing written
        bpy.ops.marionette.export_character(filepath=str(tmp_path / "no" / "x.fbx"), preset="UNITY")
    bpy.context.view_layer.objects.active = None
    assert not bpy.ops.marionette.export_character.poll()
