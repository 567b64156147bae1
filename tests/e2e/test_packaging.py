"""Packaging: the manifest, the built zip, and installing it into Blender (the PyPI `bpy` module).

The Blender part runs in a subprocess per interpreter that has `bpy`: the scratch user folder must be set
before `import bpy`, and a process can import bpy only once. Interpreters: the one running pytest (if it
has bpy) plus any listed in $MARIONETTE_BPY_PYTHONS (os.pathsep-separated). Locally::

    /work/venvs/b50/bin/python -m pytest tests/e2e/test_packaging.py -q
    /work/venvs/b42/bin/python -m pytest tests/e2e/test_packaging.py -q

The zip is built once per session for the host platform, with scripts/build.py's `build()`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST_PATH = REPO_ROOT / "blender_manifest.toml"
ALL_PLATFORMS = {"windows-x64", "macos-arm64", "macos-x64", "linux-x64"}
PYDANTIC_VERSION = "2.11.10"
RESULT_MARKER = "MARIONETTE_E2E_RESULT "


def _load_build_module() -> ModuleType:
    name = "marionette_build_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


build_script = _load_build_module()


def _has_bpy(python: str) -> bool:
    # Unresolved paths on purpose: venv interpreters are symlinks to one base Python.
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        return importlib.util.find_spec("bpy") is not None
    code = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('bpy') else 1)"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _bpy_pythons() -> list[str]:
    candidates = [sys.executable, *filter(None, os.environ.get("MARIONETTE_BPY_PYTHONS", "").split(os.pathsep))]
    seen: dict[str, str] = {}
    for python in candidates:
        seen.setdefault(os.path.abspath(python), python)
    return [python for python in seen.values() if _has_bpy(python)]


BPY_PYTHONS = _bpy_pythons()
needs_bpy = pytest.mark.skipif(not BPY_PYTHONS, reason="no interpreter with the PyPI `bpy` package")


# -----------------------------------------------------------------------------
# Manifest (no bpy needed)


def test_manifest_parses_and_declares_the_essentials() -> None:
    manifest = tomllib.loads(MANIFEST_PATH.read_text(encoding="utf-8"))

    assert manifest["schema_version"] == "1.0.0"
    assert manifest["id"] == "marionette"
    assert manifest["name"] == "Marionette"
    assert manifest["type"] == "add-on"
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert set(manifest["platforms"]) == ALL_PLATFORMS
    tagline = manifest["tagline"]
    assert len(tagline) <= 64 and tagline[-1].isalnum()
    permissions = manifest["permissions"]
    assert set(permissions) >= {"network", "files"}
    for reason in permissions.values():
        assert reason and len(reason) <= 64 and reason[-1].isalnum()
    assert "__pycache__/" in manifest["build"]["paths_exclude_pattern"]


def test_manifest_wheels_match_the_build_pins() -> None:
    manifest = tomllib.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    wheels = [w.removeprefix("./wheels/") for w in manifest["wheels"]]
    assert all(w.startswith("./wheels/") and w.endswith(".whl") for w in manifest["wheels"])
    assert not any(w.startswith("requests-") for w in wheels), "Blender ships requests: do not bundle it"

    for pin in build_script.WHEELS:
        mine = [w for w in wheels if w.startswith(f"{pin.name}-{pin.version}-")]
        if pin.binary:
            # Blender 4.2-5.0 run CPython 3.11, 5.1-5.3 run 3.13: every platform needs a wheel for each.
            for abi in ("cp311", "cp313"):
                covered: set[str] = set()
                for wheel in mine:
                    if f"-{abi}-{abi}-" in wheel:
                        covered |= build_script.wheel_blender_platforms(wheel) or set()
                assert covered >= ALL_PLATFORMS, f"{pin.name}: no {abi} wheel for {ALL_PLATFORMS - covered}"
            assert all(re.search(r"-cp31[13]-cp31[13]-", w) for w in mine), mine
        else:
            assert len(mine) == 1 and mine[0].endswith("-none-any.whl"), f"{pin.requirement}: {mine}"
    pinned = {(p.name, p.version) for p in build_script.WHEELS}
    for wheel in wheels:
        name, version = wheel.split("-")[:2]
        assert (name, version) in pinned, f"{wheel} is listed but not pinned in scripts/build.py"


def test_wheel_platform_mapping_and_manifest_rewrite() -> None:
    bwp = build_script.wheel_blender_platforms
    assert bwp("x-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl") == {"linux-x64"}
    assert bwp("x-1-cp311-cp311-macosx_11_0_arm64.whl") == {"macos-arm64"}
    assert bwp("x-1-cp311-cp311-macosx_10_12_x86_64.whl") == {"macos-x64"}
    assert bwp("x-1-cp311-cp311-win_amd64.whl") == {"windows-x64"}
    assert bwp("x-1-py3-none-any.whl") is None

    text = build_script.staged_manifest_text(
        MANIFEST_PATH.read_text(encoding="utf-8"), ["linux-x64"], ["a-1-py3-none-any.whl"]
    )
    data = tomllib.loads(text)
    assert data["platforms"] == ["linux-x64"]
    assert data["wheels"] == ["./wheels/a-1-py3-none-any.whl"]
    assert data["permissions"] == tomllib.loads(MANIFEST_PATH.read_text(encoding="utf-8"))["permissions"]


def test_host_platform() -> None:
    assert re.fullmatch(r"(linux|macos|windows)-(x64|arm64)", build_script.host_platform())


# -----------------------------------------------------------------------------
# The built zip


@pytest.fixture(scope="session")
def built_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BPY_PYTHONS:
        pytest.skip("no interpreter with the PyPI `bpy` package (needed for blender_ext.py)")
    work = tmp_path_factory.mktemp("build")
    try:
        zips = build_script.build(
            [build_script.host_platform()],
            work / "dist",
            bpy_python=BPY_PYTHONS[0],
            stage_dir=work / "stage",
        )
    except build_script.BuildError as ex:
        pytest.fail(f"scripts/build.py failed: {ex}")
    assert len(zips) == 1
    return Path(zips[0])


@needs_bpy
def test_zip_layout(built_zip: Path) -> None:
    with zipfile.ZipFile(built_zip) as zf:
        names = zf.namelist()
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode("utf-8"))
    print(f"\n{built_zip.name}: {built_zip.stat().st_size:,} bytes, {len(names)} files")

    assert "__init__.py" in names
    assert "blender_manifest.toml" in names
    assert any(n.startswith("core/") for n in names) and any(n.startswith("blender/") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if n.startswith(("tests/", "scripts/", "addon/", "build/", "dist/", "."))]

    wheels = sorted(n for n in names if n.startswith("wheels/"))
    for pin in build_script.WHEELS:
        assert any(w.startswith(f"wheels/{pin.name}-{pin.version}-") for w in wheels), pin.requirement
    host = build_script.host_platform()
    for wheel in wheels:
        platforms = build_script.wheel_blender_platforms(wheel)
        assert platforms is None or host in platforms, f"{wheel} does not belong in the {host} zip"
    assert not any(w.startswith("wheels/requests-") for w in wheels)
    assert manifest["id"] == "marionette"
    assert sorted(manifest["wheels"]) == [f"./{w}" for w in wheels]


@needs_bpy
@pytest.mark.parametrize("python", BPY_PYTHONS)
def test_zip_validates_with_blender_ext(built_zip: Path, python: str) -> None:
    tool = build_script.find_blender_ext(python)
    output = build_script.validate(built_zip, tool)
    assert "Success" in output, output


# -----------------------------------------------------------------------------
# Installing into Blender (one subprocess per interpreter)


def run_in_blender(zip_path: str, user_dir: str) -> dict[str, Any]:
    """Runs INSIDE the subprocess: install, enable, inspect, disable. Returns facts for the parent."""
    from tests.support import blender_install as bi

    bi.prepare_user_dir(Path(user_dir))
    bi.hide_host_packages(bi.BUNDLED_PACKAGES)

    import bpy

    addon_utils = importlib.import_module("addon_utils")  # on sys.path only once bpy is imported
    facts: dict[str, Any] = {
        "blender": bpy.app.version_string,
        "online_access": bool(bpy.app.online_access),
        "python": f"cp{sys.version_info.major}{sys.version_info.minor}",
    }
    module = bi.install_and_enable(Path(zip_path))
    facts["module"] = module
    facts["enabled"] = module in bi.enabled_addons()
    facts["addon_utils_check"] = list(addon_utils.check(module))

    imported = importlib.import_module(module)
    facts["module_file"] = imported.__file__

    import pydantic
    import pydantic_core
    import typing_extensions

    class Probe(pydantic.BaseModel):
        count: int

    facts["pydantic_version"] = pydantic.VERSION
    facts["pydantic_file"] = pydantic.__file__
    facts["pydantic_core_file"] = pydantic_core.__file__
    facts["probe"] = Probe.model_validate({"count": "3"}).count
    facts["typing_extensions_file"] = typing_extensions.__file__
    te_dists = importlib.metadata.distributions(
        name="typing_extensions", path=[str(Path(typing_extensions.__file__).parent)]
    )
    facts["typing_extensions_version"] = next(iter(te_dists)).version
    facts["site_packages"] = str(bi.extensions_site_packages())
    facts["site_packages_listing"] = sorted(os.listdir(bi.extensions_site_packages()))
    # The compiled modules Blender unpacked from the zip's wheels (it keeps only those for its own Python).
    facts["compiled_modules"] = sorted(
        path.name for path in bi.extensions_site_packages().rglob("*") if path.suffix in (".so", ".pyd")
    )
    facts["wheels_in_package"] = sorted(
        path.name for path in (Path(str(imported.__file__)).parent / "wheels").glob("*.whl")
    )

    bi.uninstall(module)
    facts["enabled_after_uninstall"] = module in bi.enabled_addons()
    facts["addon_enabled_flag_after_uninstall"] = bool(getattr(imported, "__addon_enabled__", False))
    return facts


def _main_in_subprocess() -> None:  # pragma: no cover - runs in the child
    facts = run_in_blender(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    print(RESULT_MARKER + json.dumps(facts), flush=True)


@needs_bpy
@pytest.mark.parametrize("python", BPY_PYTHONS)
def test_install_enable_and_disable_in_blender(built_zip: Path, python: str, tmp_path: Path) -> None:
    user_dir = tmp_path / "blender_user"
    code = "import sys; from tests.e2e.test_packaging import _main_in_subprocess; _main_in_subprocess()"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [python, "-c", code, str(built_zip), str(user_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    assert proc.returncode == 0 and lines, (
        f"Blender subprocess failed (exit {proc.returncode})\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    facts = json.loads(lines[-1].removeprefix(RESULT_MARKER))
    print(
        f"\n[{facts['blender']}] {facts['module']} enabled={facts['enabled']}; "
        f"pydantic {facts['pydantic_version']} from {facts['pydantic_file']}; "
        f"typing_extensions {facts['typing_extensions_version']} from {facts['typing_extensions_file']}"
    )

    site_packages = Path(facts["site_packages"])
    assert site_packages.is_relative_to(user_dir.resolve())
    assert facts["module"] == "bl_ext.user_default.marionette"
    assert facts["enabled"] is True
    assert facts["addon_utils_check"] == [True, True]
    assert Path(facts["module_file"]).is_relative_to(user_dir.resolve() / "extensions" / "user_default")
    assert facts["pydantic_version"] == PYDANTIC_VERSION
    assert Path(facts["pydantic_file"]).is_relative_to(site_packages), "pydantic must come from the wheels"
    assert Path(facts["pydantic_core_file"]).is_relative_to(site_packages)
    assert facts["probe"] == 3
    # The wheels Blender kept are the ones for its own Python: the zip carries cp311 and cp313 side by side.
    python_tag = facts["python"]  # "cp311" or "cp313"
    assert facts["compiled_modules"], "pydantic_core's compiled module was not unpacked"
    for compiled in facts["compiled_modules"]:
        assert f"cpython-{python_tag[2:]}" in compiled, f"{compiled} is not for {python_tag}"
    # ... while the package carries both, so the check above is a real choice made by Blender.
    binary = [w for w in facts["wheels_in_package"] if w.startswith("pydantic_core-")]
    assert {"cp311", "cp313"} <= {w.split("-")[2] for w in binary}, binary
    assert {"pydantic", "pydantic_core", "annotated_types", "typing_inspection"} <= set(facts["site_packages_listing"])
    te_version = tuple(int(p) for p in facts["typing_extensions_version"].split(".")[:3])
    assert te_version >= (4, 12, 2), "pydantic 2.11 needs typing_extensions>=4.12.2"
    assert facts["enabled_after_uninstall"] is False
    assert facts["addon_enabled_flag_after_uninstall"] is False
