"""Issue 3 end to end: the selected mesh goes out, comes back rigged in its place; the animation
library; many animations on one armature; adding animations later; bad inputs send nothing."""

from __future__ import annotations

import base64
import importlib
import json
import math
import struct
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import pytest
from mathutils import Matrix

from tests.emulator import Emulator

RIG_POST = r"^/openapi/v1/rigging$"


def _textured_material() -> bpy.types.Material:
    image = bpy.data.images.new("Skin", 16, 16)
    image.generated_color = (0.8, 0.5, 0.3, 1.0)
    mat = bpy.data.materials.new("Skin")
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True  # 5.0 materials always have nodes (and deprecate the flag)
    tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
    tex.image = image
    mat.node_tree.links.new(tex.outputs["Color"], mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"])
    return mat


def make_character(location: tuple[float, float, float] = (2.0, -1.0, 0.0)) -> list[bpy.types.Object]:
    """A crude two-part 'character' (body, head), textured, looking toward +X."""
    mat = _textured_material()
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=location)
    body = bpy.context.active_object
    body.name = "Body"
    body.data.transform(Matrix.Translation((0.0, 0.0, 0.5)))  # origin at the feet
    body.scale = (0.3, 0.6, 1.2)  # shoulders across Y: the character looks along +X
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.2, location=(location[0], location[1], location[2] + 1.45))
    head = bpy.context.active_object
    head.name = "Head"
    for obj in (body, head):
        obj.data.materials.append(mat)
    bpy.ops.object.select_all(action="DESELECT")
    body.select_set(True)
    head.select_set(True)
    bpy.context.view_layer.objects.active = body
    bpy.context.view_layer.update()
    assert body is not None and head is not None
    return [body, head]


def _glb_json(data: bytes) -> dict[str, Any]:
    assert data[:4] == b"glTF"
    length = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[20:20 + length])


def _data_uri_bytes(uri: str) -> bytes:
    assert uri.startswith("data:")
    return base64.b64decode(uri.split(",", 1)[1])


def _counts() -> dict[str, int]:
    return {name: len(getattr(bpy.data, name)) for name in
            ("objects", "meshes", "armatures", "materials", "images", "actions", "collections")}


def _task_requests(emu: Emulator, kind: str) -> list[dict[str, Any]]:
    return [t.request for t in emu.meshy.tasks.values() if t.kind == kind]


def _pump(api: ModuleType) -> None:
    importlib.import_module(api.__name__.rpartition(".")[0] + ".blender.timer").pump()


def test_selected_mesh_comes_back_rigged_in_place(api: ModuleType, emulator: Emulator) -> None:
    body, head = make_character()
    vertices_before = (len(body.data.vertices), len(head.data.vertices))
    props = bpy.context.scene.marionette
    props.input = "mesh"
    props.mesh_facing = "+X"
    _pump(api)
    for item in bpy.context.window_manager.marionette_library.items:
        item.selected = item.action_id == 0
    assert bpy.ops.marionette.rig_selected_mesh() == {"FINISHED"}
    [job] = api.jobs()
    info = api.wait(job.id, timeout=120)
    assert info.state.value == "SUCCEEDED" and info.imported, info

    assert emulator.count("POST", r"^/openapi/v1/image-to-3d$") == 0
    [rig_request] = _task_requests(emulator, "rig")
    doc = _glb_json(_data_uri_bytes(rig_request["model_url"]))
    assert len(doc["meshes"]) == 1 and len(doc["nodes"]) == 1  # the two meshes joined on export
    position = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    extent = [hi - lo for lo, hi in zip(position["min"], position["max"], strict=True)]
    # Shoulders lay across Blender Y (0.6 m); turned to look along glTF +Z they lie across glTF X.
    assert extent[0] == pytest.approx(0.6, abs=0.01) and extent[2] == pytest.approx(0.4, abs=0.01)
    assert rig_request["height_meters"] == pytest.approx(1.65, abs=0.01)
    assert _data_uri_bytes(rig_request["texture_image_url"])[:4] == b"\x89PNG"

    arm = bpy.data.objects[info.armature]
    bpy.context.view_layer.update()
    assert tuple(round(v, 4) for v in arm.matrix_world.translation) == (2.0, -1.0, 0.0)
    assert arm.matrix_world.to_euler().z == pytest.approx(math.pi / 2, abs=1e-4)  # turned back to +X
    assert info.actions == ["Idle", "Walking", "Running"]
    # The originals are hidden, not deleted, and untouched.
    assert body.hide_get() and head.hide_get() and body.hide_render
    assert (len(body.data.vertices), len(head.data.vertices)) == vertices_before
    assert (body.location.x, body.location.y, body.location.z) == (2.0, -1.0, 0.0)
    assert not [o for o in bpy.data.objects if o.name.endswith("_export")]
    assert "Marionette Export" not in bpy.data.collections


def test_many_animations_end_on_one_armature(api: ModuleType, emulator: Emulator) -> None:
    objects = make_character()
    _pump(api)
    catalog_ids = [i.action_id for i in bpy.context.window_manager.marionette_library.items][:8]
    before = _counts()
    info = api.wait(api.submit("meshy", mesh=[o.name for o in objects], animations=catalog_ids,
                               options={"hide_original": False}), timeout=180)
    assert info.state.value == "SUCCEEDED", info
    after = _counts()
    assert len(info.actions) == len(catalog_ids) + 2 == len(set(info.actions))
    arm = bpy.data.objects[info.armature]
    assert len(arm.animation_data.nla_tracks) == len(info.actions)
    assert after["armatures"] - before["armatures"] == 1
    assert after["actions"] - before["actions"] == len(info.actions)
    assert after["objects"] - before["objects"] == len(info.objects)
    # Only the rigged file's materials and images arrive: the animation files leave nothing behind.
    assert after["materials"] - before["materials"] <= 1 and after["images"] - before["images"] <= 1
    assert not objects[0].hide_get()  # hide_original=False
    assert len(_task_requests(emulator, "animate")) == len(catalog_ids)


@pytest.mark.parametrize("case,message", [
    ("nothing", "Select the character's mesh"),
    ("camera", "is a camera, not a mesh"),
    ("no_faces", "has no faces"),
    ("untextured", "textured characters"),
])
def test_bad_mesh_input_is_refused_before_sending(api: ModuleType, emulator: Emulator, case: str,
                                                  message: str) -> None:
    target: list[Any]
    if case == "nothing":
        target = []
    elif case == "camera":
        cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
        bpy.context.scene.collection.objects.link(cam)
        target = [cam]
    elif case == "no_faces":
        mesh = bpy.data.meshes.new("Points")
        mesh.from_pydata([(0, 0, 0), (0, 0, 1), (1, 0, 0)], [(0, 1)], [])
        obj = bpy.data.objects.new("Points", mesh)
        obj.data.materials.append(_textured_material())
        bpy.context.scene.collection.objects.link(obj)
        target = [obj]
    else:
        bpy.ops.mesh.primitive_cube_add()
        target = [bpy.context.active_object]
    with pytest.raises(Exception, match=message):
        api.submit("meshy", mesh=target)
    assert emulator.count() == 0 and api.jobs() == []


def test_linked_library_mesh_is_refused(api: ModuleType, emulator: Emulator, tmp_path: Path) -> None:
    make_character()
    library_file = tmp_path / "library.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(library_file))
    bpy.ops.wm.read_homefile(use_empty=True)
    with bpy.data.libraries.load(str(library_file), link=True) as (_src, dst):  # type: ignore[func-returns-value]
        dst.objects = ["Body"]
    linked = dst.objects[0]
    bpy.context.scene.collection.objects.link(linked)
    with pytest.raises(Exception, match="linked from a library"):
        api.submit("meshy", mesh=[linked])
    assert emulator.count() == 0


def test_too_many_faces_refused_or_remeshed_first(api: ModuleType, emulator: Emulator) -> None:
    body, _head = make_character()
    mod = body.modifiers.new("Dense", "SUBSURF")
    mod.levels = 6  # 6 faces * 4^6 = 24,576 per cube ... times the subdivision below
    bpy.ops.object.select_all(action="DESELECT")
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=560, y_subdivisions=560, location=(2, -1, 0.5))
    grid = bpy.context.active_object
    grid.data.materials.append(body.data.materials[0])
    with pytest.raises(Exception, match="Remesh First"):
        api.submit("meshy", mesh=[body, grid])
    assert emulator.count() == 0
    info = api.wait(api.submit("meshy", mesh=[body, grid], options={"remesh_first": True,
                                                                      "target_polycount": 20000}), timeout=180)
    assert info.state.value == "SUCCEEDED", info
    [remesh] = [t for t in emulator.meshy.tasks.values() if t.kind == "remesh"]
    assert remesh.request["target_polycount"] == 20000
    [rig_request] = _task_requests(emulator, "rig")
    assert rig_request["input_task_id"] == remesh.id and "model_url" not in rig_request


def test_animation_library_is_fetched_cached_and_filtered(api: ModuleType, ext: ModuleType,
                                                         emulator: Emulator, session: Any) -> None:
    library = importlib.import_module(ext.__name__ + ".blender.library")
    cache = session.root / "animation_library.json"
    cache.unlink(missing_ok=True)
    library.reset()
    _pump(api)
    items = bpy.context.window_manager.marionette_library.items
    builtin = len(items)
    assert builtin >= 5 and "Built-in" in library.status()
    assert bpy.ops.marionette.refresh_animation_library() == {"FINISHED"}
    for _ in range(200):
        _pump(api)
        if library.status().endswith(time.strftime("%Y-%m-%d")):
            break
        time.sleep(0.01)
    assert emulator.count("GET", r"^/web/public/animations/resources$") == 1
    assert len(items) == len(emulator.meshy.catalog) > builtin
    stored = json.loads(cache.read_text())
    assert stored["fetched_at"] > 0 and len(stored["entries"]) == len(items)
    lib = bpy.context.window_manager.marionette_library
    fighting = [i for i in items if library.visible(i, "", "Fighting")]
    assert fighting and all(i.category == "Fighting" for i in fighting)
    assert [i.label for i in items if library.visible(i, "double combo", "ALL")] == ["Double Combo Attack"]
    assert len([i for i in items if library.visible(i, "combo", "ALL")]) >= 2
    lib.search = "Double_Combo"
    assert bpy.ops.marionette.select_animations(select=True) == {"FINISHED"}
    assert [c.action_id for c in library.chosen()] == [92]
    # A new session reads the cache: no second fetch.
    library.reset()
    _pump(api)
    assert len(bpy.context.window_manager.marionette_library.items) == len(emulator.meshy.catalog)
    assert emulator.count("GET", r"^/web/public/animations/resources$") == 1


def test_add_animations_later_to_the_same_armature(api: ModuleType, emulator: Emulator,
                                                   assets: dict[str, Path]) -> None:
    first = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True), timeout=120)
    arm = bpy.data.objects[first.armature]
    bpy.context.view_layer.objects.active = arm
    assert bpy.ops.marionette.add_animations.poll()
    armatures_before = len(bpy.data.armatures)
    info = api.wait(api.add_animations(arm, [92, "Alert"], options={"animation_fps": "30"}), timeout=120)
    assert info.state.value == "SUCCEEDED" and info.imported, info
    assert info.actions == ["Double_Combo_Attack", "Alert"]
    assert len(bpy.data.armatures) == armatures_before
    names = [s.action.name for t in arm.animation_data.nla_tracks for s in t.strips]
    assert sorted(names) == sorted(["Walking", "Running", "Double_Combo_Attack", "Alert"])
    assert arm.animation_data.action.name == "Walking"  # the character keeps its active action
    assert emulator.count("POST", RIG_POST) == 1
    requests = _task_requests(emulator, "animate")
    assert {r["rig_task_id"] for r in requests} == {first.task_ids["rig"]}
    assert all(r["post_process"] == {"operation_type": "change_fps", "fps": 30} for r in requests)


def test_adding_animations_to_an_expired_rig_is_refused(api: ModuleType, emulator: Emulator,
                                                        assets: dict[str, Path]) -> None:
    first = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True), timeout=120)
    arm = bpy.data.objects[first.armature]
    arm["marionette_rig_created_at"] = time.time() - 4 * 86400
    emulator.clear_log()
    with pytest.raises(Exception, match="keeps rig tasks for 3 days"):
        api.add_animations(arm, [92])
    assert emulator.count() == 0
    # A rig Meshy no longer has (deleted early, or another account) gets Meshy's 404 explained.
    arm["marionette_rig_created_at"] = time.time()
    arm["marionette_rig_task_id"] = "0000-gone"
    info = api.wait(api.add_animations(arm, [92]), timeout=60)
    assert info.state.value == "FAILED" and "no longer keeps this character's rig" in info.error


def test_add_animations_needs_a_marionette_character(api: ModuleType, emulator: Emulator) -> None:
    arm = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    bpy.context.scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    assert not bpy.ops.marionette.add_animations.poll()
    with pytest.raises(Exception, match="not rigged by Marionette"):
        api.add_animations(arm, [92])
