"""Enabling Marionette at Blender's start only registers: no pydantic, requests or numpy, no provider
module, no journal read, no file written, no thread started. The core loads on first use (here: the pump's
first tick, as Blender's timer runs it shortly after start), and then everything works.

Runs in fresh Blender processes (one `import bpy` each): one installs the zip into a scratch user folder,
the next enables it as Blender does at start and reports what that loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts.build import build, host_platform
from tests.support import blender_install

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER = "MARIONETTE_STARTUP "
MODULE = "bl_ext.user_default.marionette"
HEAVY_PACKAGES = ("pydantic", "pydantic_core", "requests", "urllib3", "numpy")
HEAVY_MODULES = ("core.models", "core.http", "core.runner", "core.store", "core.providers", "core.catalog",
                 "blender.jobs", "blender.importer", "blender.exporter", "blender.account", "api")


def _child(step: str, user_dir: str, zip_path: str) -> dict[str, Any]:  # pragma: no cover - in the child
    import importlib
    import threading
    import time

    blender_install.prepare_user_dir(Path(user_dir))
    blender_install.hide_host_packages(blender_install.BUNDLED_PACKAGES)
    import bpy

    if step == "install":
        return {"module": blender_install.install_and_enable(Path(zip_path))}

    addon_utils = importlib.import_module("addon_utils")
    user_folder = Path(bpy.utils.extension_path_user(MODULE, create=False))

    def files() -> list[str]:
        return sorted(str(p) for p in user_folder.rglob("*")) if user_folder.exists() else []

    def loaded(name: str) -> bool:
        return name in sys.modules

    files_before, threads_before = files(), threading.active_count()
    heavy_before = {p for p in HEAVY_PACKAGES if p in sys.modules}
    started = time.perf_counter()
    addon_utils.enable(MODULE, default_set=True)
    enable_seconds = time.perf_counter() - started
    facts: dict[str, Any] = {
        "enabled": MODULE in blender_install.enabled_addons(),
        "heavy_packages": sorted(p for p in HEAVY_PACKAGES if p in sys.modules and p not in heavy_before),
        "heavy_modules": sorted(m for m in HEAVY_MODULES if loaded(f"{MODULE}.{m}")),
        "new_files": sorted(set(files()) - set(files_before)),
        "new_threads": threading.active_count() - threads_before,
        "scene_settings": hasattr(bpy.context.scene, "marionette"),
        "operators": hasattr(bpy.ops.marionette, "generate"),
        "enable_seconds": enable_seconds,
    }
    # First use: the pump's first tick starts the session (core, journal) and resumes jobs.
    timer = importlib.import_module(f"{MODULE}.blender.timer")
    facts["pump_returns"] = timer.pump()
    session = importlib.import_module(f"{MODULE}.blender.session").get_or_none()
    facts["session_started"] = session is not None
    facts["providers_after_first_use"] = sorted(session.providers) if session else []
    facts["core_loaded_after_first_use"] = loaded(f"{MODULE}.core.models") and "pydantic" in sys.modules
    facts["journal_after_first_use"] = (user_folder / "journal.json").exists() or user_folder.exists()
    addon_utils.disable(MODULE, default_set=True)
    return facts


def _main() -> None:  # pragma: no cover - in the child
    facts = _child(sys.argv[1], sys.argv[2], sys.argv[3])
    print(MARKER + json.dumps(facts), flush=True)


def _run(step: str, user_dir: Path, zip_path: Path) -> dict[str, Any]:
    code = "from tests.e2e.test_startup import _main; _main()"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", code, step, str(user_dir), str(zip_path)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1].removeprefix(MARKER))
    return result


@pytest.fixture(scope="module")
def installed_user_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("startup")
    zip_path = build([host_platform()], work / "dist", stage_dir=work / "stage")[0]
    user_dir = work / "user"
    assert _run("install", user_dir, zip_path)["module"] == MODULE
    return user_dir, zip_path


def test_enabling_at_start_only_registers(installed_user_dir: tuple[Path, Path]) -> None:
    facts = _run("start", *installed_user_dir)
    print(f"\nenable: {facts['enable_seconds'] * 1000:.1f} ms")
    assert facts["enabled"] and facts["scene_settings"] and facts["operators"]
    assert facts["heavy_packages"] == [], "register() imported these packages"
    assert facts["heavy_modules"] == [], "register() executed these Marionette modules"
    assert facts["new_files"] == [], "register() wrote files"
    assert facts["new_threads"] == 0, "register() started threads"


def test_first_use_starts_the_core(installed_user_dir: tuple[Path, Path]) -> None:
    facts = _run("start", *installed_user_dir)
    assert facts["pump_returns"] is not None, "the pump must keep running after its first tick"
    assert facts["session_started"] and facts["core_loaded_after_first_use"]
    assert facts["providers_after_first_use"] == ["claid", "claythis", "image3d", "meshy", "rodin"]
    assert facts["journal_after_first_use"]


def test_supported_blenders_are_said_honestly(ext: Any) -> None:
    """The preferences name the Blenders the suite runs on (the requirement files), no version cap stops a
    newer one, and a Blender outside the tested list is told it is untested."""
    import importlib
    import re
    import tomllib

    preferences = importlib.import_module(ext.__name__ + ".blender.preferences")
    tested_here = set()
    for requirement in (REPO_ROOT / "requirements").glob("bpy*.txt"):
        match = re.search(r"^bpy==(\d+)\.(\d+)", requirement.read_text(encoding="utf-8"), re.MULTILINE)
        assert match, requirement
        tested_here.add((int(match[1]), int(match[2])))
    assert set(preferences.TESTED_BLENDERS) == tested_here
    manifest = tomllib.loads((REPO_ROOT / "blender_manifest.toml").read_text(encoding="utf-8"))
    assert "blender_version_max" not in manifest
    import bpy

    running = tuple(bpy.app.version[:2])
    assert running in tested_here
    tested, note = preferences.support_text(running)
    assert note is None and all(f"{a}.{b}" in tested for a, b in tested_here)
    tested, note = preferences.support_text((9, 1))
    assert note is not None and "9.1" in note and "Untested" in note
