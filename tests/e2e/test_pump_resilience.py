"""The timer pump is the only writer of Blender data for running jobs. Blender drops a timer callback
that raises, and with it every later import, so the pump must survive anything: an error in one of its
parts, or an importer that fails in an unexpected way (the job then says so and keeps its files)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import pytest


def test_the_pump_keeps_running_when_a_part_of_it_fails(ext: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    timer = importlib.import_module(ext.__name__ + ".blender.timer")
    library = importlib.import_module(ext.__name__ + ".blender.library")

    def broken() -> bool:
        raise KeyError("a bug")

    monkeypatch.setattr(library, "pump", broken)
    assert timer.pump() == timer.BUSY_INTERVAL  # an interval, not an exception: Blender keeps the timer
    assert "keeps running" in caplog.text


def test_an_unexpected_import_failure_is_said_on_the_job_and_the_files_kept(
        ext: ModuleType, api: ModuleType, assets: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    importer = importlib.import_module(ext.__name__ + ".blender.importer")

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise ZeroDivisionError("importer bug")

    objects_before = set(bpy.data.objects.keys())
    with monkeypatch.context() as patch:
        patch.setattr(importer, "import_character", broken)
        info = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True), timeout=120)
    assert info.state.value == "SUCCEEDED" and not info.imported
    assert "failed unexpectedly (ZeroDivisionError: importer bug)" in (info.error or "")
    assert set(bpy.data.objects.keys()) == objects_before
    assert info.files and all(Path(f).is_file() for f in info.files)
    imported = api.import_result(info.id)  # the paid result is still there to import
    assert imported.imported and imported.armature
