"""Normalisation and in-place loops against real Blender, with rigs made the way providers deliver them
(tests/assets/build_character.py: a 0.01-scale rig with centimetre data, a Y-up FBX in centimetres, a
normalised-size GLB). The motion is checked frame by frame: every bone head's world position after the
import equals, within 1 mm, the one Blender's own importers give without normalisation, moved to the
cursor and scaled by the height change.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

from addon.blender import importer, inplace, normalize
from tests.assets.build_character import CHARACTER_HEIGHT, STROLL_DISTANCE
from tests.assets.cache import ensure_assets

CURSOR = (1.5, -2.0, 0.25)
MM = 1e-3


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return ensure_assets()


def fresh_scene() -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    assert scene is not None
    return scene


def load(path: Path, fit: importer.SceneFit, animations: list[tuple[str, Path]] | None = None,
         location: tuple[float, float, float] = CURSOR) -> importer.ImportedCharacter:
    return importer.import_character(path, animations or [], collection_name="Hero", location=location,
                                     scene_fit=fit)


def armature(result: importer.ImportedCharacter) -> bpy.types.Object:
    assert result.armature is not None
    return bpy.data.objects[result.armature]


def play(arm: bpy.types.Object, action_name: str) -> bpy.types.Action:
    """Make `action_name` the armature's active action (its slot too on Blender 4.4+)."""
    anim_data = arm.animation_data
    assert anim_data is not None
    action = bpy.data.actions[action_name]
    anim_data.action = action
    slots = getattr(action, "slots", None)
    if slots is not None and len(slots) and hasattr(anim_data, "action_slot"):
        anim_data.action_slot = slots[0]
    return action


def head_track(arm: bpy.types.Object, action_name: str) -> np.ndarray:
    """World positions of every bone head at every frame of the action: (frames, bones, 3)."""
    action = play(arm, action_name)
    scene = bpy.context.scene
    first, last = (round(f) for f in action.frame_range)
    names = sorted(b.name for b in arm.data.bones)
    frames = []
    for frame in range(first, last + 1):
        scene.frame_set(frame)
        evaluated = arm.evaluated_get(bpy.context.evaluated_depsgraph_get())
        world = evaluated.matrix_world
        frames.append([(world @ evaluated.pose.bones[n].head).to_tuple() for n in names])
    return np.array(frames, dtype=np.float64)


def world_points(objects: list[bpy.types.Object]) -> np.ndarray:
    """Rest-pose (undeformed) vertex positions of the meshes, in world space."""
    bpy.context.view_layer.update()
    chunks = []
    for obj in objects:
        if obj.type != "MESH":
            continue
        mesh = obj.data
        co = np.empty(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
        m = np.array(obj.matrix_world)
        chunks.append(co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3])
    return np.concatenate(chunks)


def objects_of(result: importer.ImportedCharacter) -> list[bpy.types.Object]:
    return [bpy.data.objects[n] for n in result.objects]


def raw_import(path: Path, animations: list[tuple[str, Path]] | None = None
               ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """What Blender's importers give (no normalisation): head tracks of every action, rest-pose points."""
    fresh_scene()
    result = load(path, importer.SceneFit(normalize=False), animations, location=(0.0, 0.0, 0.0))
    arm = armature(result)
    points = world_points(objects_of(result))
    tracks = {name: head_track(arm, name) for name in result.actions}
    return tracks, points


def assert_right_in_scene(result: importer.ImportedCharacter, height: float) -> bpy.types.Object:
    """Unit scale, no helpers, the height asked for, on the ground at the cursor, facing -Y, sane bones."""
    objects = objects_of(result)
    bpy.context.view_layer.update()
    assert sorted(o.type for o in objects) == ["ARMATURE", "MESH"], [o.name for o in objects]
    assert not [o for o in bpy.data.objects if o.type == "EMPTY"]
    for obj in objects:
        assert obj.matrix_world.to_scale().to_tuple() == pytest.approx((1.0, 1.0, 1.0), abs=1e-6), obj.name
        assert obj.scale.to_tuple() == pytest.approx((1.0, 1.0, 1.0), abs=1e-6), obj.name
    points = world_points(objects)
    low, high = points.min(axis=0), points.max(axis=0)
    assert high[2] - low[2] == pytest.approx(height, abs=MM)
    assert low[2] == pytest.approx(CURSOR[2], abs=MM)
    assert (low[0] + high[0]) / 2 == pytest.approx(CURSOR[0], abs=MM)
    assert (low[1] + high[1]) / 2 == pytest.approx(CURSOR[1], abs=MM)
    arm = armature(result)
    bones = arm.data.bones
    # Facing -Y: the toes (foot tails) are in front of the ankles, the character's left hand is at +X.
    for side in ("Left", "Right"):
        foot = bones[f"{side}Foot"]
        toe, ankle = arm.matrix_world @ foot.tail_local, arm.matrix_world @ foot.head_local
        assert toe.y < ankle.y - 0.02 * height
    left, right = arm.matrix_world @ bones["LeftHand"].head_local, arm.matrix_world @ bones["RightHand"].head_local
    assert left.x > right.x
    longest = max(b.length for b in bones)
    assert longest <= normalize.MAX_BONE_FRACTION * height + 1e-6
    assert min(b.length for b in bones) > 1e-3 * height
    return arm


def assert_same_motion(before: np.ndarray, after: np.ndarray, before_points: np.ndarray, scale: float) -> None:
    """after == (before - rest anchor) * scale + cursor at every frame, every bone, within 1 mm."""
    low, high = before_points.min(axis=0), before_points.max(axis=0)
    anchor = np.array([(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]])
    expected = (before - anchor) * scale + np.array(CURSOR)
    assert after.shape == before.shape
    worst = float(np.abs(after - expected).max())
    assert worst < MM, f"bone heads off by {worst * 1000:.3f} mm"


# --------------------------------------------------------------------------------------------------


def test_scaled_rig_arrives_unit_scale_real_size_on_the_ground(files: dict[str, Path]) -> None:
    """A rig at object scale 0.01 with centimetre data (Meshy's rigged GLB): Blender's glTF importer alone
    gives an armature at scale 0.01 with bones tens of metres long, empty nodes and root motion in cm."""
    fresh_scene()
    raw = load(files["scaled_rig.glb"], importer.SceneFit(normalize=False))
    raw_arm = armature(raw)
    assert raw_arm.scale[0] == pytest.approx(0.01)
    assert max(b.length for b in raw_arm.data.bones) * 0.01 > CHARACTER_HEIGHT  # the broken-looking rig
    assert [o for o in bpy.data.objects if o.type == "EMPTY"]

    fresh_scene()
    result = load(files["scaled_rig.glb"], importer.SceneFit())
    arm = assert_right_in_scene(result, CHARACTER_HEIGHT)
    assert sorted(result.actions) == ["Dance", "Strolling"]
    assert arm.get(normalize.KEY_SCALE_PROP) == pytest.approx(0.01)


@pytest.mark.parametrize(("file_name", "height", "delivered"), [
    ("scaled_rig.glb", None, CHARACTER_HEIGHT),
    ("yup_cm.fbx", None, CHARACTER_HEIGHT),
    ("normalized.glb", 1.8, None),
    ("rigged.glb", None, CHARACTER_HEIGHT),
    ("multi.glb", 0.9, CHARACTER_HEIGHT),
])
def test_motion_plays_as_authored_frame_by_frame(files: dict[str, Path], file_name: str, height: float | None,
                                                 delivered: float | None) -> None:
    animations = [("Walking", files["walking.glb"])] if file_name == "rigged.glb" else None
    before, points = raw_import(files[file_name], animations)
    raw_height = float(points[:, 2].max() - points[:, 2].min())
    if delivered is not None:
        assert raw_height == pytest.approx(delivered, abs=MM)
    scale = height / raw_height if height else 1.0

    fresh_scene()
    result = load(files[file_name], importer.SceneFit(height=height), animations)
    assert_right_in_scene(result, height or raw_height)
    arm = armature(result)
    assert sorted(result.actions) == sorted(before)
    for name in result.actions:
        assert_same_motion(before[name], head_track(arm, name), points, scale)


def test_normalised_size_model_gets_the_height_asked_for(files: dict[str, Path]) -> None:
    fresh_scene()
    result = load(files["normalized.glb"], importer.SceneFit())
    assert_right_in_scene(result, 1.0)  # as delivered: the unit cube
    fresh_scene()
    result = load(files["normalized.glb"], importer.SceneFit(height=1.62))
    assert_right_in_scene(result, 1.62)


def test_unrigged_model_stands_on_the_cursor(files: dict[str, Path]) -> None:
    fresh_scene()
    result = load(files["model.glb"], importer.SceneFit(height=2.0))
    [obj] = objects_of(result)
    assert obj.scale.to_tuple() == pytest.approx((1.0, 1.0, 1.0))
    points = world_points([obj])
    assert points[:, 2].min() == pytest.approx(CURSOR[2], abs=MM)
    assert points[:, 2].max() - points[:, 2].min() == pytest.approx(2.0, abs=MM)
    assert (points[:, 0].min() + points[:, 0].max()) / 2 == pytest.approx(CURSOR[0], abs=MM)


def test_selected_mesh_flow_keeps_the_result_where_the_provider_put_it(files: dict[str, Path]) -> None:
    """recentre=False (the selected-mesh flow): unit scale, but the data keeps its place about the origin."""
    _before, points = raw_import(files["scaled_rig.glb"])
    fresh_scene()
    result = load(files["scaled_rig.glb"], importer.SceneFit(recentre=False))
    after = world_points(objects_of(result))
    assert np.abs(after - (points + np.array(CURSOR))).max() < MM
    assert armature(result).scale[0] == pytest.approx(1.0)


def test_added_animations_are_scaled_like_the_character(files: dict[str, Path]) -> None:
    """Add Animations on a normalised character: an animation file for the 0.01-scale rig (centimetre
    keys) plays exactly as on the rig it was made for."""
    before, points = raw_import(files["scaled_rig.glb"], [("Running", files["scaled_anim.glb"])])
    fresh_scene()
    result = load(files["scaled_rig.glb"], importer.SceneFit())
    arm = armature(result)
    added = importer.add_animations(arm.name, [("Running", files["scaled_anim.glb"])])
    assert added == ["Running"]
    assert_same_motion(before["Running"], head_track(arm, "Running"), points, 1.0)
    assert_same_motion(before["Strolling"], head_track(arm, "Strolling"), points, 1.0)


def test_in_place_removes_the_travel_and_keeps_the_bob(files: dict[str, Path]) -> None:
    before, points = raw_import(files["scaled_rig.glb"])
    fresh_scene()
    result = load(files["scaled_rig.glb"], importer.SceneFit(in_place=True))
    assert sorted(result.actions) == ["Dance", "Strolling" + inplace.SUFFIX]  # Dance does not travel: untouched
    original = bpy.data.actions["Strolling"]
    assert original.use_fake_user  # the original stays in the file
    arm = armature(result)
    hips = sorted(b.name for b in arm.data.bones).index("Hips")
    looped = head_track(arm, "Strolling" + inplace.SUFFIX)[:, hips]
    travelling = head_track(arm, "Strolling")[:, hips]
    assert travelling[0, 1] - travelling[-1, 1] == pytest.approx(STROLL_DISTANCE, abs=MM)  # the original walks
    assert np.abs(looped[-1] - looped[0]).max() < MM  # the copy loops on the spot
    assert np.abs(looped[:, :2] - looped[0, :2]).max() < MM  # no horizontal travel at any frame
    assert np.abs(looped[:, 2] - travelling[:, 2]).max() < MM  # the vertical bob is kept
    assert np.ptp(looped[:, 2]) > 0.01
    # Everything but the root's travel is as authored (legs, arms).
    raw = before["Strolling"]
    shift = (raw[:, hips:hips + 1, :2] - raw[0:1, hips:hips + 1, :2])
    expected = raw.copy()
    expected[:, :, :2] -= shift
    assert_same_motion(expected, head_track(arm, "Strolling" + inplace.SUFFIX), points, 1.0)


def test_in_place_is_off_by_default(files: dict[str, Path]) -> None:
    fresh_scene()
    result = load(files["scaled_rig.glb"], importer.SceneFit())
    assert sorted(result.actions) == ["Dance", "Strolling"]
    assert not [a for a in bpy.data.actions if a.name.endswith(inplace.SUFFIX)]


@pytest.mark.parametrize("name", ["Walking", "Run_Fast", "jog forward", "Sprint", "Strolling"])
def test_locomotion_names(name: str) -> None:
    assert normalize.is_locomotion(name)


@pytest.mark.parametrize("name", ["Idle", "Dance", "Wave", "Jump", "Attack"])
def test_not_locomotion_names(name: str) -> None:
    assert not normalize.is_locomotion(name)


def test_known_front_is_turned_to_minus_y(files: dict[str, Path]) -> None:
    """A character delivered looking along +Y (a provider whose convention says so) is turned to look -Y:
    with facing="+Y" our -Y-facing test character ends up turned half way round."""
    fresh_scene()
    result = load(files["rigged.glb"], importer.SceneFit(facing="+Y"))
    arm = armature(result)
    bpy.context.view_layer.update()
    foot = arm.data.bones["LeftFoot"]
    toe, ankle = arm.matrix_world @ foot.tail_local, arm.matrix_world @ foot.head_local
    assert toe.y > ankle.y + 0.02  # the toes point +Y now
    hand = arm.matrix_world @ arm.data.bones["LeftHand"].head_local
    assert hand.x < CURSOR[0]  # and its left hand is on the -X side
    points = world_points(objects_of(result))
    assert points[:, 2].min() == pytest.approx(CURSOR[2], abs=MM)


def test_added_locomotion_gets_an_in_place_copy(files: dict[str, Path]) -> None:
    fresh_scene()
    result = load(files["scaled_rig.glb"], importer.SceneFit())
    arm = armature(result)
    added = importer.add_animations(arm.name, [("Walking", files["scaled_walk.glb"])], in_place=True)
    assert added == ["Walking" + inplace.SUFFIX]
    assert bpy.data.actions["Walking"].use_fake_user
    hips = sorted(b.name for b in arm.data.bones).index("Hips")
    looped = head_track(arm, "Walking" + inplace.SUFFIX)[:, hips]
    assert np.abs(looped[-1] - looped[0]).max() < MM
    travelling = head_track(arm, "Walking")[:, hips]
    assert travelling[0, 1] - travelling[-1, 1] == pytest.approx(STROLL_DISTANCE, abs=MM)
