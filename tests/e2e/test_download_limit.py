"""The download limit is the artist's to set (preference, or MARIONETTE_MAX_DOWNLOAD_MB for scripts): a
result over it is refused before it fills the disk, the paid task is kept, and a bad setting is said at
submit time, before anything is sent."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import pytest

from tests.emulator import Emulator
from tests.emulator.bigfile import write_glb

MB = 1 << 20


@pytest.fixture
def prefs(ext: ModuleType) -> Iterator[Any]:
    prefs = bpy.context.preferences.addons[ext.__name__].preferences
    before = prefs.max_download_mb
    yield prefs
    prefs.max_download_mb = before


@pytest.fixture
def big_model(emulator: Emulator, tmp_path: Path) -> Iterator[Path]:
    """Meshy's next models are a 3 MB GLB (a file the test can later swap for the real model)."""
    meshy: Any = emulator.meshy
    path = write_glb(tmp_path / "big.glb", 3 * MB)
    before = dict(meshy.assets)
    meshy.assets["model"] = meshy.assets["model:glb"] = path
    yield path
    meshy.assets.clear()
    meshy.assets.update(before)


def test_the_preference_reaches_the_downloader(session: Any, prefs: Any) -> None:
    prefs.max_download_mb = 7  # set at once, for the downloads that start from now on
    assert session.runner.max_download_bytes == 7 * MB


def test_a_result_over_the_limit_is_refused_and_the_task_kept(api: ModuleType, session: Any, prefs: Any,
                                                              emulator: Emulator, assets: dict[str, Path],
                                                              big_model: Path) -> None:
    prefs.max_download_mb = 1
    objects_before = set(bpy.data.objects.keys())
    job_id = api.submit("meshy", image=str(assets["sample.png"]), rig=False)
    info = api.wait(job_id, timeout=60)
    assert info.state.value == "FAILED" and "larger than the download limit of 1.0 MB" in (info.error or "")
    assert "Download Limit" in (info.error or "")
    assert not info.imported and set(bpy.data.objects.keys()) == objects_before
    leftovers = [p.name for p in session.store.job_dir(job_id).iterdir() if p.suffix in (".part", ".glb")]
    assert leftovers == []
    # The provider's file is what it should be now: retry downloads the same paid task, nothing is sent.
    shutil.copyfile(assets["model.glb"], big_model)
    api.retry(job_id)
    info = api.wait(job_id, timeout=60)
    assert info.state.value == "SUCCEEDED" and info.imported
    assert emulator.count("POST", r"^/openapi/v1/image-to-3d$") == 1


def test_a_bad_environment_value_is_said_before_sending(api: ModuleType, emulator: Emulator,
                                                         assets: dict[str, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARIONETTE_MAX_DOWNLOAD_MB", "lots")
    with pytest.raises(Exception, match="MARIONETTE_MAX_DOWNLOAD_MB must be a whole number"):
        api.submit("meshy", image=str(assets["sample.png"]), rig=False)
    monkeypatch.setenv("MARIONETTE_MAX_DOWNLOAD_MB", "0")
    with pytest.raises(Exception, match="at least 1 MB"):
        api.submit("meshy", image=str(assets["sample.png"]), rig=False)
    assert emulator.count("POST", r"^/openapi/v1/image-to-3d$") == 0
