"""Issue 4 end to end, per provider and input kind, in real bpy against the emulator: submit, poll,
download, import (or load images for Claid), and assert on the scene and on what each provider got."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import pytest

from tests.emulator import Emulator


def _meshes_and_armatures() -> tuple[int, int]:
    objects = bpy.context.scene.objects
    return (sum(o.type == "MESH" for o in objects), sum(o.type == "ARMATURE" for o in objects))


def _static_model(info: Any) -> None:
    assert info.state.value == "SUCCEEDED" and info.imported, info
    meshes, _armatures = _meshes_and_armatures()
    assert meshes >= 1
    assert set(info.objects) == {o.name for o in bpy.data.collections[info.collection].objects}


def _reference_empty(path: Path, name: str) -> bpy.types.Object:
    empty = bpy.data.objects.new(name, None)
    empty.empty_display_type = "IMAGE"
    empty.data = bpy.data.images.load(str(path))
    bpy.context.scene.collection.objects.link(empty)
    empty.select_set(True)
    return empty


def test_meshy_multi_image_from_selected_reference_images(api: ModuleType, emulator: Emulator,
                                                          assets: dict[str, Path]) -> None:
    _reference_empty(assets["sample.png"], "view_1")
    _reference_empty(assets["sample.jpg"], "view_2")
    props = bpy.context.scene.marionette
    props.input = "multi_image"
    props.rig = True
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    [job] = api.jobs()
    info = api.wait(job.id, timeout=120)
    assert info.state.value == "SUCCEEDED" and info.armature, info
    [task] = [t for t in emulator.meshy.tasks.values() if t.kind == "multi-image-to-3d"]
    urls = task.request["image_urls"]
    assert [u.split(";")[0] for u in urls] == ["data:image/png", "data:image/jpeg"]
    assert base64.b64decode(urls[0].split(",", 1)[1]) == assets["sample.png"].read_bytes()


def test_meshy_text_preview_then_refine_from_the_panel(api: ModuleType, emulator: Emulator) -> None:
    props = bpy.context.scene.marionette
    props.input = "text"
    props.prompt = "a knight in silver armour"
    props.rig = False
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    info = api.wait(api.jobs()[0].id, timeout=60)
    _static_model(info)
    kinds = sorted(t.kind for t in emulator.meshy.tasks.values())
    assert kinds == ["text-to-3d-preview", "text-to-3d-refine"]
    assert info.collection == "a knight in silver armour"


def test_prompt_over_the_limit_is_refused(api: ModuleType, emulator: Emulator) -> None:
    with pytest.raises(Exception, match="600"):
        api.submit("meshy", prompt="x" * 601)
    assert emulator.count() == 0


def test_rodin_image_to_glb(api: ModuleType, emulator: Emulator, assets: dict[str, Path]) -> None:
    info = api.wait(api.submit("rodin", image=str(assets["sample.png"]), options={"tier": "Gen-2"}), timeout=60)
    _static_model(info)
    [task] = emulator.rodin.tasks.values()
    assert len(task.images) == 1 and task.fields["tier"] == ["Gen-2"]
    assert task.fmt == "glb"


def test_rodin_multi_image_to_fbx(api: ModuleType, emulator: Emulator, assets: dict[str, Path]) -> None:
    info = api.wait(api.submit("rodin", image=[str(assets["sample.png"]), str(assets["sample.jpg"])],
                               options={"geometry_file_format": "fbx"}), timeout=60)
    _static_model(info)
    [task] = emulator.rodin.tasks.values()
    assert len(task.images) == 2 and task.fmt == "fbx"
    assert any(Path(f).suffix == ".fbx" for f in info.files)


def test_rodin_text_with_bounding_box_from_selection(api: ModuleType, emulator: Emulator) -> None:
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube.scale = (1.0, 0.5, 2.0)  # dimensions 2 x 1 x 4
    bpy.context.view_layer.update()
    props = bpy.context.scene.marionette
    props.provider = "rodin"
    assert bpy.ops.marionette.fill_option(provider="rodin", option="bbox_condition") == {"FINISHED"}
    assert props.rodin_options.bbox_condition == "25, 100, 50"  # width (Y), height (Z), length (X)
    props.input = "text"
    props.prompt = "a wooden chest"
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    info = api.wait(api.jobs()[0].id, timeout=60)
    _static_model(info)
    [task] = emulator.rodin.tasks.values()
    assert task.fields["prompt"] == ["a wooden chest"]
    assert json.loads(task.fields["bbox_condition"][0]) == [25, 100, 50]


def test_claythis_one_glb_many_animations_on_one_armature(api: ModuleType, emulator: Emulator,
                                                          assets: dict[str, Path]) -> None:
    manifest = json.loads(assets["manifest.json"].read_text())
    expected = [name for name, _start, _end in manifest["multi.glb"]]
    info = api.wait(api.submit("claythis", image=str(assets["sample.png"]), rig=True,
                               options={"motions": "Idle_Loop_Rig, Walk_Loop_Rig"}), timeout=60)
    assert info.state.value == "SUCCEEDED" and info.imported, info
    assert _meshes_and_armatures()[1] == 1
    assert sorted(info.actions) == sorted(expected)
    arm = bpy.data.objects[info.armature]
    assert len(arm.animation_data.nla_tracks) == len(expected)
    [task] = emulator.claythis.tasks.values()
    assert task.motions == ["Idle_Loop_Rig", "Walk_Loop_Rig"] and task.image is not None


def test_image3d_image_and_text(api: ModuleType, emulator: Emulator, assets: dict[str, Path]) -> None:
    _static_model(api.wait(api.submit("image3d", image=str(assets["sample.png"]),
                                      options={"quality": "fast"}), timeout=60))
    bpy.ops.wm.read_homefile(use_empty=True)
    _static_model(api.wait(api.submit("image3d", prompt="a teapot"), timeout=60))
    modes = sorted((t.mode, t.quality) for t in emulator.image3d.tasks.values())
    assert modes == [("image", "fast"), ("text", "pro")]


def test_image3d_expired_token_says_how_to_get_a_new_one(api: ModuleType, emulator: Emulator,
                                                         assets: dict[str, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.image3d.api_key = "fresh-token"
    monkeypatch.setenv("MARIONETTE_IMAGE3D_API_KEY", "stale-token")
    info = api.wait(api.submit("image3d", image=str(assets["sample.png"])), timeout=30)
    assert info.state.value == "FAILED" and "expired" in info.error and "image3d.io" in info.error
    assert "stale-token" not in info.error


def test_claid_scene_images_are_loaded_and_offered(api: ModuleType, emulator: Emulator,
                                                   assets: dict[str, Path]) -> None:
    bpy.ops.object.camera_add()
    bpy.context.scene.camera = bpy.context.active_object
    info = api.wait(api.submit("claid", image=str(assets["sample.png"]),
                               options={"prompt": "marble countertop, soft light", "number_of_images": 2}),
                    timeout=60)
    assert info.state.value == "SUCCEEDED" and info.imported, info
    assert len(info.images) == 2 and all(name in bpy.data.images for name in info.images)
    assert all(bpy.data.images[name].size[0] > 0 for name in info.images)
    [scene] = emulator.claid.scenes
    assert scene.request["output"]["number_of_images"] == 2
    assert scene.request["scene"]["prompt"] == "marble countertop, soft light"
    assert bpy.ops.marionette.use_image(image=info.images[0], target="REFERENCE") == {"FINISHED"}
    assert bpy.context.active_object.data == bpy.data.images[info.images[0]]
    assert bpy.ops.marionette.use_image(image=info.images[1], target="CAMERA") == {"FINISHED"}
    backgrounds = bpy.context.scene.camera.data.background_images
    assert [b.image.name for b in backgrounds] == [info.images[1]]


def test_inputs_offered_follow_the_provider(ext: ModuleType) -> None:
    import importlib

    settings = importlib.import_module(ext.__name__ + ".blender.settings")
    props = bpy.context.scene.marionette
    offered = {}
    for provider_id in ("meshy", "rodin", "claythis", "image3d", "claid"):
        props.provider = provider_id
        offered[provider_id] = {item[0] for item in settings._input_items(props, bpy.context)}
    assert offered == {
        "meshy": {"image", "multi_image", "text", "mesh"},
        "rodin": {"image", "multi_image", "text"},
        "claythis": {"image"},
        "image3d": {"image", "text"},
        "claid": {"image"},
    }


def test_balance_is_shown(ext: ModuleType, emulator: Emulator) -> None:
    import importlib

    account = importlib.import_module(ext.__name__ + ".blender.account")
    emulator.meshy.balance = 777
    assert bpy.ops.marionette.check_balance(provider="meshy") == {"FINISHED"}
    assert account.wait("meshy") == "Balance: 777 credits"
    assert bpy.ops.marionette.check_balance(provider="rodin") == {"FINISHED"}
    assert (account.wait("rodin") or "").startswith("Balance: 100")


def test_claythis_motion_picker_in_the_panel(api: ModuleType, ext: ModuleType, emulator: Emulator,
                                             assets: dict[str, Path]) -> None:
    import importlib

    timer = importlib.import_module(ext.__name__ + ".blender.timer")
    props = bpy.context.scene.marionette
    props.provider = "claythis"
    props.source, props.image_path = "FILE", str(assets["sample.png"])
    timer.pump()
    items = bpy.context.window_manager.marionette_library.items
    names = [i.name for i in items]
    assert "Idle_Loop_Rig" in names and len(names) > 50  # the known Quaternius motions
    for item in items:
        item.selected = item.name in ("Idle_Loop_Rig", "Jog_Fwd_Loop_Rig")
    props.claythis_options.motions = "Wave_Rig"  # free entry beside the picker
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    info = api.wait(api.jobs()[0].id, timeout=60)
    assert info.state.value == "SUCCEEDED" and info.armature, info
    [task] = emulator.claythis.tasks.values()
    assert sorted(task.motions or []) == ["Idle_Loop_Rig", "Jog_Fwd_Loop_Rig", "Wave_Rig"]
    props.provider = "meshy"
    timer.pump()
    assert "Idle_Loop_Rig" not in [i.name for i in bpy.context.window_manager.marionette_library.items]
