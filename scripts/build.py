#!/usr/bin/env python3
"""Build Marionette's extension zips with Blender's own extension tool.

Usage::

    python scripts/build.py [--platform linux-x64 ...] [--out dist] [--bpy-python PATH]

Steps:

1. Download the bundled wheels (pydantic and its exact dependencies; ``pydantic_core`` per platform and
   per CPython that Blender runs: 3.11 and 3.13) into ``.cache/wheels/`` with ``pip download``. Wheels
   already in the cache are reused.
2. Stage a clean package in ``build/stage/``: the contents of ``addon/`` at the root, the manifest with its
   ``wheels`` and ``platforms`` lists filled in for the platforms being built, and ``wheels/``.
3. Run ``blender_ext.py build --split-platforms`` (one zip per platform), then ``blender_ext.py validate``
   on each zip.

``blender_ext.py`` is not vendored: it is found inside an installed PyPI ``bpy`` package
(``bpy/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py``), located without importing ``bpy``,
either in this interpreter, in the one given by ``--bpy-python``, or in ``$MARIONETTE_BPY_PYTHON``.
The tool itself is plain Python and runs with this interpreter (3.11+, it needs ``tomllib``).

Runs with any Python 3.11 that has pip. Exits non-zero with a message if anything fails.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import os
import platform as _platform
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ADDON_DIR = REPO_ROOT / "addon"
MANIFEST_PATH = REPO_ROOT / "blender_manifest.toml"
WHEEL_CACHE_DIR = REPO_ROOT / ".cache" / "wheels"
STAGE_DIR = REPO_ROOT / "build" / "stage"
DEFAULT_OUT_DIR = REPO_ROOT / "dist"

ENV_BPY_PYTHON = "MARIONETTE_BPY_PYTHON"

# Where the extension tool lives inside the PyPI `bpy` package, below `bpy/<version>/`.
_TOOL_REL = Path("scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")
# Blender passes this file as `--valid-tags` when it runs the tool (`blender --command extension build`);
# run standalone, the tool would skip the tags check.
_TAGS_REL = Path("scripts", "modules", "_bpy_internal", "extensions", "tags.py")

# The pip tags understood by the wheel filters below, per Blender platform. `pydantic_core` 2.33.2
# publishes exactly these for cp311 (checked with `pip download`):
#   manylinux_2_17_x86_64.manylinux2014_x86_64, macosx_11_0_arm64, macosx_10_12_x86_64, win_amd64.
PLATFORM_PIP_TAGS: dict[str, str] = {
    "linux-x64": "manylinux_2_17_x86_64",
    "macos-arm64": "macosx_11_0_arm64",
    "macos-x64": "macosx_10_12_x86_64",
    "windows-x64": "win_amd64",
}

# Every CPython the supported Blenders run: 3.11 (4.2 LTS to 5.0) and 3.13 (5.1 to 5.3). Each platform's zip
# carries a binary wheel for each; Blender keeps the ones matching its own Python at install time, and
# refuses to enable an extension whose binary wheels do not cover its Python.
PYTHON_TARGETS: tuple[tuple[str, str], ...] = (("3.11", "cp311"), ("3.13", "cp313"))


@dataclass(frozen=True)
class WheelPin:
    """A distribution bundled as a wheel. `binary` ones are downloaded once per platform."""

    name: str  # normalized wheel file name prefix (underscores)
    version: str
    binary: bool = False

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


# pydantic 2.11.x accepts typing_extensions>=4.12.2, which Blender 5.0's bundled 4.14.1 meets.
# `requests` is NOT bundled: Blender ships it.
WHEELS: tuple[WheelPin, ...] = (
    WheelPin("pydantic", "2.11.10"),
    WheelPin("pydantic_core", "2.33.2", binary=True),
    WheelPin("annotated_types", "0.8.0"),
    WheelPin("typing_inspection", "0.4.2"),
    WheelPin("typing_extensions", "4.14.1"),
)


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


# -----------------------------------------------------------------------------
# Platforms


def host_platform() -> str:
    """This machine's platform in Blender's spelling, e.g. ``linux-x64``, ``macos-arm64``, ``windows-x64``."""
    system = _platform.system().lower()
    machine = _platform.machine().lower()
    system = {"darwin": "macos"}.get(system, system)
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(machine, machine)
    return f"{system}-{machine}"


def wheel_blender_platforms(wheel_filename: str) -> set[str] | None:
    """Blender platforms a wheel file serves, or None for a pure (``any``) wheel."""
    stem = wheel_filename.removesuffix(".whl")
    parts = stem.split("-")
    if len(parts) < 5:
        raise BuildError(f"not a wheel file name: {wheel_filename}")
    result: set[str] = set()
    for tag in parts[-1].split("."):
        if tag == "any":
            return None
        if tag.startswith(("manylinux", "musllinux", "linux")):
            system = "linux"
        elif tag.startswith("macosx"):
            system = "macos"
        elif tag.startswith("win"):
            system = "windows"
        else:
            continue
        if tag.endswith(("_x86_64", "_amd64")):
            result.add(f"{system}-x64")
        elif tag.endswith(("_arm64", "_aarch64")):
            result.add(f"{system}-arm64")
        elif tag.endswith("_universal2"):
            result.update({"macos-x64", "macos-arm64"})
    return result


# -----------------------------------------------------------------------------
# Locating Blender's extension tool


def _bpy_package_dir(bpy_python: str | None) -> Path | None:
    """The directory of the `bpy` package, found without importing it."""
    # Compare unresolved paths: venv interpreters are symlinks to one base Python but see different packages.
    if bpy_python is None or os.path.abspath(bpy_python) == os.path.abspath(sys.executable):
        spec = importlib.util.find_spec("bpy")
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))
    code = (
        "import importlib.util, json\n"
        "s = importlib.util.find_spec('bpy')\n"
        "print(json.dumps(list(s.submodule_search_locations or []) if s else []))\n"
    )
    try:
        proc = subprocess.run([bpy_python, "-c", code], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as ex:
        raise BuildError(f"cannot run {bpy_python} to look for bpy: {ex}") from ex
    locations: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return Path(locations[0]) if locations else None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.name))


def _tool_in(bpy_dir: Path) -> Path | None:
    candidates = [d for d in bpy_dir.iterdir() if d.is_dir() and (d / _TOOL_REL).is_file()]
    if not candidates:
        return None
    return max(candidates, key=_version_key) / _TOOL_REL


def find_blender_ext(bpy_python: str | None = None) -> Path:
    """Path to ``blender_ext.py`` from a PyPI ``bpy`` install.

    Looks in ``bpy_python`` if given, else in this interpreter, then in ``$MARIONETTE_BPY_PYTHON``.
    """
    tried: list[str] = []
    env_python = os.environ.get(ENV_BPY_PYTHON) or None
    candidates: list[str | None] = [bpy_python] if bpy_python else [None, env_python] if env_python else [None]
    for python in candidates:
        label = python or sys.executable
        bpy_dir = _bpy_package_dir(python)
        tried.append(label)
        if bpy_dir is None:
            continue
        tool = _tool_in(bpy_dir)
        if tool is not None:
            return tool
    raise BuildError(
        "Blender's extension tool (bpy/<version>/" + _TOOL_REL.as_posix() + ") was not found; "
        f"no PyPI `bpy` package in: {', '.join(tried)}. "
        f"Install bpy (pip install bpy) or pass --bpy-python / set {ENV_BPY_PYTHON}."
    )


def _valid_tags_file(tool: Path) -> Path | None:
    # tool = bpy/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py
    version_dir = tool.parents[len(_TOOL_REL.parts) - 1]
    tags = version_dir / _TAGS_REL
    return tags if tags.is_file() else None


def _run_tool(tool: Path, args: Sequence[str]) -> str:
    cmd = [sys.executable, str(tool), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or "FATAL_ERROR" in output:
        raise BuildError(f"`blender_ext.py {args[0]}` failed (exit {proc.returncode}):\n{output}")
    return output


def _tags_args(tool: Path) -> list[str]:
    tags = _valid_tags_file(tool)
    return [f"--valid-tags={tags}"] if tags is not None else []


def validate(zip_path: Path, tool: Path | None = None) -> str:
    """Run ``blender_ext.py validate`` on a zip (or staged directory). Returns the tool's output."""
    tool = tool or find_blender_ext()
    return _run_tool(tool, ["validate", *_tags_args(tool), str(zip_path)])


# -----------------------------------------------------------------------------
# Wheels


def _cached(pin: WheelPin, blender_platform: str | None, abi: str, cache_dir: Path) -> Path | None:
    for path in sorted(cache_dir.glob(f"{pin.name}-{pin.version}-*.whl")):
        platforms = wheel_blender_platforms(path.name)
        if not pin.binary and platforms is None:
            return path
        python_tag = path.name.split("-")[-3]
        if pin.binary and platforms is not None and blender_platform in platforms and python_tag == abi:
            return path
    return None


def _pip_download(pin: WheelPin, pip_tag: str, python: tuple[str, str], cache_dir: Path) -> None:
    python_version, abi = python
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--no-deps",
        "--python-version", python_version,
        "--implementation", "cp",
        "--abi", abi,
        "--platform", pip_tag,
        "--dest", str(cache_dir),
        pin.requirement,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(
            f"pip could not download {pin.requirement} for {pip_tag}:\n{(proc.stdout + proc.stderr).strip()}"
        )


def fetch_wheels(platforms: Sequence[str], cache_dir: Path = WHEEL_CACHE_DIR) -> list[Path]:
    """The wheel files for `platforms`, from the cache or downloaded into it. Sorted, no duplicates."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    result: set[Path] = set()
    for pin in WHEELS:
        targets: list[str | None] = list(platforms) if pin.binary else [None]
        pythons = PYTHON_TARGETS if pin.binary else PYTHON_TARGETS[:1]
        for blender_platform in targets:
            for python in pythons:
                found = _cached(pin, blender_platform, python[1], cache_dir)
                if found is None:
                    pip_tag = PLATFORM_PIP_TAGS[blender_platform or host_platform_or_linux()]
                    label = f"{pip_tag}, {python[1]}" if pin.binary else "any"
                    print(f"downloading {pin.requirement} ({label})", flush=True)
                    _pip_download(pin, pip_tag, python, cache_dir)
                    found = _cached(pin, blender_platform, python[1], cache_dir)
                if found is None:
                    raise BuildError(
                        f"no suitable wheel of {pin.requirement} for {blender_platform or 'any platform'} "
                        f"({python[1]}) in {cache_dir} after pip download (did the project publish one?)"
                    )
                result.add(found)
    return sorted(result)


def host_platform_or_linux() -> str:
    """Any known pip platform tag works for pure wheels; prefer the host's."""
    host = host_platform()
    return host if host in PLATFORM_PIP_TAGS else "linux-x64"


# -----------------------------------------------------------------------------
# Staging


def _toml_list(key: str, values: Iterable[str]) -> str:
    items = "".join(f"  {json.dumps(v)},\n" for v in values)
    return f"{key} = [\n{items}]"


def _replace_top_level_list(text: str, key: str, values: Iterable[str]) -> str:
    pattern = re.compile(rf"^{re.escape(key)}\s*=\s*\[.*?\]", re.MULTILINE | re.DOTALL)
    first_table = re.search(r"^\[", text, re.MULTILINE)
    match = pattern.search(text)
    if match is None or (first_table is not None and match.start() > first_table.start()):
        raise BuildError(f"{MANIFEST_PATH.name}: no top-level `{key} = [...]` list to fill in")
    return text[: match.start()] + _toml_list(key, values) + text[match.end() :]


def staged_manifest_text(manifest_text: str, platforms: Sequence[str], wheel_names: Sequence[str]) -> str:
    """The manifest with `platforms` and `wheels` set for this build."""
    wheel_paths = [f"./wheels/{name}" for name in wheel_names]
    text = _replace_top_level_list(manifest_text, "platforms", platforms)
    text = _replace_top_level_list(text, "wheels", wheel_paths)
    data = tomllib.loads(text)
    if data.get("platforms") != list(platforms) or data.get("wheels") != wheel_paths:
        raise BuildError("internal error: rewriting the manifest's platforms/wheels lists failed")
    return text


_STAGE_IGNORE = ("__pycache__", "*.pyc", "*.pyo", ".*", "*.blend1", "*.blend2")


def stage(platforms: Sequence[str], wheels: Sequence[Path], stage_dir: Path = STAGE_DIR) -> Path:
    """Fill `stage_dir` with addon/ (as the root), the filled-in manifest and wheels/."""
    if not (ADDON_DIR / "__init__.py").is_file():
        raise BuildError(f"{ADDON_DIR / '__init__.py'} is missing")
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    shutil.copytree(ADDON_DIR, stage_dir, ignore=shutil.ignore_patterns(*_STAGE_IGNORE))
    for stray in ("blender_manifest.toml", "wheels"):
        if (stage_dir / stray).exists():
            raise BuildError(f"addon/{stray} exists; it would clash with the generated one")
    wheels_dir = stage_dir / "wheels"
    wheels_dir.mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, wheels_dir / wheel.name)
    manifest_text = MANIFEST_PATH.read_text(encoding="utf-8")
    text = staged_manifest_text(manifest_text, platforms, [w.name for w in wheels])
    (stage_dir / "blender_manifest.toml").write_text(text, encoding="utf-8")
    return stage_dir


def _check_manifest_wheels(manifest: dict[str, object], wheels: Sequence[Path]) -> None:
    listed = manifest.get("wheels") or []
    assert isinstance(listed, list)
    expected = [f"./wheels/{w.name}" for w in wheels]
    if sorted(listed) != expected:
        print(
            "warning: blender_manifest.toml's `wheels` list differs from the pinned wheels; "
            "the staged manifest uses:\n  " + "\n  ".join(expected),
            file=sys.stderr,
        )


# -----------------------------------------------------------------------------
# Build


def _manifest() -> dict[str, object]:
    try:
        return tomllib.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as ex:
        raise BuildError(f"cannot read {MANIFEST_PATH}: {ex}") from ex


def zip_name(manifest: dict[str, object], blender_platform: str) -> str:
    """The file name `blender_ext.py build --split-platforms` gives a platform's zip."""
    return f"{manifest['id']}-{manifest['version']}-{blender_platform.replace('-', '_')}.zip"


def build(
    platforms: list[str] | None = None,
    out_dir: Path = DEFAULT_OUT_DIR,
    *,
    bpy_python: str | None = None,
    stage_dir: Path = STAGE_DIR,
    cache_dir: Path = WHEEL_CACHE_DIR,
) -> list[Path]:
    """Build (and validate) one zip per platform; return their paths.

    `platforms` defaults to every platform in the manifest. Raises BuildError on any failure.
    """
    manifest = _manifest()
    all_platforms = manifest.get("platforms")
    if not isinstance(all_platforms, list) or not all_platforms:
        raise BuildError("blender_manifest.toml must list `platforms`")
    selected = list(dict.fromkeys(platforms)) if platforms else [str(p) for p in all_platforms]
    unknown = [p for p in selected if p not in all_platforms or p not in PLATFORM_PIP_TAGS]
    if unknown:
        raise BuildError(f"unknown platform(s) {unknown}; choose from {all_platforms}")

    tool = find_blender_ext(bpy_python)
    print(f"extension tool: {tool}", flush=True)

    wheels = fetch_wheels(selected, cache_dir)
    if set(selected) == set(all_platforms):
        _check_manifest_wheels(manifest, wheels)
    stage(selected, wheels, stage_dir)

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    expected = [out_dir / zip_name(manifest, p) for p in selected]
    for path in expected:
        path.unlink(missing_ok=True)

    output = _run_tool(
        tool,
        ["build", *_tags_args(tool), "--source-dir", str(stage_dir), "--output-dir", str(out_dir),
         "--split-platforms"],
    )  # fmt: skip
    print(output, flush=True)
    missing = [p for p in expected if not p.is_file()]
    if missing:
        raise BuildError(f"blender_ext.py build did not produce {[str(p) for p in missing]}:\n{output}")

    for path in expected:
        _check_zip_contents(path)
        validate(path, tool)
        print(f"validated: {path}", flush=True)
    return expected


def _check_zip_contents(zip_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    for required in ("__init__.py", "blender_manifest.toml"):
        if required not in names:
            raise BuildError(f"{zip_path.name}: {required} is not at the zip root")
    bad = [n for n in names if "__pycache__/" in n or fnmatch.fnmatch(n, "*.py[co]")]
    if bad:
        raise BuildError(f"{zip_path.name}: contains build litter {bad[:5]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--platform",
        dest="platforms",
        action="extend",
        nargs="+",
        metavar="PLATFORM",
        help=f"platform(s) to build (default: all in the manifest); one of {sorted(PLATFORM_PIP_TAGS)}",
    )
    parser.add_argument("--host", action="store_true", help=f"build only this machine's ({host_platform()})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="output directory (default: dist/)")
    parser.add_argument(
        "--bpy-python",
        default=None,
        help=(
            "a Python with the PyPI `bpy` package, used to find blender_ext.py "
            f"(default: this one, then ${ENV_BPY_PYTHON})"
        ),
    )
    args = parser.parse_args(argv)
    platforms: list[str] | None = args.platforms
    if args.host:
        platforms = [*(platforms or []), host_platform()]
    try:
        zips = build(platforms, args.out, bpy_python=args.bpy_python)
    except BuildError as ex:
        print(f"build.py: error: {ex}", file=sys.stderr)
        return 1
    for path in zips:
        print(f"{path}  ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
