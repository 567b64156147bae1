"""The importer against real Blender (bpy module): characters built by tests/assets, no stubs.

Run with both bpy venvs (4.2 LTS: legacy actions; 5.0: layered actions with slots).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import bpy
import pytest
from mathutils import Matrix

from addon.blender import importer
from addon.core.errors import ImportFailed
from addon.core.formats import sniff_file
from tests.assets.cache import ensure_assets

CURSOR = (1.5, -2.0, 0.25)
# bpy.data collections whose sizes the tests watch.
WATCHED = (
    "objects", "meshes", "armatures", "materials", "images", "textures", "actions", "collections",
    "node_groups", "shape_keys", "worlds", "cameras", "lights", "curves", "scenes",
)


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return ensure_assets()


@pytest.fixture(scope="module")
def manifest(files: dict[str, Path]) -> dict[str, list[tuple[str, int, int]]]:
    raw = json.loads(files["manifest.json"].read_text(encoding="utf-8"))
    return {name: [(str(a), int(b), int(c)) for a, b, c in anims] for name, anims in raw.items()}


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def counts() -> dict[str, int]:
    return {name: len(getattr(bpy.data, name)) for name in WATCHED}


def grown(before: dict[str, int]) -> dict[str, int]:
    after = counts()
    return {name: after[name] - before[name] for name in WATCHED if after[name] != before[name]}


def armature_of(result: importer.ImportedCharacter) -> bpy.types.Object:
    assert result.armature is not None
    arm = bpy.data.objects[result.armature]
    assert arm.type == "ARMATURE"
    return arm


def tracks_top_down(arm: bpy.types.Object) -> list[bpy.types.NlaTrack]:
    anim_data = arm.animation_data
    assert anim_data is not None
    return list(reversed(anim_data.nla_tracks))


def pose_at(arm: bpy.types.Object, frame: int) -> dict[str, Matrix]:
    scene = bpy.context.scene
    scene.frame_set(frame)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = arm.evaluated_get(depsgraph)
    return {bone.name: bone.matrix.copy() for bone in evaluated.pose.bones}


def pose_distance(a: dict[str, Matrix], b: dict[str, Matrix]) -> float:
    """The largest difference between two poses' bone matrices."""
    return max(abs(a[n][r][c] - b[n][r][c]) for n in a for r in range(4) for c in range(4))


def rest_pose(arm: bpy.types.Object) -> dict[str, Matrix]:
    return {bone.name: bone.matrix_local.copy() for bone in arm.data.bones}


def use_only_track(arm: bpy.types.Object, track: bpy.types.NlaTrack) -> None:
    """Evaluate `track` alone through the NLA: no active action, every other track muted."""
    anim_data = arm.animation_data
    assert anim_data is not None
    anim_data.action = None
    for other in anim_data.nla_tracks:
        other.mute = other != track


def assert_moves(arm: bpy.types.Object, first: int, last: int, label: str) -> dict[str, Matrix]:
    a = pose_at(arm, first)
    b = pose_at(arm, first + max(1, (last - first) // 4))
    c = pose_at(arm, first + max(1, (last - first) // 2))
    assert max(pose_distance(a, b), pose_distance(b, c)) > 1e-2, f"{label}: the pose does not change"
    return b


def assert_character_layout(result: importer.ImportedCharacter, scene: bpy.types.Scene,
                            expected_actions: list[str]) -> bpy.types.Object:
    """Everything the brief promises about the armature, the NLA, the collection and the selection."""
    arm = armature_of(result)
    armatures = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    assert armatures == [arm]
    assert result.actions == expected_actions

    anim_data = arm.animation_data
    assert anim_data is not None
    tracks = tracks_top_down(arm)
    assert [t.name for t in tracks] == expected_actions
    for track in tracks:
        assert len(track.strips) == 1
        strip = track.strips[0]
        assert strip.action is not None and strip.action.name == track.name
        assert track.mute
        assert strip.frame_start == pytest.approx(strip.action.frame_range[0])
        if hasattr(strip, "action_slot"):  # layered actions: the strip is bound to the armature's slot
            assert strip.action_slot is not None
            assert strip.action_slot.identifier == "OB" + arm.name
    assert anim_data.action is not None and anim_data.action.name == expected_actions[0]
    if hasattr(anim_data, "action_slot"):
        assert anim_data.action_slot is not None
        assert anim_data.action_slot.identifier == "OB" + arm.name
    assert sorted(a.name for a in bpy.data.actions) == sorted(expected_actions)
    frame_range = anim_data.action.frame_range
    assert (scene.frame_start, scene.frame_end) == (round(frame_range[0]), round(frame_range[1]))

    collection = bpy.data.collections[result.collection]
    assert scene.collection.children.get(collection.name) == collection
    assert sorted(o.name for o in collection.objects) == sorted(result.objects)
    assert sorted(o.name for o in scene.objects) == sorted(result.objects)  # the scene was empty
    for obj in collection.objects:
        assert list(obj.users_collection) == [collection]
        if obj.parent is None:
            assert obj.location.to_tuple() == pytest.approx(CURSOR)
    view_layer = bpy.context.view_layer
    assert sorted(o.name for o in view_layer.objects if o.select_get()) == sorted(result.objects)
    assert view_layer.objects.active == arm
    return arm


def glb_with_broken_json(path: Path) -> None:
    """A file that passes sniffing (GLB magic, right length) but whose JSON chunk is garbage."""
    body = b"{ this is not json !!" + b" " * 3
    chunk = len(body).to_bytes(4, "little") + b"JSON" + body
    total = 12 + len(chunk)
    path.write_bytes(b"glTF" + (2).to_bytes(4, "little") + total.to_bytes(4, "little") + chunk)


def add_user_content(scene: bpy.types.Scene) -> bpy.types.Object:
    """Something of the artist's in the scene: a selected, active cube, a custom frame range and fps."""
    mesh = bpy.data.meshes.new("UserCube")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)], [], [(0, 1, 2, 3)])
    cube = bpy.data.objects.new("UserCube", mesh)
    scene.collection.objects.link(cube)
    cube.select_set(True)
    bpy.context.view_layer.objects.active = cube
    scene.frame_start, scene.frame_end, scene.frame_current = 5, 50, 7
    scene.render.fps = 30
    return cube


def scene_state(scene: bpy.types.Scene) -> dict[str, Any]:
    view_layer = bpy.context.view_layer
    active = view_layer.objects.active
    return {
        "frames": (scene.frame_start, scene.frame_end, scene.frame_current),
        "fps": (scene.render.fps, scene.render.fps_base),
        "selected": sorted(o.name for o in view_layer.objects if o.select_get()),
        "active": active.name if active is not None else None,
        "objects": sorted(o.name for o in scene.objects),
        "children": sorted(c.name for c in scene.collection.children),
        "active_collection": view_layer.active_layer_collection.collection.name,
        "keys": sorted(scene.keys()),
    }


# --------------------------------------------------------------------------------------------------
# the main cases
# --------------------------------------------------------------------------------------------------


def test_rigged_glb_with_animation_files(scene: bpy.types.Scene, files: dict[str, Path],
                                         manifest: dict[str, list[tuple[str, int, int]]]) -> None:
    before = counts()
    result = importer.import_character(
        files["rigged.glb"],
        [("Walking", files["walking.glb"]), ("Running", files["running.glb"]), ("Wave", files["anim_Wave.glb"])],
        collection_name="Hero",
        location=CURSOR,
    )
    assert result.collection == "Hero"
    arm = assert_character_layout(result, scene, ["Walking", "Running", "Wave"])
    _, first, last = manifest["walking.glb"][0]
    assert (scene.frame_start, scene.frame_end) == (first, last)
    # Only the main file's data plus one action per animation file: the animation files' meshes,
    # materials, images and armatures are gone.
    assert grown(before) == {
        "objects": 2, "meshes": 1, "armatures": 1, "materials": 1, "images": 1, "actions": 3, "collections": 1,
    }
    assert {o.type for o in bpy.data.objects} == {"ARMATURE", "MESH"}
    body = next(o for o in bpy.data.objects if o.type == "MESH")
    assert body.parent == arm
    assert any(isinstance(m, bpy.types.ArmatureModifier) and m.object == arm for m in body.modifiers)

    # The active action plays (with its slot on 5.0) ...
    rest = rest_pose(arm)
    posed = assert_moves(arm, first, last, "active action")
    assert pose_distance({n: posed[n] for n in rest}, rest) > 1e-2
    # ... and so does every track evaluated on its own through the NLA.
    seen: list[dict[str, Matrix]] = []
    for track in tracks_top_down(arm):
        use_only_track(arm, track)
        strip = track.strips[0]
        seen.append(assert_moves(arm, round(strip.frame_start), round(strip.frame_end), track.name))
    # Walking and Running are different motions.
    assert pose_distance(seen[0], seen[1]) > 1e-2


def test_multi_glb_gives_every_animation(scene: bpy.types.Scene, files: dict[str, Path],
                                         manifest: dict[str, list[tuple[str, int, int]]]) -> None:
    expected = [name for name, _first, _last in manifest["multi.glb"]]
    assert len(expected) >= 4
    before = counts()
    result = importer.import_character(files["multi.glb"], collection_name="Multi", location=CURSOR)
    arm = assert_character_layout(result, scene, expected)
    assert grown(before)["actions"] == len(expected)
    ranges = {name: (first, last) for name, first, last in manifest["multi.glb"]}
    assert (scene.frame_start, scene.frame_end) == ranges[expected[0]]
    for track in tracks_top_down(arm):
        assert tuple(round(v) for v in track.strips[0].action.frame_range) == ranges[track.name]
        use_only_track(arm, track)
        first, last = ranges[track.name]
        assert_moves(arm, first, last, track.name)


def test_multi_glb_plus_animation_file_keeps_names_unique(scene: bpy.types.Scene, files: dict[str, Path],
                                                          manifest: dict[str, list[tuple[str, int, int]]]) -> None:
    expected = [name for name, _first, _last in manifest["multi.glb"]]
    result = importer.import_character(files["multi.glb"], [("Walking", files["walking.glb"])],
                                       collection_name="Multi", location=CURSOR)
    assert result.actions[: len(expected)] == expected
    assert result.actions[-1] == "Walking.001"  # "Walking" already came with the main file
    assert_character_layout(result, scene, result.actions)


def test_fbx_main_file_with_fbx_and_glb_animations(scene: bpy.types.Scene, files: dict[str, Path]) -> None:
    before = counts()
    result = importer.import_character(
        files["rigged.fbx"], [("Walk", files["walking.fbx"]), ("Run", files["running.glb"])],
        collection_name="FbxHero", location=CURSOR,
    )
    arm = assert_character_layout(result, scene, ["Walk", "Run"])
    change = grown(before)
    assert change["objects"] == 2 and change["armatures"] == 1 and change["meshes"] == 1
    assert change["actions"] == 2 and change["collections"] == 1
    for track in tracks_top_down(arm):
        use_only_track(arm, track)
        strip = track.strips[0]
        assert_moves(arm, round(strip.frame_start), round(strip.frame_end), track.name)


def test_animated_fbx_main_file_names_action_after_the_take(scene: bpy.types.Scene, files: dict[str, Path]) -> None:
    result = importer.import_character(files["walking.fbx"], collection_name="FbxWalk", location=CURSOR)
    arm = assert_character_layout(result, scene, ["Walking"])
    assert scene.frame_end - scene.frame_start == 23
    assert_moves(arm, scene.frame_start, scene.frame_end, "Walking")


def test_animation_file_actions_replace_an_animated_main_file(scene: bpy.types.Scene,
                                                              files: dict[str, Path]) -> None:
    result = importer.import_character(files["walking.glb"], [("Jump", files["anim_Jump.glb"])],
                                       collection_name="Hero", location=CURSOR)
    arm = assert_character_layout(result, scene, ["Walking", "Jump"])
    jump = tracks_top_down(arm)[1]
    use_only_track(arm, jump)
    assert_moves(arm, 1, 20, "Jump")


def test_unrigged_model(scene: bpy.types.Scene, files: dict[str, Path]) -> None:
    before = counts()
    result = importer.import_character(files["model.glb"], collection_name="Statue", location=CURSOR)
    assert result.armature is None
    assert result.actions == []
    assert len(result.objects) == 1
    mesh = bpy.data.objects[result.objects[0]]
    assert mesh.type == "MESH"
    assert mesh.location.to_tuple() == pytest.approx(CURSOR)
    assert bpy.context.view_layer.objects.active == mesh
    assert mesh.select_get()
    assert list(mesh.users_collection) == [bpy.data.collections[result.collection]]
    assert grown(before) == {"objects": 1, "meshes": 1, "materials": 1, "images": 1, "collections": 1}


def test_import_next_to_existing_content(scene: bpy.types.Scene, files: dict[str, Path]) -> None:
    """Names taken by the artist's data get suffixes; the artist's data is neither renamed nor deleted."""
    cube = add_user_content(scene)
    taken = bpy.data.collections.new("Hero")
    scene.collection.children.link(taken)
    first = importer.import_character(files["rigged.glb"], [("Walking", files["walking.glb"])],
                                      collection_name="Hero", location=(0.0, 0.0, 0.0))
    before = counts()
    second = importer.import_character(files["rigged.glb"], [("Walking", files["walking.glb"])],
                                       collection_name="Hero", location=CURSOR)
    assert first.collection == "Hero.001" and second.collection == "Hero.002"
    assert first.actions == ["Walking"] and second.actions == ["Walking.001"]
    assert second.armature != first.armature
    assert grown(before) == {
        "objects": 2, "meshes": 1, "armatures": 1, "materials": 1, "images": 1, "actions": 1, "collections": 1,
    }
    assert bpy.data.objects.get("UserCube") == cube and not cube.select_get()
    first_arm = bpy.data.objects[first.armature or ""]
    assert first_arm.animation_data is not None and first_arm.animation_data.action is not None
    assert first_arm.animation_data.action.name == "Walking"
    second_arm = bpy.data.objects[second.armature or ""]
    assert bpy.context.view_layer.objects.active == second_arm
    assert sorted(o.name for o in bpy.context.view_layer.objects if o.select_get()) == sorted(second.objects)
    assert_moves(second_arm, 1, 24, "second character")


def test_import_from_edit_mode_and_with_explicit_context(scene: bpy.types.Scene, files: dict[str, Path]) -> None:
    add_user_content(scene)
    bpy.ops.object.mode_set(mode="EDIT")
    assert bpy.context.mode == "EDIT_MESH"
    result = importer.import_character(files["rigged.glb"], [("Run", files["running.glb"])],
                                       collection_name="Hero", location=CURSOR, context=bpy.context)
    assert bpy.context.mode == "OBJECT"
    assert bpy.context.view_layer.objects.active == armature_of(result)
    assert scene.render.fps == 30  # a GLB never changes the fps ...
    # ... and its keys keep their timing in seconds: frames 1-16 at 24 fps are frames 1.25-20 at 30 fps.
    arm = armature_of(result)
    assert arm.animation_data is not None and arm.animation_data.action is not None
    assert tuple(arm.animation_data.action.frame_range) == pytest.approx((1.25, 20.0))
    assert tracks_top_down(arm)[0].strips[0].frame_start == pytest.approx(1.25)
    assert (scene.frame_start, scene.frame_end) == (1, 20)


def test_many_animation_files_are_quick(scene: bpy.types.Scene, files: dict[str, Path], tmp_path: Path) -> None:
    sources = [files["walking.glb"], files["running.glb"], files["animation.glb"], files["anim_Wave.glb"],
               files["anim_Jump.glb"]]
    animations: list[tuple[str, Path]] = []
    for i in range(40):
        copy = tmp_path / f"anim_{i}.glb"
        shutil.copyfile(sources[i % len(sources)], copy)
        animations.append((f"Move {i:02d}", copy))
    before = counts()
    started = time.perf_counter()
    result = importer.import_character(files["rigged.glb"], animations, collection_name="Busy", location=CURSOR)
    elapsed = time.perf_counter() - started
    assert_character_layout(result, scene, [name for name, _ in animations])
    assert grown(before)["actions"] == 40
    assert grown(before)["objects"] == 2
    assert elapsed < 30.0, f"40 animation files took {elapsed:.1f}s"


# --------------------------------------------------------------------------------------------------
# failures leave the scene as it was
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["png", "random", "empty", "truncated_glb"])
def test_not_a_model_raises_before_touching_the_scene(scene: bpy.types.Scene, files: dict[str, Path],
                                                      tmp_path: Path, content: str) -> None:
    add_user_content(scene)
    bad = tmp_path / "result.glb"
    if content == "png":
        bad.write_bytes(files["sample.png"].read_bytes())
    elif content == "random":
        bad.write_bytes(bytes((i * 97 + 13) % 256 for i in range(4096)))
    elif content == "truncated_glb":
        bad.write_bytes(files["rigged.glb"].read_bytes()[:5000])
    else:
        bad.write_bytes(b"")
    before, state = counts(), scene_state(scene)
    with pytest.raises(ImportFailed, match=r"result\.glb"):
        importer.import_character(bad, collection_name="Hero", location=CURSOR)
    assert counts() == before and scene_state(scene) == state
    # The same for a bad animation file: checked before anything is imported.
    with pytest.raises(ImportFailed, match=r"result\.glb"):
        importer.import_character(files["rigged.glb"], [("Walking", bad)], collection_name="Hero", location=CURSOR)
    assert counts() == before and scene_state(scene) == state


def test_missing_file(scene: bpy.types.Scene, tmp_path: Path) -> None:
    before = counts()
    with pytest.raises(ImportFailed, match="missing"):
        importer.import_character(tmp_path / "nope.glb", collection_name="Hero", location=CURSOR)
    assert counts() == before


def test_corrupt_second_animation_rolls_everything_back(scene: bpy.types.Scene, files: dict[str, Path],
                                                        tmp_path: Path) -> None:
    add_user_content(scene)
    broken = tmp_path / "running.glb"
    glb_with_broken_json(broken)
    assert sniff_file(broken) == "glb"  # it gets past sniffing: the importer itself fails
    before, state = counts(), scene_state(scene)
    with pytest.raises(ImportFailed, match=r"running\.glb"):
        importer.import_character(files["rigged.glb"], [("Walking", files["walking.glb"]), ("Running", broken)],
                                  collection_name="Hero", location=CURSOR)
    assert counts() == before
    assert scene_state(scene) == state
    assert bpy.data.collections.get("Hero") is None


def test_failure_after_all_imports_rolls_back(scene: bpy.types.Scene, files: dict[str, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    add_user_content(scene)
    before, state = counts(), scene_state(scene)

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("simulated crash while laying out the NLA")

    monkeypatch.setattr(importer.animations, "layout_nla", explode)
    with pytest.raises(ImportFailed, match="simulated crash"):
        importer.import_character(files["rigged.fbx"], [("Walking", files["walking.fbx"])],
                                  collection_name="Hero", location=CURSOR)
    assert counts() == before
    assert scene_state(scene) == state


def nla_state(arm: bpy.types.Object) -> dict[str, Any]:
    """An armature's tracks (top down, with their strips' actions), active action and slot."""
    anim_data = arm.animation_data
    assert anim_data is not None
    slot = getattr(anim_data, "action_slot", None)
    return {
        "tracks": [(t.name, t.mute, [s.action.name if s.action is not None else None for s in t.strips])
                   for t in tracks_top_down(arm)],
        "action": anim_data.action.name if anim_data.action is not None else None,
        "slot": slot.identifier if slot is not None else None,
    }


def character_to_add_to(scene: bpy.types.Scene, files: dict[str, Path]) -> bpy.types.Object:
    """A character with two animations, then the artist's own frame range and selection."""
    result = importer.import_character(files["rigged.glb"], [("Walking", files["walking.glb"]),
                                                             ("Running", files["running.glb"])],
                                       collection_name="Hero", location=CURSOR)
    arm = armature_of(result)
    add_user_content(scene)
    return arm


def test_add_animations_failure_leaves_the_character_as_it_was(scene: bpy.types.Scene,
                                                               files: dict[str, Path]) -> None:
    """The second file fails once imported (it has no animation): the first one's action goes too."""
    arm = character_to_add_to(scene, files)
    before, state, nla = counts(), scene_state(scene), nla_state(arm)
    assert nla["action"] == "Walking" and [t[0] for t in nla["tracks"]] == ["Walking", "Running"]
    with pytest.raises(ImportFailed, match=r"rigged\.glb.*no animation"):
        importer.add_animations(arm.name, [("Jump", files["anim_Jump.glb"]), ("Idle", files["rigged.glb"])])
    assert counts() == before
    assert scene_state(scene) == state
    assert nla_state(arm) == nla
    assert_moves(arm, 1, 24, "Walking after the failed add")


def test_add_animations_crash_after_the_layout_rolls_back(scene: bpy.types.Scene, files: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure once the new tracks are laid out: they go, and the character's own come back as they were."""
    arm = character_to_add_to(scene, files)
    before, state, nla = counts(), scene_state(scene), nla_state(arm)
    real_layout = importer.animations.layout_nla
    calls: list[int] = []

    def layout_then_crash(*args: Any, **kwargs: Any) -> None:
        real_layout(*args, **kwargs)
        calls.append(len(args[1]))
        if len(calls) == 1:
            raise RuntimeError("simulated crash after the NLA layout")

    monkeypatch.setattr(importer.animations, "layout_nla", layout_then_crash)
    with pytest.raises(ImportFailed, match=r"^Could not add the animations: simulated crash after the NLA layout\. "
                                           r"The character was left as it was\.$"):
        importer.add_animations(arm.name, [("Jump", files["anim_Jump.glb"])])
    assert calls == [3, 2]  # laid out with the new action, then again with the character's own
    assert counts() == before
    assert scene_state(scene) == state
    assert nla_state(arm) == nla


def test_failure_restores_edit_mode(scene: bpy.types.Scene, files: dict[str, Path], tmp_path: Path) -> None:
    cube = add_user_content(scene)
    bpy.ops.object.mode_set(mode="EDIT")
    broken = tmp_path / "walking.glb"
    glb_with_broken_json(broken)
    before = counts()
    with pytest.raises(ImportFailed):
        importer.import_character(files["rigged.glb"], [("Walking", broken)], collection_name="Hero",
                                  location=CURSOR)
    assert counts() == before
    assert bpy.context.view_layer.objects.active == cube
    assert cube.mode == "EDIT"
    bpy.ops.object.mode_set(mode="OBJECT")


def test_animations_need_a_skeleton(scene: bpy.types.Scene, files: dict[str, Path]) -> None:
    before, state = counts(), scene_state(scene)
    with pytest.raises(ImportFailed, match="no skeleton"):
        importer.import_character(files["model.glb"], [("Walking", files["walking.glb"])],
                                  collection_name="Statue", location=CURSOR)
    assert counts() == before and scene_state(scene) == state


def test_animation_files_are_read_without_their_meshes(scene: bpy.types.Scene, files: dict[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """GLB animation files are imported from a copy without meshes and images (speed), same result."""
    imported: list[dict[str, Any]] = []
    sizes: list[int] = []
    real_run = importer.reading.run_importer

    def spy(path: Path, kind: str, **kwargs: Any) -> None:
        data = path.read_bytes()
        length = int.from_bytes(data[12:16], "little")
        imported.append(json.loads(data[20 : 20 + length]))
        sizes.append(len(data))
        real_run(path, kind, **kwargs)

    monkeypatch.setattr(importer.reading, "run_importer", spy)
    result = importer.import_character(files["rigged.glb"], [("Walking", files["walking.glb"])],
                                       collection_name="Hero", location=CURSOR)
    main_doc, anim_doc = imported
    assert main_doc.get("meshes") and main_doc.get("images")
    assert not anim_doc.get("meshes") and not anim_doc.get("images") and not anim_doc.get("materials")
    assert anim_doc.get("skins") and anim_doc.get("animations")
    assert sizes[1] < files["walking.glb"].stat().st_size // 2  # the mesh and texture bytes are gone too
    arm = assert_character_layout(result, scene, ["Walking"])
    assert_moves(arm, 1, 24, "Walking")


def test_whole_animation_file_when_it_cannot_be_slimmed(scene: bpy.types.Scene, files: dict[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer.gltf_slim, "write_skeleton_only_glb", lambda _source, _target: False)
    before = counts()
    result = importer.import_character(files["rigged.glb"], [("Walking", files["walking.glb"])],
                                       collection_name="Hero", location=CURSOR)
    arm = assert_character_layout(result, scene, ["Walking"])
    assert grown(before) == {
        "objects": 2, "meshes": 1, "armatures": 1, "materials": 1, "images": 1, "actions": 1, "collections": 1,
    }
    assert_moves(arm, 1, 24, "Walking")


def test_gltf_animation_switcher_lists_the_actions(scene: bpy.types.Scene, files: dict[str, Path]) -> None:
    """With the glTF add-on's animation switcher on, its list names exactly our tracks, and failures
    leave the list as it was."""
    addon = bpy.context.preferences.addons.get("io_scene_gltf2")
    if addon is None or not hasattr(addon.preferences, "animation_ui"):
        pytest.skip("this Blender's glTF add-on has no animation switcher")
    addon.preferences.animation_ui = True
    try:
        first_scene: Any = bpy.data.scenes[0]
        first_scene.gltf2_animation_tracks.add().name = "Existing"
        result = importer.import_character(files["multi.glb"], [("Extra", files["anim_Jump.glb"])],
                                           collection_name="Hero", location=CURSOR)
        assert [t.name for t in first_scene.gltf2_animation_tracks] == ["Existing", *result.actions]
        before = [t.name for t in first_scene.gltf2_animation_tracks]
        with pytest.raises(ImportFailed):
            importer.import_character(files["multi.glb"], [("Idle", files["rigged.glb"])],
                                      collection_name="Hero", location=CURSOR)
        assert [t.name for t in first_scene.gltf2_animation_tracks] == before
    finally:
        addon.preferences.animation_ui = False


def test_animation_file_without_animation(scene: bpy.types.Scene, files: dict[str, Path]) -> None:
    before = counts()
    with pytest.raises(ImportFailed, match="no animation"):
        importer.import_character(files["rigged.glb"], [("Idle", files["rigged.glb"])],
                                  collection_name="Hero", location=CURSOR)
    assert counts() == before
