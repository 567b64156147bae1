"""Image to rigged, animated character with Meshy, end to end: the installed extension, real bpy,
real HTTP to the local emulator. Asserts on the scene, the journal and what the emulator received."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import pytest

from tests.emulator import Emulator

IMAGE_POST = r"^/openapi/v1/image-to-3d$"


def choose_animations(ext_api: ModuleType, ids: set[int]) -> None:
    """Tick animations in the panel's library list (filled by the pump)."""
    import importlib

    importlib.import_module(ext_api.__name__.rpartition(".")[0] + ".blender.timer").pump()
    items = bpy.context.window_manager.marionette_library.items
    for item in items:
        item.selected = item.action_id in ids
    assert {i.action_id for i in items if i.selected} == ids


def _scene_armatures() -> list[bpy.types.Object]:
    return [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]


def _reference_image_empty(path: Path) -> bpy.types.Object:
    image = bpy.data.images.load(str(path))
    empty = bpy.data.objects.new("Ref", None)
    empty.empty_display_type = "IMAGE"
    empty.data = image
    bpy.context.scene.collection.objects.link(empty)
    bpy.context.view_layer.objects.active = empty
    empty.select_set(True)
    return empty


def _sent_image(emu: Emulator) -> bytes:
    task = next(t for t in emu.meshy.tasks.values() if t.kind == "image-to-3d")
    uri = task.request["image_url"]
    assert uri.startswith("data:image/")
    return base64.b64decode(uri.split(",", 1)[1])


def _check_character(info: Any, expected_actions: list[str], cursor: tuple[float, float, float]) -> None:
    assert info.state.value == "SUCCEEDED" and info.imported, info
    armatures = _scene_armatures()
    assert [a.name for a in armatures] == [info.armature]
    armature = armatures[0]
    assert info.actions == expected_actions
    tracks = armature.animation_data.nla_tracks
    assert len(tracks) == len(expected_actions)
    assert sorted(s.action.name for t in tracks for s in t.strips) == sorted(expected_actions)
    assert armature.animation_data.action.name == expected_actions[0]
    first = bpy.data.actions[expected_actions[0]]
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (int(first.frame_range[0]), int(first.frame_range[1]))
    collection = bpy.data.collections[info.collection]
    assert {o.name for o in collection.objects} == set(info.objects)
    assert any(o.type == "MESH" for o in collection.objects)
    bpy.context.view_layer.update()
    assert tuple(round(v, 4) for v in armature.matrix_world.translation) == cursor
    assert bpy.context.view_layer.objects.active == armature
    assert all(o.select_get() for o in collection.objects)
    assert len([o for o in bpy.data.objects if o.type == "ARMATURE"]) == 1  # nothing stray left


def test_generate_operator_from_reference_image(api: ModuleType, emulator: Emulator, assets: dict[str, Path]) -> None:
    _reference_image_empty(assets["sample.png"])
    bpy.context.scene.cursor.location = (1.0, 2.0, 0.0)
    props = bpy.context.scene.marionette
    props.rig = True
    choose_animations(ext_api=api, ids={0, 92})
    props.meshy_options.height_meters = 1.5
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    [job] = api.jobs()
    info = api.wait(job.id, timeout=120)
    _check_character(info, ["Idle", "Double_Combo_Attack", "Walking", "Running"], (1.0, 2.0, 0.0))
    assert info.collection == "sample"
    assert _sent_image(emulator) == assets["sample.png"].read_bytes()  # PNG goes as it is
    rig_task = next(t for t in emulator.meshy.tasks.values() if t.kind == "rig")
    assert rig_task.request["height_meters"] == 1.5
    anims = sorted(t.request["action_id"] for t in emulator.meshy.tasks.values() if t.kind == "animate")
    assert anims == [0, 92]
    armature = bpy.data.objects[info.armature]
    assert armature["marionette_rig_task_id"] == info.task_ids["rig"]


def test_api_with_a_file_path(api: ModuleType, emulator: Emulator, assets: dict[str, Path]) -> None:
    job_id = api.submit("meshy", image=str(assets["sample.jpg"]), rig=True, animations=["Attack"],
                        options={"ai_model": "meshy-5", "should_remesh": True, "target_polycount": 8000},
                        name="Knight")
    info = api.wait(job_id, timeout=120)
    _check_character(info, ["Attack", "Walking", "Running"], (0.0, 0.0, 0.0))
    assert info.collection == "Knight"
    sent = next(t for t in emulator.meshy.tasks.values() if t.kind == "image-to-3d").request
    assert sent["image_url"].startswith("data:image/jpeg;base64,")
    assert (sent["ai_model"], sent["should_remesh"], sent["target_polycount"]) == ("meshy-5", True, 8000)
    assert all(Path(f).is_file() for f in info.files)


def test_without_rig_imports_the_model(api: ModuleType, emulator: Emulator, assets: dict[str, Path]) -> None:
    info = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=False), timeout=60)
    assert info.state.value == "SUCCEEDED" and info.imported
    assert info.armature is None and not _scene_armatures()
    assert any(bpy.data.objects[name].type == "MESH" for name in info.objects)
    assert emulator.count("POST", r"^/openapi/v1/rigging$") == 0


def test_float_image_is_converted_to_png(api: ModuleType, emulator: Emulator) -> None:
    image = bpy.data.images.new("Plate", 16, 8, float_buffer=True)
    image.generated_color = (0.5, 0.25, 1.0, 1.0)
    info = api.wait(api.submit("meshy", image=image, rig=False), timeout=60)
    assert info.state.value == "SUCCEEDED"
    sent = _sent_image(emulator)
    assert sent.startswith(b"\x89PNG") and sent[16:24] == (16).to_bytes(4, "big") + (8).to_bytes(4, "big")


@pytest.mark.parametrize("content,message", [
    (None, "not found"), (b"", "empty"), (b"this is not an image", "not an image"),
])
def test_bad_image_files_are_refused_before_sending(api: ModuleType, emulator: Emulator, tmp_path: Path,
                                                    content: bytes | None, message: str) -> None:
    path = tmp_path / "input.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(Exception, match=message):
        api.submit("meshy", image=str(path))
    assert emulator.count() == 0
    assert api.jobs() == []


def test_operator_without_image_reports_and_sends_nothing(ext: ModuleType, emulator: Emulator) -> None:
    bpy.context.scene.marionette.source = "FILE"
    with pytest.raises(RuntimeError, match="No image"):
        bpy.ops.marionette.generate()
    assert emulator.count() == 0


def test_missing_key_and_online_access_block_before_sending(api: ModuleType, emulator: Emulator,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             assets: dict[str, Path]) -> None:
    monkeypatch.setenv("MARIONETTE_MESHY_BASE_URL", "https://api.meshy.ai")
    assert not bpy.ops.marionette.generate.poll()
    with pytest.raises(Exception, match="No Meshy API Key"):
        api.submit("meshy", image=str(assets["sample.png"]))
    monkeypatch.setenv("MARIONETTE_MESHY_API_KEY", "msy_example")
    assert not bpy.app.online_access
    assert not bpy.ops.marionette.generate.poll()
    with pytest.raises(Exception, match="Online access is off"):
        api.submit("meshy", image=str(assets["sample.png"]))
    assert emulator.count() == 0 and api.jobs() == []


def test_wrong_key_fails_with_a_clear_message(api: ModuleType, emulator: Emulator, assets: dict[str, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.meshy.api_key = "msy_right"
    monkeypatch.setenv("MARIONETTE_MESHY_API_KEY", "msy_wrong")
    info = api.wait(api.submit("meshy", image=str(assets["sample.png"])), timeout=30)
    assert info.state.value == "FAILED" and "API key was rejected (401)" in info.error
    assert "msy_wrong" not in info.error


def test_right_key_is_sent_as_bearer(api: ModuleType, emulator: Emulator, assets: dict[str, Path],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.meshy.api_key = "msy_right"
    monkeypatch.setenv("MARIONETTE_MESHY_API_KEY", "msy_right")
    info = api.wait(api.submit("meshy", image=str(assets["sample.png"])), timeout=60)
    assert info.state.value == "SUCCEEDED"
    downloads = [r for r in emulator.requests if r.path.startswith("/assets/")]
    assert downloads and not any(r.had_auth for r in downloads)  # the key never goes to asset links


def test_no_credits(api: ModuleType, emulator: Emulator, assets: dict[str, Path]) -> None:
    emulator.meshy.balance = 0
    info = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True), timeout=30)
    assert info.state.value == "FAILED" and "Not enough credits" in info.error
    assert not _scene_armatures()


def test_rate_limit_and_server_errors_are_retried(api: ModuleType, emulator: Emulator,
                                                  assets: dict[str, Path]) -> None:
    emulator.inject("POST", IMAGE_POST, status=429, body={"message": "RateLimitExceeded"},
                    headers={"Retry-After": "0"}, times=2)
    emulator.inject("GET", r"^/openapi/v1/image-to-3d/[^/]+$", status=503, body={"message": "busy"}, times=3)
    info = api.wait(api.submit("meshy", image=str(assets["sample.png"])), timeout=60)
    assert info.state.value == "SUCCEEDED" and info.imported
    assert emulator.count("POST", IMAGE_POST) == 3
    assert len([t for t in emulator.meshy.tasks.values() if t.kind == "image-to-3d"]) == 1


def test_provider_failure_shows_meshy_message_and_code(api: ModuleType, emulator: Emulator,
                                                       assets: dict[str, Path]) -> None:
    emulator.meshy.fail_next("image-to-3d", type="invalid_input", code="image_too_complex",
                             message="The uploaded image is too complex for 3D generation.")
    info = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True), timeout=30)
    assert info.state.value == "FAILED"
    assert "too complex" in info.error and info.error_code == "image_too_complex"
    assert emulator.count("POST", r"^/openapi/v1/rigging$") == 0
    assert not bpy.context.scene.objects


def test_rigging_pose_failure_is_explained(api: ModuleType, emulator: Emulator, assets: dict[str, Path]) -> None:
    emulator.inject("POST", r"^/openapi/v1/rigging$", status=422, body={"message": "Pose estimation failed"})
    info = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True), timeout=30)
    assert info.state.value == "FAILED" and "humanoid" in info.error


def test_queue_position_is_reported(api: ModuleType, emulator: Emulator, assets: dict[str, Path]) -> None:
    seen: list[int | None] = []
    api.wait(api.submit("meshy", image=str(assets["sample.png"])), timeout=60,
             on_change=lambda i: seen.append(i.queue_position))
    assert any(p for p in seen), seen


def test_cancel_stops_and_imports_nothing(api: ModuleType, session: Any, emulator: Emulator,
                                          assets: dict[str, Path]) -> None:
    job_id = api.submit("meshy", image=str(assets["sample.png"]), rig=True)
    for _ in range(500):
        if api.get(job_id).task_ids.get("image"):
            break
        session.runner.events.get(timeout=1)
    api.cancel(job_id)
    info = api.wait(job_id, timeout=30)
    assert info.state.value == "CANCELED"
    assert emulator.count("DELETE") >= 1
    for _ in range(20):
        api.wait(job_id, timeout=1)
    assert not bpy.context.scene.objects and not info.imported


def test_double_click_makes_one_job(api: ModuleType, emulator: Emulator, assets: dict[str, Path]) -> None:
    bpy.context.scene.marionette.source = "FILE"
    bpy.context.scene.marionette.image_path = str(assets["sample.png"])
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    assert len(api.jobs()) == 1
    api.wait(api.jobs()[0].id, timeout=60)
    assert emulator.count("POST", IMAGE_POST) == 1


def test_restart_resumes_without_submitting_twice(api: ModuleType, ext: ModuleType, emulator: Emulator,
                                                  assets: dict[str, Path]) -> None:
    import importlib

    from tests.support import blender_install

    job_id = api.submit("meshy", image=str(assets["sample.png"]), rig=True, animations=["Idle"])
    session_mod = importlib.import_module(ext.__name__ + ".blender.session")
    for _ in range(500):
        if api.get(job_id).task_ids.get("rig"):
            break
        session_mod.get().runner.events.get(timeout=1)
    # Blender quits mid-job: the add-on is disabled (workers stop), then enabled again at the next start.
    import addon_utils  # type: ignore[import-not-found]

    addon_utils.disable(ext.__name__, default_set=True)
    journal = json.loads((session_mod.user_folder() / "journal.json").read_text())
    assert [j["state"] for j in journal["jobs"] if j["id"] == job_id] == ["RUNNING"]
    addon_utils.enable(ext.__name__, default_set=True)
    assert ext.__name__ in blender_install.enabled_addons()
    info = api.wait(job_id, timeout=120)
    assert info.state.value == "SUCCEEDED"
    assert not info.imported  # a job from an earlier session is offered, not dropped into this scene
    assert emulator.count("POST", IMAGE_POST) == 1 and emulator.count("POST", r"^/openapi/v1/rigging$") == 1
    info = api.import_result(job_id)
    _check_character(info, ["Idle", "Walking", "Running"], (0.0, 0.0, 0.0))


def test_keys_stay_out_of_journal_logs_and_blend(api: ModuleType, ext: ModuleType, session: Any,
                                                 emulator: Emulator, assets: dict[str, Path],
                                                 tmp_path: Path) -> None:
    secret = "msy_SUPER_SECRET_KEY_42"
    emulator.meshy.api_key = secret
    prefs = bpy.context.preferences.addons[ext.__name__].preferences
    prefs.meshy_api_key = secret  # typed into the password field
    assert prefs.meshy_api_key == secret
    info = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True), timeout=120)
    assert info.state.value == "SUCCEEDED"
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.save_userpref()
    user_root = Path(bpy.utils.resource_path("USER"))
    checked = 0
    for path in [blend, *user_root.rglob("*"), *session.root.rglob("*")]:
        if path.is_file() and path.name != "keys.json":
            assert secret.encode() not in path.read_bytes(), path
            checked += 1
    assert checked > 5
    assert secret in (session.root / "keys.json").read_text()
    prefs.meshy_api_key = ""
