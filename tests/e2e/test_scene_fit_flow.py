"""The Height and In Place settings from the API and the panel to the imported character, through the
installed extension and the Meshy emulator serving a rig the way Meshy delivers it (object scale 0.01,
centimetre data, a walk with root motion)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import numpy as np
import pytest

from tests.emulator import Emulator

MM = 1e-3


@pytest.fixture
def provider_style(emulator: Emulator, assets: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Meshy serves the 0.01-scale rig, its walk (with root motion) and its run."""
    served: Any = emulator.meshy.assets
    monkeypatch.setitem(served, "rigged", assets["scaled_character.glb"])
    monkeypatch.setitem(served, "walking", assets["scaled_walk.glb"])
    monkeypatch.setitem(served, "running", assets["scaled_anim.glb"])


def character_bounds(info: Any) -> tuple[np.ndarray, np.ndarray]:
    bpy.context.view_layer.update()
    chunks = []
    for name in info.objects:
        obj = bpy.data.objects[name]
        assert obj.scale.to_tuple() == pytest.approx((1.0, 1.0, 1.0)), name
        if obj.type == "MESH":
            co = np.empty(len(obj.data.vertices) * 3)
            obj.data.vertices.foreach_get("co", co)
            m = np.array(obj.matrix_world)
            chunks.append(co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3])
    points = np.concatenate(chunks)
    return points.min(axis=0), points.max(axis=0)


def test_meshy_rig_gets_the_height_meshy_was_asked_for(api: ModuleType, emulator: Emulator,
                                                       assets: dict[str, Path], provider_style: None) -> None:
    bpy.context.scene.cursor.location = (1.0, 2.0, 0.5)
    info = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True,
                               options={"height_meters": 1.5}), timeout=120)
    assert info.state.value == "SUCCEEDED" and info.imported, info
    low, high = character_bounds(info)
    assert high[2] - low[2] == pytest.approx(1.5, abs=MM)
    assert low[2] == pytest.approx(0.5, abs=MM)
    assert ((low + high) / 2)[:2] == pytest.approx((1.0, 2.0), abs=MM)
    assert not [o for o in bpy.data.objects if o.type == "EMPTY"]
    assert sorted(info.actions) == ["Running", "Walking"]  # in place is off by default


def test_height_and_in_place_options(api: ModuleType, emulator: Emulator, assets: dict[str, Path],
                                     provider_style: None) -> None:
    info = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True,
                               options={"height_meters": 1.5, "height": 2.0, "in_place": True}), timeout=120)
    assert info.state.value == "SUCCEEDED" and info.imported, info
    low, high = character_bounds(info)
    assert high[2] - low[2] == pytest.approx(2.0, abs=MM)  # the Height setting wins over the rig's height
    assert "Walking In Place" in info.actions and "Running" in info.actions
    assert bpy.data.actions["Walking"].use_fake_user  # the original walk is kept
    rig_task = next(t for t in emulator.meshy.tasks.values() if t.kind == "rig")
    assert rig_task.request["height_meters"] == 1.5
    assert "height" not in rig_task.request and "in_place" not in rig_task.request


def test_panel_settings_reach_the_import(api: ModuleType, emulator: Emulator, assets: dict[str, Path],
                                         provider_style: None) -> None:
    props = bpy.context.scene.marionette
    props.provider, props.source, props.image_path = "meshy", "FILE", str(assets["sample.png"])
    props.rig, props.fit_height, props.in_place = True, 1.25, True
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    [job] = api.jobs()
    info = api.wait(job.id, timeout=120)
    assert info.state.value == "SUCCEEDED" and info.imported, info
    low, high = character_bounds(info)
    assert high[2] - low[2] == pytest.approx(1.25, abs=MM)
    assert "Walking In Place" in info.actions


def test_bad_height_is_refused_before_sending(api: ModuleType, emulator: Emulator, assets: dict[str, Path]) -> None:
    errors = __import__(api.__name__.rpartition(".")[0] + ".core.errors", fromlist=["InputError"])
    for bad in (0, -1.0, "tall"):
        with pytest.raises(errors.InputError, match="height"):
            api.submit("meshy", image=str(assets["sample.png"]), rig=True, options={"height": bad})
    assert not emulator.meshy.tasks
