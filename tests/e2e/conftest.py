"""End-to-end fixtures: a scratch Blender user folder (set before bpy is imported), the extension zip
built and installed as a user would, and the local provider emulator on 127.0.0.1.

The venv's own pydantic is hidden so that the extension must run on the wheels it bundles.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support import blender_install

_USER_DIR = Path(tempfile.mkdtemp(prefix="marionette-e2e-user-"))
if "bpy" not in sys.modules:
    blender_install.prepare_user_dir(_USER_DIR)
    blender_install.hide_host_packages(blender_install.BUNDLED_PACKAGES)
os.environ["MARIONETTE_POLL_INTERVAL"] = "0.01"
os.environ["MARIONETTE_RETRY_BASE"] = "0.01"
os.environ.pop("MARIONETTE_MESHY_API_KEY", None)

import bpy  # noqa: E402

from scripts.build import build, host_platform  # noqa: E402
from tests.assets.cache import ensure_assets  # noqa: E402
from tests.emulator import Emulator  # noqa: E402
from tests.support.served import emulator_assets  # noqa: E402


@pytest.fixture(scope="session")
def assets() -> dict[str, Path]:
    return ensure_assets()


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built in this run's own folders: test runs of several Blenders may build at once.
    work = tmp_path_factory.mktemp("build")
    return build(platforms=[host_platform()], out_dir=work / "dist", stage_dir=work / "stage")[0]


@pytest.fixture(scope="session")
def emulator(assets: dict[str, Path]) -> Iterator[Emulator]:
    with Emulator(assets=emulator_assets(assets)) as emu:
        emu.claythis.glb = assets["multi.glb"]  # Claythis: one rigged GLB carrying many animations
        yield emu


@pytest.fixture(scope="session")
def _installed(extension_zip: Path) -> Iterator[str]:
    module = blender_install.install_and_enable(extension_zip)
    yield module
    blender_install.uninstall(module)
    shutil.rmtree(_USER_DIR, ignore_errors=True)


def ensure_enabled(module: str, extension_zip: Path) -> ModuleType:
    """Other tests may reset Blender to factory settings, which disables add-ons: enable again."""
    if module not in blender_install.enabled_addons():
        blender_install.install_and_enable(extension_zip)
    return importlib.import_module(module)


@pytest.fixture
def ext(_installed: str, extension_zip: Path, emulator: Emulator,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The enabled extension, an empty scene, a fresh emulator state and an empty job list."""
    for provider_id in ("meshy", "claythis", "image3d", "claid"):
        monkeypatch.setenv(f"MARIONETTE_{provider_id.upper()}_BASE_URL", emulator.base_url)
    monkeypatch.setenv("MARIONETTE_RODIN_BASE_URL", emulator.base_url + "/api")  # Rodin's base ends in /api
    module = ensure_enabled(_installed, extension_zip)
    bpy.ops.wm.read_homefile(use_empty=True)
    module = ensure_enabled(_installed, extension_zip)
    reset_emulator(emulator)
    session = importlib.import_module(_installed + ".blender.session").get()
    for job in session.store.all():
        if job.state.active:
            session.runner.cancel(job.id)
    yield module
    for job in session.store.all():
        if job.state.active:
            session.runner.cancel(job.id)
    for job in session.store.all():
        if not session.runner.is_running(job.id):
            session.store.remove(job.id)


def reset_emulator(emu: Emulator) -> None:
    meshy: Any = emu.meshy
    with meshy.lock:
        meshy.api_key = None
        meshy.balance = 1000
        meshy.queue_limit = None
        meshy.tasks.clear()
        meshy.created.clear()
        meshy.deleted.clear()
        meshy.pose_failures = 0
        meshy._failures.clear()
    for state in (emu.rodin, emu.claythis, emu.image3d, emu.claid):
        with state.lock:
            state.api_key = None
    with emu.rodin.lock:
        emu.rodin.tasks.clear()
        emu.rodin.jobs_shape = "object"
        emu.rodin.balance = 100.0
    with emu.claythis.lock:
        emu.claythis.tasks.clear()
    with emu.image3d.lock:
        emu.image3d.tasks.clear()
        emu.image3d.tokens.clear()
        emu.image3d.token_expired = False
    with emu.claid.lock:
        emu.claid.scenes.clear()
        emu.claid.uploads.clear()
    emu.clear_injections()
    emu.clear_log()


@pytest.fixture
def scene() -> Iterator[bpy.types.Scene]:
    """Factory settings and an empty scene, before and after (tests that drive bpy without the extension)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    assert scene is not None
    yield scene
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def api(ext: ModuleType) -> ModuleType:
    return importlib.import_module(ext.__name__ + ".api")


@pytest.fixture
def session(ext: ModuleType) -> Any:
    return importlib.import_module(ext.__name__ + ".blender.session").get()


_exit_status: dict[str, int] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status["code"] = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    """bpy as a Python module can fail in its own exit-time cleanup: 4.2 crashes after any glTF export,
    4.5 can hang for ever in a C++ destructor (a deadlock with its delayed-close thread). The results
    are reported by now: leave without that cleanup so neither replaces pytest's exit status."""
    if "code" in _exit_status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status["code"])
