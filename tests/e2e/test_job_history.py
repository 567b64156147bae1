"""Issue 6 part 3 end to end: retry, recover by task id, copy task id, thumbnails, mark as assets."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import pytest

from tests.emulator import Emulator

IMAGE_POST = r"^/openapi/v1/image-to-3d$"
RIG_POST = r"^/openapi/v1/rigging$"


def test_retry_after_a_failed_model_sends_it_again(api: ModuleType, emulator: Emulator,
                                                   assets: dict[str, Path]) -> None:
    emulator.meshy.fail_next("image-to-3d", type="server_error", message="Something broke")
    job_id = api.submit("meshy", image=str(assets["sample.png"]), rig=True)
    assert api.wait(job_id, timeout=60).state.value == "FAILED"
    info = api.wait(api.retry(job_id).id, timeout=120)
    assert info.state.value == "SUCCEEDED" and info.imported and info.error is None
    assert emulator.count("POST", IMAGE_POST) == 2 and emulator.count("POST", RIG_POST) == 1


def test_retry_after_a_failed_rig_reuses_the_paid_model(api: ModuleType, emulator: Emulator,
                                                        assets: dict[str, Path]) -> None:
    emulator.meshy.fail_next("rig", type="invalid_input", message="No humanoid found")
    job_id = api.submit("meshy", image=str(assets["sample.png"]), rig=True, animations=["Idle"])
    failed = api.wait(job_id, timeout=60)
    assert failed.state.value == "FAILED" and "No humanoid found" in failed.error
    info = api.wait(api.retry(job_id).id, timeout=120)
    assert info.state.value == "SUCCEEDED" and info.imported
    assert emulator.count("POST", IMAGE_POST) == 1  # the model was paid once and reused
    assert emulator.count("POST", RIG_POST) == 2


def test_retry_refuses_running_and_succeeded_jobs(api: ModuleType, assets: dict[str, Path]) -> None:
    job_id = api.submit("meshy", image=str(assets["sample.png"]))
    with pytest.raises(Exception, match="still running"):
        api.retry(job_id)
    api.wait(job_id, timeout=60)
    with pytest.raises(Exception, match="import it again"):
        api.retry(job_id)


def test_recover_a_rig_task_made_elsewhere(api: ModuleType, emulator: Emulator, session: Any,
                                           assets: dict[str, Path]) -> None:
    made = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True), timeout=120)
    rig_id = made.task_ids["rig"]
    bpy.ops.wm.read_homefile(use_empty=True)
    session.store.remove(made.id)  # as if it had been generated on another machine
    emulator.clear_log()
    info = api.wait(api.recover("meshy", rig_id, name="Recovered Hero"), timeout=120)
    assert info.state.value == "SUCCEEDED" and info.imported, info
    assert info.collection == "Recovered Hero" and info.task_ids == {"rig": rig_id}
    assert sorted(info.actions) == ["Running", "Walking"]
    assert emulator.count("POST") == 0  # nothing created, nothing paid


def test_recover_a_model_task_and_an_unknown_id(api: ModuleType, emulator: Emulator,
                                                assets: dict[str, Path]) -> None:
    made = api.wait(api.submit("meshy", image=str(assets["sample.png"])), timeout=60)
    info = api.wait(api.recover("meshy", made.task_ids["image"]), timeout=60)
    assert info.state.value == "SUCCEEDED" and info.imported and info.armature is None
    gone = api.wait(api.recover("meshy", "018a0000-0000-0000-0000-000000000000"), timeout=60)
    assert gone.state.value == "FAILED" and "Meshy has no task" in gone.error
    with pytest.raises(Exception, match="Paste the task id"):
        api.recover("meshy", "  ")


def test_thumbnail_is_the_providers_preview(api: ModuleType, ext: ModuleType, emulator: Emulator,
                                            assets: dict[str, Path]) -> None:
    info = api.wait(api.submit("meshy", image=str(assets["sample.png"])), timeout=60)
    assert info.thumbnail and Path(info.thumbnail).name == "preview.png"
    assert Path(info.thumbnail).read_bytes()[:4] == b"\x89PNG"
    thumbnails = importlib.import_module(ext.__name__ + ".blender.thumbnails")
    assert isinstance(thumbnails.icon_for(info.thumbnail), int)
    assert thumbnails.icon_for(None) == 0


def test_copy_task_id_and_mark_as_asset(api: ModuleType, ext: ModuleType, assets: dict[str, Path],
                                        capfd: pytest.CaptureFixture[str]) -> None:
    prefs = bpy.context.preferences.addons[ext.__name__].preferences
    prefs.mark_as_asset = True
    try:
        info = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True), timeout=120)
    finally:
        prefs.mark_as_asset = False
    collection = bpy.data.collections[info.collection]
    assert collection.asset_data is not None
    assert "Marionette" in [t.name for t in collection.asset_data.tags]
    capfd.readouterr()
    assert bpy.ops.marionette.copy_task_id(job_id=info.id) == {"FINISHED"}
    # Without a window there is no clipboard: the operator's report says what it copied.
    assert f"copied {info.task_ids['image']}, {info.task_ids['rig']}" in capfd.readouterr().out


@pytest.mark.parametrize("provider,key", [("rodin", "rodin"), ("claythis", "claythis")])
def test_recover_rodin_and_claythis_tasks(api: ModuleType, emulator: Emulator, session: Any,
                                          assets: dict[str, Path], provider: str, key: str) -> None:
    made = api.wait(api.submit(provider, image=str(assets["sample.png"]), rig=provider == "claythis"),
                    timeout=60)
    assert made.state.value == "SUCCEEDED", made
    [task_id] = made.task_ids.values()
    bpy.ops.wm.read_homefile(use_empty=True)
    session.store.remove(made.id)
    emulator.clear_log()
    info = api.wait(api.recover(provider, task_id), timeout=60)
    assert info.state.value == "SUCCEEDED" and info.imported, info
    assert list(info.task_ids.values()) == [task_id]
    assert emulator.count("POST", r"/(rodin|generate)$") == 0  # found, not generated again
    assert bool(info.armature) == (provider == "claythis")
