"""Issue 11 in real Blender, against the strict emulator: the default Meshy job with Rig on reaches a
rigged, animated character (the model remeshed under rigging's 300,000-face limit); Retry after Cancel
creates what Cancel deleted and says what it costs; a JPEG-textured mesh rigs (its texture sent as PNG);
nothing untextured is sent to rigging; the panel says what Marionette adds on its own and how long
image3d.io's ID token has left."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import pytest

from tests.e2e.test_mesh_rigging import make_character
from tests.e2e.test_panel_draw import draw_all
from tests.emulator import Emulator


def _until(predicate: Any, api: ModuleType, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_default_meshy_job_with_rig_reaches_an_animated_character(api: ModuleType, emulator: Emulator,
                                                                  assets: dict[str, Path]) -> None:
    info = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True, animations=[92]), timeout=120)
    assert info.state.value == "SUCCEEDED" and info.imported, info
    armature = bpy.data.objects[info.armature]
    assert armature.type == "ARMATURE" and len(info.actions) == 3  # walking, running and the one asked for
    [model] = [t for t in emulator.meshy.tasks.values() if t.kind == "image-to-3d"]
    assert model.request["should_remesh"] is True and model.request["target_polycount"] <= 300_000
    assert model.extra["faces"] <= 300_000  # what the strict emulator let rigging take


def test_retry_after_cancel_creates_what_was_deleted_and_says_the_cost(api: ModuleType, session: Any,
                                                                      emulator: Emulator, assets: dict[str, Path],
                                                                      capfd: pytest.CaptureFixture[str]) -> None:
    emulator.meshy.pending_polls = 10**6
    try:
        job_id = api.submit("meshy", image=str(assets["sample.png"]), rig=True, animations=[92])
        _until(lambda: any(t.kind == "image-to-3d" for t in emulator.meshy.tasks.values()), api)
        [model] = [t for t in emulator.meshy.tasks.values() if t.kind == "image-to-3d"]
        model.pending_polls = model.running_polls = 0  # the model finishes (paid); the rig stays queued
        _until(lambda: bool(api.get(job_id).task_ids.get("rig")), api)
        api.cancel(job_id)
        assert api.wait(job_id, timeout=30).state.value == "CANCELED"
        assert [t.kind for t in emulator.meshy.deleted] == ["rig"] and model.id in emulator.meshy.tasks
        emulator.meshy.pending_polls = 0
        capfd.readouterr()
        assert bpy.ops.marionette.retry_job(job_id=job_id) == {"FINISHED"}  # Retry, as the button does
        assert "the new tasks cost 8 credits" in capfd.readouterr().out  # the operator's report says the cost
        note = session.store.get(job_id).notice or ""
        assert note == "Retry reuses the model (already paid); the new tasks cost 8 credits", note
        info = api.wait(job_id, timeout=120)
    finally:
        emulator.meshy.pending_polls = 2
    assert info.state.value == "SUCCEEDED" and info.imported, info
    assert emulator.meshy.created["image-to-3d"] == 1 and emulator.meshy.created["rig"] == 2
    assert info.task_ids["rig"] != emulator.meshy.deleted[0].id


def test_jpeg_textured_mesh_rigs(api: ModuleType, emulator: Emulator, tmp_path: Path) -> None:
    body, head = make_character()
    source = bpy.data.images.new("SkinJPEG", 16, 16)
    source.generated_color = (0.7, 0.4, 0.3, 1.0)
    path = tmp_path / "skin.jpg"
    settings = bpy.context.scene.render.image_settings
    was = settings.file_format
    settings.file_format = "JPEG"
    try:
        source.save_render(str(path), scene=bpy.context.scene)
    finally:
        settings.file_format = was
    jpeg = bpy.data.images.load(str(path))
    assert path.read_bytes()[:3] == b"\xff\xd8\xff"
    for obj in (body, head):
        tex = next(n for n in obj.data.materials[0].node_tree.nodes if n.type == "TEX_IMAGE")
        tex.image = jpeg
    info = api.wait(api.submit("meshy", mesh=[body, head]), timeout=120)
    assert info.state.value == "SUCCEEDED", info
    [rig] = [t.request for t in emulator.meshy.tasks.values() if t.kind == "rig"]
    uri = rig["texture_image_url"]
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.read_bytes()[:3] == b"\xff\xd8\xff" and not jpeg.is_dirty  # the artist's image untouched


@pytest.mark.parametrize("kind", ["image", "prompt"])
def test_nothing_untextured_is_sent_to_rigging(api: ModuleType, emulator: Emulator, assets: dict[str, Path],
                                              kind: str) -> None:
    given: dict[str, Any] = ({"image": str(assets["sample.png"])} if kind == "image"
                             else {"prompt": "a knight in silver armour"})
    with pytest.raises(Exception, match="textured characters only"):
        api.submit("meshy", rig=True, options={"should_texture": False}, **given)
    assert emulator.count() == 0
    assert not any(t.kind == "rig" for t in emulator.meshy.tasks.values())


def test_panel_says_what_marionette_adds_and_how_long_the_token_lasts(ext: ModuleType, session: Any,
                                                                     emulator: Emulator) -> None:
    importlib_pump(ext)
    props = bpy.context.scene.marionette
    props.provider = "meshy"
    props.input = "image"
    props.rig = True
    labels = " | ".join(str(c[1]) for c in draw_all(ext) if c[0] == "label")
    assert "turns on Remesh" in labels and "Costs about" in labels
    props.rig = False
    assert "turns on Remesh" not in " | ".join(str(c[1]) for c in draw_all(ext) if c[0] == "label")
    token = emulator.image3d.issue_token(ttl=1800)
    session.keys.set("image3d", token)
    try:
        props.provider = "image3d"
        labels = " | ".join(str(c[1]) for c in draw_all(ext) if c[0] == "label")
        assert "The ID token expires in 29 min" in labels or "The ID token expires in 30 min" in labels, labels
    finally:
        session.keys.set("image3d", "")
        props.provider = "meshy"


def importlib_pump(ext: ModuleType) -> None:
    import importlib

    importlib.import_module(ext.__name__ + ".blender.timer").pump()
