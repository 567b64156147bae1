"""Apply to My Rig and Animate My Rig in the installed extension: the operators, the panel section, the
bone map presets, and the library's animations fetched (reused or made) and retargeted as one job."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import bpy
import pytest

from tests.e2e.test_mesh_rigging import _textured_material
from tests.e2e.test_meshy_flow import choose_animations
from tests.e2e.test_panel_draw import Recorder, draw_all
from tests.e2e.test_retarget import FACING, UNREAL, _compare, build_source, build_target
from tests.emulator import Emulator


class _ListRecorder(Recorder):
    def _child(self, *_args: Any, **_kwargs: Any) -> _ListRecorder:
        return _ListRecorder(self.calls)

    row = column = box = split = _child

    def prop_search(self, data: Any, name: str, search_data: Any, search_name: str, **_kwargs: Any) -> None:
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.calls.append(("prop_search", name))


def _draw(ext: ModuleType) -> list[tuple[str, Any]]:
    ui = importlib.import_module(ext.__name__ + ".blender.retarget_ui")
    calls: list[tuple[str, Any]] = []
    ui.MARIONETTE_PT_retarget.draw(SimpleNamespace(layout=_ListRecorder(calls)), bpy.context)
    settings = bpy.context.scene.marionette_retarget
    for item in settings.bones:
        ui.MARIONETTE_UL_bone_map.draw_item(None, bpy.context, _ListRecorder(calls), settings, item, 0, settings,
                                            "bones_index")
    for item in settings.actions:
        ui.MARIONETTE_UL_retarget_actions.draw_item(None, bpy.context, _ListRecorder(calls), settings, item, 0,
                                                    settings, "actions_index")
    return calls


def _message(session: Any) -> str:
    said = session.panel_message
    return said[1] if said else ""


def test_apply_to_my_rig_from_the_panel_with_an_edited_map_and_presets(ext: ModuleType, session: Any,
                                                                       tmp_path: Path) -> None:
    source = build_source()
    target, _names = build_target("unreal")
    settings = bpy.context.scene.marionette_retarget
    bpy.context.view_layer.objects.active = target
    assert bpy.ops.marionette.retarget_map() == {"FINISHED"}  # the pickers fill themselves
    assert (settings.source, settings.target) == (source, target)
    pairs = {b.source: b.target for b in settings.bones}
    assert pairs == UNREAL
    assert {b.role for b in settings.bones if b.source == "LeftUpperArm"} == {"upper_arm.L"}
    assert "root" in settings.unmapped.split("\n") and "ball_l" in settings.unmapped.split("\n")
    assert [a.name for a in settings.actions] == ["Walking", "Dance", "Jump", "WalkForward"]
    calls = _draw(ext)
    operators = {c[1] for c in calls if c[0] == "operator"}
    assert {"marionette.retarget", "marionette.retarget_map", "marionette.retarget_save_map",
            "marionette.retarget_load_map", "marionette.animate_my_rig"} <= operators
    assert ("list", "bones") in calls and ("list", "actions") in calls and ("prop_search", "target") in calls
    labels = " | ".join(str(c[1]) for c in calls if c[0] == "label")
    assert "6 bones of my rig stay at rest:" in labels and "root" in labels
    assert "animated bones drive nothing" not in labels  # every bone of the source is used
    # The artist edits: Dance unticked, the right hand not driven.
    next(a for a in settings.actions if a.name == "Dance").use = False
    next(b for b in settings.bones if b.source == "RightHand").target = ""
    preset = tmp_path / "my_map.json"
    assert bpy.ops.marionette.retarget_save_map(filepath=str(preset)) == {"FINISHED"}
    saved = json.loads(preset.read_text(encoding="utf-8"))
    assert saved["format"] == "marionette-bone-map" and len(saved["bones"]) == len(UNREAL) - 1
    assert bpy.ops.marionette.retarget() == {"FINISHED"}
    made = [s.action.name for t in target.animation_data.nla_tracks for s in t.strips]
    assert sorted(made) == ["MyRig|Jump", "MyRig|WalkForward", "MyRig|Walking"]
    keyed = {c.data_path.split('"')[1] for c in _curves(bpy.data.actions["MyRig|Walking"])}
    assert "hand_r" not in keyed and "hand_l" in keyed
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (1, 24)
    # A rig whose bones copy other bones (a generated Rigify rig's DEF- bones): said, since keys do nothing.
    copy = target.pose.bones["thigh_l"].constraints.new("COPY_ROTATION")
    copy.target, copy.subtarget = target, "root"
    assert bpy.ops.marionette.retarget() == {"FINISHED"}
    assert "constraints of 1 of its bones override the keys (thigh_l" in _message(session)
    target.pose.bones["thigh_l"].constraints.remove(copy)
    # Load the preset after a fresh automatic map: the right hand is left out again.
    assert bpy.ops.marionette.retarget_map() == {"FINISHED"}
    assert len(settings.bones) == len(UNREAL)
    assert bpy.ops.marionette.retarget_load_map(filepath=str(preset)) == {"FINISHED"}
    assert "RightHand" not in {b.source for b in settings.bones}


def test_apply_to_my_rig_refuses_bad_input_with_a_message(ext: ModuleType, session: Any, tmp_path: Path) -> None:
    source = build_source(("Walking",))
    target, _names = build_target("unreal")
    settings = bpy.context.scene.marionette_retarget
    settings.source = source
    actions_before = len(bpy.data.actions)
    with pytest.raises(RuntimeError, match="Pick your rig"):
        bpy.ops.marionette.retarget()
    assert "Pick your rig" in _message(session)
    mesh = bpy.data.objects.new("Mesh", bpy.data.meshes.new("Mesh"))
    bpy.context.scene.collection.objects.link(mesh)
    with pytest.raises(RuntimeError, match="not an armature"):
        bpy.ops.marionette.retarget(target="Mesh")
    settings.target = target
    assert bpy.ops.marionette.retarget_map() == {"FINISHED"}
    for item in settings.actions:
        item.use = False
    with pytest.raises(RuntimeError, match="Tick at least one action"):
        bpy.ops.marionette.retarget()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    settings.target = target
    with pytest.raises(RuntimeError, match="not valid JSON"):
        bpy.ops.marionette.retarget_load_map(filepath=str(bad))
    assert len(bpy.data.actions) == actions_before and target.animation_data is None


def _curves(action: bpy.types.Action) -> list[Any]:
    if hasattr(action, "layers") and len(action.layers):
        return [c for layer in action.layers for strip in layer.strips for bag in strip.channelbags
                for c in bag.fcurves]
    return list(action.fcurves)


def _job_for(api: ModuleType, before: set[str]) -> str:
    [job_id] = [j.id for j in api.jobs() if j.id not in before]
    return job_id


def test_animate_my_rig_reuses_a_marionette_character(api: ModuleType, emulator: Emulator,
                                                      assets: dict[str, Path]) -> None:
    first = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True), timeout=120)
    character = bpy.data.objects[first.armature]
    target, names = build_target("unreal")
    choose_animations(ext_api=api, ids={92})
    bpy.context.view_layer.objects.active = target
    assert bpy.ops.marionette.animate_my_rig.poll()
    extension = importlib.import_module(api.__name__.rpartition(".")[0])
    main_panel = [c[1] for c in draw_all(extension) if c[0] == "operator"]
    assert "marionette.animate_my_rig" in main_panel and "marionette.add_animations" not in main_panel
    before = {j.id for j in api.jobs()}
    assert bpy.ops.marionette.animate_my_rig() == {"FINISHED"}
    info = api.wait(_job_for(api, before), timeout=120)
    assert info.state.value == "SUCCEEDED" and info.imported, info
    assert info.stage == "On MyRig: 1 animation"
    assert info.armature == character.name  # the animation went on the Marionette character first
    assert target.animation_data.action.name == "MyRig|Double_Combo_Attack"
    assert target.get("marionette_retarget_job") is None
    worst, drift = _compare(character, target, names, bpy.data.actions["Double_Combo_Attack"],
                            target.animation_data.action, FACING["unreal"])
    assert worst < 2.0 and drift < 0.01
    # Already on the character: retargeted at once, nothing bought again.
    posts = emulator.count("POST", r"^/openapi/v1/animations$")
    before = {j.id for j in api.jobs()}
    assert bpy.ops.marionette.animate_my_rig() == {"FINISHED"}
    assert {j.id for j in api.jobs()} == before
    assert emulator.count("POST", r"^/openapi/v1/animations$") == posts
    assert target.animation_data.action.name == "MyRig|Double_Combo_Attack.001"


def test_animate_my_rig_makes_a_marionette_rig_from_the_artists_mesh(api: ModuleType, emulator: Emulator,
                                                                     session: Any) -> None:
    target, _names = build_target("unreal")
    bpy.ops.mesh.primitive_cube_add(size=0.5, location=(2.0, 0.5, 1.0))
    body = bpy.context.active_object
    body.name = "MyBody"
    body.modifiers.new("Armature", "ARMATURE").object = target
    body.data.materials.append(_textured_material())
    body.vertex_groups.new(name="pelvis").add(list(range(len(body.data.vertices))), 1.0, "REPLACE")
    target.pose.bones["pelvis"].scale = (2.0, 2.0, 2.0)  # the rig is posed: the mesh shows twice its size
    bpy.context.view_layer.update()
    choose_animations(ext_api=api, ids={92})
    bpy.context.view_layer.objects.active = target
    before = {j.id for j in api.jobs()}
    assert bpy.ops.marionette.animate_my_rig() == {"FINISHED"}
    job_id = _job_for(api, before)
    assert target.data.pose_position == "POSE"
    info = api.wait(job_id, timeout=120)
    sent = next(t for t in emulator.meshy.tasks.values() if t.kind == "rig").request
    assert sent["height_meters"] == pytest.approx(0.5, abs=0.01)  # Meshy got the rest shape
    assert info.state.value == "SUCCEEDED" and info.imported, info
    assert info.stage == "On MyRig: 1 animation"
    assert emulator.count("POST", r"^/openapi/v1/rigging$") == 1
    assert target.animation_data.action.name == "MyRig|Double_Combo_Attack"
    made = bpy.data.objects[info.armature]
    assert made.hide_get() and not body.hide_get()  # the helper character is hidden, the artist's mesh is not


def test_animate_my_rig_refusals_send_nothing(api: ModuleType, emulator: Emulator, session: Any) -> None:
    target, _names = build_target("unreal")
    bpy.context.view_layer.objects.active = target
    choose_animations(ext_api=api, ids=set())
    with pytest.raises(RuntimeError, match="Tick the animations"):
        bpy.ops.marionette.animate_my_rig()
    choose_animations(ext_api=api, ids={92})
    with pytest.raises(RuntimeError, match="no mesh deformed by MyRig"):  # no Marionette rig, no mesh
        bpy.ops.marionette.animate_my_rig()
    assert "no mesh deformed by MyRig" in _message(session)
    stick = bpy.data.objects.new("Stick", bpy.data.armatures.new("Stick"))
    bpy.context.scene.collection.objects.link(stick)
    bpy.context.view_layer.objects.active = stick
    with pytest.raises(RuntimeError, match="hips and both legs of Stick"):
        bpy.ops.marionette.animate_my_rig()
    assert emulator.count() == 0 or all(r.method == "GET" for r in emulator.requests)
    assert api.jobs() == []


@pytest.fixture(autouse=True)
def _clean_settings(ext: ModuleType) -> None:
    settings = bpy.context.scene.marionette_retarget
    settings.bones.clear()
    settings.actions.clear()


def test_animate_my_rig_survives_a_restart_and_a_failed_job(api: ModuleType, ext: ModuleType, emulator: Emulator,
                                                            assets: dict[str, Path]) -> None:
    retarget_jobs = importlib.import_module(ext.__name__ + ".blender.retarget_jobs")
    api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True), timeout=120)
    target, _names = build_target("unreal")
    choose_animations(ext_api=api, ids={92})
    bpy.context.view_layer.objects.active = target
    before = {j.id for j in api.jobs()}
    assert bpy.ops.marionette.animate_my_rig() == {"FINISHED"}
    job_id = _job_for(api, before)
    assert json.loads(target["marionette_retarget_job"])["job"] == job_id
    retarget_jobs.reset()  # as after a restart: only the armature remembers what it waits for
    info = api.wait(job_id, timeout=120)
    assert info.stage == "On MyRig: 1 animation"
    assert target.animation_data.action.name == "MyRig|Double_Combo_Attack"
    # A job that fails: nothing retargeted, the armature waits no more.
    choose_animations(ext_api=api, ids={0})
    emulator.meshy.fail_next("animate", message="No such motion today")
    actions = len(bpy.data.actions)
    before = {j.id for j in api.jobs()}
    assert bpy.ops.marionette.animate_my_rig() == {"FINISHED"}
    info = api.wait(_job_for(api, before), timeout=120)
    assert info.state.value == "FAILED" and "No such motion today" in (info.error or "")
    api.wait(info.id, timeout=5)
    assert target.get("marionette_retarget_job") is None
    assert len(bpy.data.actions) == actions


def test_api_retarget_from_the_console(api: ModuleType) -> None:
    source = build_source(("Walking", "Jump"))
    target, _names = build_target("mixamo_fbx")
    assert "retarget" in api.__all__
    assert api.retarget(source.name, target.name, actions=["Jump"], in_place=True) == ["MyRig|Jump"]
    assert target.animation_data.action.name == "MyRig|Jump"
    bare, _ = build_target("unreal")
    with pytest.raises(Exception, match="has no actions to retarget"):
        api.retarget(bare, target)
    assert api.retarget(target, bare) == [f"{bare.name}|MyRig|Jump"]  # and on again, from the result
