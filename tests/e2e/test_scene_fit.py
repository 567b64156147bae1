"""Normalisation and in-place loops against real Blender, with rigs made the way providers deliver them
(tests/assets/build_character.py: a 0.01-scale rig with centimetre data, a Y-up FBX in centimetres, a
normalised-size GLB). The motion is checked frame by frame: every bone head's world position after the
import equals, within 1 mm, the one Blender's own importers give without normalisation, moved to the
cursor and scaled by the height change.

Every test that imports runs twice: through the installed, enabled extension (what artists run: its glTF
importer hooks give a scaled rig bones of its own size during the import, blender/gltf_hooks.py) and
through the source tree's importer, which Blender's glTF importer does not know, so normalisation shortens
the bones itself in one Edit Mode visit.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import bpy
import numpy as np
import pytest
from mathutils import Vector

from addon.blender import importer as source_importer
from addon.blender import inplace, normalize
from tests.assets.build_character import CHARACTER_HEIGHT, PROP_NAME, PROP_SIZE, PROPS, STROLL_DISTANCE
from tests.assets.cache import ensure_assets
from tests.support import blender_install
from tests.support.motion import head_track, play

CURSOR = (1.5, -2.0, 0.25)
MM = 1e-3


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return ensure_assets()


importer: ModuleType = source_importer  # under test: the installed extension's or the source tree's (set below)


def module_under_test(name: str) -> ModuleType:
    """The module `name` ("blender.normalize") of the same copy of Marionette as the importer under test."""
    root = importer.__name__.removesuffix(".blender.importer")
    return importlib.import_module(f"{root}.{name}")


@pytest.fixture(params=["extension", "source"], autouse=True)
def under_test(request: pytest.FixtureRequest, _installed: str, extension_zip: Path) -> Iterator[str]:
    global importer
    bpy.ops.wm.read_homefile(use_empty=True)
    if request.param == "extension":
        if _installed not in blender_install.enabled_addons():
            blender_install.install_and_enable(extension_zip)
        importer = importlib.import_module(_installed + ".blender.importer")
    else:
        importer = source_importer
    yield request.param
    importer = source_importer


def fresh_scene() -> bpy.types.Scene:
    """An empty scene; the extension stays enabled (factory settings would turn it off)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    assert scene is not None
    return scene


def load(path: Path, fit: object, animations: list[tuple[str, Path]] | None = None,
         location: tuple[float, float, float] = CURSOR) -> source_importer.ImportedCharacter:
    imported: source_importer.ImportedCharacter = importer.import_character(
        path, animations or [], collection_name="Hero", location=location, scene_fit=fit)
    return imported


def fit(**options: object) -> source_importer.SceneFit:
    scene_fit: source_importer.SceneFit = importer.SceneFit(**options)
    return scene_fit


def armature(result: source_importer.ImportedCharacter) -> bpy.types.Object:
    assert result.armature is not None
    return bpy.data.objects[result.armature]


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


def objects_of(result: source_importer.ImportedCharacter) -> list[bpy.types.Object]:
    return [bpy.data.objects[n] for n in result.objects]


def raw_import(path: Path, animations: list[tuple[str, Path]] | None = None
               ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """What Blender's importers give (no normalisation): head tracks of every action, rest-pose points."""
    fresh_scene()
    result = load(path, fit(normalize=False), animations, location=(0.0, 0.0, 0.0))
    arm = armature(result)
    points = world_points(objects_of(result))
    tracks = {name: head_track(arm, name) for name in result.actions}
    return tracks, points


def assert_right_in_scene(result: source_importer.ImportedCharacter, height: float) -> bpy.types.Object:
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
    raw = load(files["scaled_rig.glb"], fit(normalize=False))
    raw_arm = armature(raw)
    assert raw_arm.scale[0] == pytest.approx(0.01)
    assert max(b.length for b in raw_arm.data.bones) * 0.01 > CHARACTER_HEIGHT  # the broken-looking rig
    assert [o for o in bpy.data.objects if o.type == "EMPTY"]

    fresh_scene()
    result = load(files["scaled_rig.glb"], fit())
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
    result = load(files[file_name], fit(height=height), animations)
    assert_right_in_scene(result, height or raw_height)
    arm = armature(result)
    assert sorted(result.actions) == sorted(before)
    for name in result.actions:
        assert_same_motion(before[name], head_track(arm, name), points, scale)


def test_normalised_size_model_gets_the_height_asked_for(files: dict[str, Path]) -> None:
    fresh_scene()
    result = load(files["normalized.glb"], fit())
    assert_right_in_scene(result, 1.0)  # as delivered: the unit cube
    fresh_scene()
    result = load(files["normalized.glb"], fit(height=1.62))
    assert_right_in_scene(result, 1.62)


def test_unrigged_model_stands_on_the_cursor(files: dict[str, Path]) -> None:
    fresh_scene()
    result = load(files["model.glb"], fit(height=2.0))
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
    result = load(files["scaled_rig.glb"], fit(recentre=False))
    after = world_points(objects_of(result))
    assert np.abs(after - (points + np.array(CURSOR))).max() < MM
    assert armature(result).scale[0] == pytest.approx(1.0)


def test_added_animations_are_scaled_like_the_character(files: dict[str, Path]) -> None:
    """Add Animations on a normalised character: an animation file for the 0.01-scale rig (centimetre
    keys) plays exactly as on the rig it was made for."""
    before, points = raw_import(files["scaled_rig.glb"], [("Running", files["scaled_anim.glb"])])
    fresh_scene()
    result = load(files["scaled_rig.glb"], fit())
    arm = armature(result)
    added = importer.add_animations(arm.name, [("Running", files["scaled_anim.glb"])])
    assert added == ["Running"]
    assert_same_motion(before["Running"], head_track(arm, "Running"), points, 1.0)
    assert_same_motion(before["Strolling"], head_track(arm, "Strolling"), points, 1.0)


def test_in_place_removes_the_travel_and_keeps_the_bob(files: dict[str, Path]) -> None:
    before, points = raw_import(files["scaled_rig.glb"])
    fresh_scene()
    result = load(files["scaled_rig.glb"], fit(in_place=True))
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
    result = load(files["scaled_rig.glb"], fit())
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
    result = load(files["rigged.glb"], fit(facing="+Y"))
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
    result = load(files["scaled_rig.glb"], fit())
    arm = armature(result)
    added = importer.add_animations(arm.name, [("Walking", files["scaled_walk.glb"])], in_place=True)
    assert added == ["Walking" + inplace.SUFFIX]
    assert bpy.data.actions["Walking"].use_fake_user
    hips = sorted(b.name for b in arm.data.bones).index("Hips")
    looped = head_track(arm, "Walking" + inplace.SUFFIX)[:, hips]
    assert np.abs(looped[-1] - looped[0]).max() < MM
    travelling = head_track(arm, "Walking")[:, hips]
    assert travelling[0, 1] - travelling[-1, 1] == pytest.approx(STROLL_DISTANCE, abs=MM)


# --------------------------------------------------------------------------------------------------
# Bone lengths from the import itself (the extension's glTF importer hooks), and props on bones
# --------------------------------------------------------------------------------------------------


def test_scaled_rig_bones_come_right_from_the_import_with_the_extension(
        files: dict[str, Path], under_test: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the extension the glTF importer makes the scaled rig's bones their own size, so
    normalisation has nothing to shorten (no Edit Mode visit); the source tree's importer (no hooks) gets
    the importer's 100-times-too-long bones and shortens them itself. Both end with the same sane bones."""
    norm = module_under_test("blender.normalize")
    real = norm._fix_bone_lengths
    seen: list[float] = []  # longest bone / the cap, when normalisation looked

    def recording(arm: bpy.types.Object, height: float, view_layer: bpy.types.ViewLayer) -> None:
        seen.append(max(b.length for b in arm.data.bones) / (height * norm.MAX_BONE_FRACTION))
        real(arm, height, view_layer)

    monkeypatch.setattr(norm, "_fix_bone_lengths", recording)
    fresh_scene()
    result = load(files["scaled_rig.glb"], fit())
    arm = assert_right_in_scene(result, CHARACTER_HEIGHT)
    assert len(seen) == 1
    if under_test == "extension":
        assert seen[0] <= 1.0, "the imported bones were too long: the hooks did not run"
    else:
        assert seen[0] > 10.0
    # Bones as long as the distance to their child (the glTF importer's own rule, in metres now).
    bones = arm.data.bones
    assert bones["Spine"].length == pytest.approx((bones["Chest"].head_local - bones["Spine"].head_local).length,
                                                  abs=MM)


def test_prop_on_a_bone_follows_the_hand(files: dict[str, Path], under_test: str) -> None:
    """A rigid prop parented to a bone of a 0.01-scale rig: unit scale, its size in metres, its origin
    where the file puts it (the hand bone's tail, 10 cm from the hand's head, upright at rest) and
    following the hand at every frame."""
    if under_test == "source":
        pytest.skip("Blender's glTF importer alone places a scaled rig's bone children from the too-long "
                    "bones; the extension's hooks are what place them right")
    [(file_name, bone_name)] = PROPS.items()
    fresh_scene()
    result = load(files[file_name], fit())
    arm = armature(result)
    prop = bpy.data.objects[PROP_NAME]
    assert prop.name in result.objects
    assert (prop.parent, prop.parent_type, prop.parent_bone) == (arm, "BONE", bone_name)
    bpy.context.view_layer.update()
    assert prop.matrix_world.to_scale().to_tuple() == pytest.approx((1.0, 1.0, 1.0), abs=1e-6)
    corners = np.array([v.co.to_tuple() for v in prop.data.vertices])
    assert np.abs(corners).max(axis=0) == pytest.approx(np.array(PROP_SIZE) / 2, abs=MM)

    arm.data.pose_position = "REST"
    bpy.context.view_layer.update()
    head = arm.matrix_world @ arm.data.bones[bone_name].head_local
    offset = prop.matrix_world.translation - head
    assert offset.to_tuple() == pytest.approx((-0.10, 0.0, 0.0), abs=MM)  # the right hand points to -X
    assert (prop.matrix_world.to_3x3() @ Vector((0.0, 0.0, 1.0))).to_tuple() == pytest.approx((0.0, 0.0, 1.0),
                                                                                            abs=1e-4)
    arm.data.pose_position = "POSE"

    action = play(arm, "Dance")
    scene = bpy.context.scene
    relative = []
    for frame in range(round(action.frame_range[0]), round(action.frame_range[1]) + 1):
        scene.frame_set(frame)
        depsgraph = bpy.context.evaluated_depsgraph_get()
        evaluated_arm, evaluated_prop = arm.evaluated_get(depsgraph), prop.evaluated_get(depsgraph)
        bone_world = evaluated_arm.matrix_world @ evaluated_arm.pose.bones[bone_name].matrix
        relative.append(np.array(bone_world.inverted() @ evaluated_prop.matrix_world))
    moves = np.array(relative)
    assert np.abs(moves - moves[0]).max() < MM  # rigidly attached to the hand at every frame
    assert np.linalg.norm(moves[0][:3, 3]) == pytest.approx(0.10, abs=MM)


def test_artists_own_gltf_imports_are_left_to_blender(files: dict[str, Path], under_test: str) -> None:
    """The extension's hooks run for Marionette's imports only: the artist's own File > Import gives what
    Blender's importer gives, enabled extension or not."""
    fresh_scene()
    bpy.ops.import_scene.gltf(filepath=str(files["scaled_rig.glb"]), bone_heuristic="BLENDER")
    [arm] = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    assert arm.scale.to_tuple() == pytest.approx((0.01, 0.01, 0.01))
    assert max(b.length for b in arm.data.bones) * 0.01 > CHARACTER_HEIGHT


def test_armature_scale_given_back_when_an_import_stops_half_way(under_test: str) -> None:
    """The hooks set a scaled armature object to scale 1 while its bones are made; if the importer stops
    before its after-nodes hook, leaving Marionette's import block puts the scale back."""
    hooks = module_under_test("blender.gltf_hooks")
    fresh_scene()
    arm = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    arm.scale = (0.01, 0.01, 0.01)
    outside = hooks.GltfImportHooks()
    outside.gather_import_node_after_hook(None, None, arm, None)
    assert arm.scale.to_tuple() == pytest.approx((0.01, 0.01, 0.01))  # not Marionette's import: untouched
    with pytest.raises(RuntimeError), hooks.sane_bone_lengths():
        inside = hooks.GltfImportHooks()
        inside.gather_import_node_after_hook(None, None, arm, None)
        assert arm.scale.to_tuple() == pytest.approx((1.0, 1.0, 1.0))
        raise RuntimeError("the importer failed half-way")
    assert arm.scale.to_tuple() == pytest.approx((0.01, 0.01, 0.01))
