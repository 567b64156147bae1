"""Build the test characters once per bpy version and reuse them.

``ensure_assets()`` returns ``{file name: path}`` for every file ``build_character.py`` writes
(``rigged.glb``, ``walking.glb``, ``multi.glb``, ``sample.png``, ``manifest.json``...), plus the asset
kinds the provider emulator looks up (``model``, ``rigged``, ``rigged_fbx``, ``walking``, ``running``,
``animation``: see :data:`EMULATOR_KINDS`) as aliases of the same paths. The files live in
``~/.cache/marionette/assets/<bpy version>/`` (``$MARIONETTE_CACHE/assets``; or
``<cache_root>/<bpy version>/``) and are rebuilt only when
``build_character.py`` changes: a stamp file records a hash of it.

The build always runs in a subprocess (``build_character.py`` resets Blender to an empty scene), with
the Python named by ``MARIONETTE_BPY_PYTHON`` or else ``sys.executable``; that Python needs ``bpy``, the
calling one does not.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Asset kind (as tests/emulator names them) -> file name; returned as aliases by ensure_assets().
from tests.emulator.server import ASSET_FILES as EMULATOR_KINDS

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = Path(__file__).resolve().with_name("build_character.py")
# Shared by every checkout and CI clone on the machine (builds are locked and renamed into place).
_USER_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "marionette"
DEFAULT_CACHE_ROOT = Path(os.environ.get("MARIONETTE_CACHE") or _USER_CACHE) / "assets"
STAMP_NAME = ".stamp.json"
BUILD_TIMEOUT_S = 900


def bpy_python() -> str:
    """The Python used to build: $MARIONETTE_BPY_PYTHON, else this interpreter."""
    return os.environ.get("MARIONETTE_BPY_PYTHON") or sys.executable


def bpy_version(python: str | None = None) -> str:
    """'major.minor.patch' of the bpy that `python` (default: bpy_python()) would import."""
    python = python or bpy_python()
    # Compare the paths as given: venv interpreters are symlinks to one base Python.
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        bpy = sys.modules.get("bpy")
        if bpy is not None:
            return ".".join(str(part) for part in bpy.app.version)
        try:
            return importlib.metadata.version("bpy")
        except importlib.metadata.PackageNotFoundError as exc:
            raise RuntimeError(
                f"{python} has no bpy; run with a bpy venv or set MARIONETTE_BPY_PYTHON"
            ) from exc
    probe = "import importlib.metadata as m; print(m.version('bpy'))"
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{python} has no bpy: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def script_hash() -> str:
    return hashlib.sha256(BUILD_SCRIPT.read_bytes()).hexdigest()


def _read_stamp(folder: Path) -> dict[str, object] | None:
    try:
        stamp = json.loads((folder / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _valid(folder: Path, digest: str) -> dict[str, Path] | None:
    stamp = _read_stamp(folder)
    if stamp is None or stamp.get("hash") != digest:
        return None
    names = stamp.get("files")
    if not isinstance(names, list) or not names:
        return None
    files = {str(name): folder / str(name) for name in names}
    if not all(path.is_file() for path in files.values()):
        return None
    for kind, file_name in EMULATOR_KINDS.items():
        if file_name in files:
            files.setdefault(kind, files[file_name])
    return files


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Serialise builds between processes (pytest-xdist, two venvs at once) where fcntl exists."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock, the rename below is still atomic
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _build(python: str, target: Path, digest: str, version: str) -> dict[str, Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        env = dict(os.environ)
        env.setdefault("PYTHONHASHSEED", "0")
        done = subprocess.run(
            [python, str(BUILD_SCRIPT), str(work)],
            cwd=str(REPO_ROOT),
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stdout[-2000:] + "\n" + done.stderr[-4000:]).strip()
            raise RuntimeError(f"building the test assets failed (exit {done.returncode}):\n{tail}")
        names = sorted(p.name for p in work.iterdir() if p.is_file())
        stamp = {"hash": digest, "bpy": version, "python": python, "files": names}
        (work / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
        work.chmod(0o755)  # mkdtemp made it private
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    files = _valid(target, digest)
    if files is None:  # pragma: no cover - only if the folder vanished under us
        raise RuntimeError(f"test assets missing from {target} right after building them")
    return files


def ensure_assets(cache_root: Path | None = None) -> dict[str, Path]:
    """Return {file name: path} of the test characters, building them first when needed."""
    python = bpy_python()
    version = bpy_version(python)
    root = Path(cache_root) if cache_root is not None else DEFAULT_CACHE_ROOT
    target = root / version
    digest = script_hash()
    files = _valid(target, digest)
    if files is not None:
        return files
    with _locked(root / f".{version}.lock"):
        files = _valid(target, digest)  # another process may have built it while we waited
        if files is not None:
            return files
        return _build(python, target, digest, version)


if __name__ == "__main__":
    for name, path in sorted(ensure_assets().items()):
        print(f"{name}: {path}")
