"""Install a built extension zip into a scratch Blender user folder, inside the PyPI ``bpy`` module.

For end-to-end tests that run in their own process (one process per user folder: Blender reads the
user folder location once, when ``bpy`` is first imported)::

    from tests.support import blender_install as bi

    bi.prepare_user_dir(tmp_path / "user")    # BEFORE `import bpy`
    bi.hide_host_packages(bi.BUNDLED_PACKAGES)  # optional, BEFORE anything imports pydantic
    import bpy

    module = bi.install_and_enable(zip_path)  # "bl_ext.user_default.marionette"
    ...
    bi.uninstall(module)

What works on both bpy 4.2 LTS and 5.0 (checked):

- ``bpy.ops.extensions.package_install_files(filepath=..., repo="user_default", enable_on_install=...)``
  runs without a window in the ``bpy`` module and needs no online access for a local file. It unpacks the
  package into ``<user>/extensions/user_default/<id>/``.
- Enabling an extension (``addon_utils.enable``, which the operator also uses) unpacks its wheels into the
  shared ``<user>/extensions/.local/lib/python3.11/site-packages``, which Blender appends to ``sys.path``
  (after the interpreter's own site-packages).
- Caveats found while writing this: the operator returns ``{'FINISHED'}`` even when the zip does not exist
  (it only prints an error), and with ``enable_on_install=True`` an exception in ``register()`` surfaces as
  a bare ``RuntimeError("Error: <message>")``. So this module installs with ``enable_on_install=False``,
  checks the package folder exists, then enables through ``addon_utils.enable`` with an error collector to
  keep the original exception and its traceback.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import site
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_MODULE = "user_default"
EXTENSION_PREFIX = "bl_ext"

# Top-level modules Marionette bundles as wheels. In a real Blender none of them is importable before the
# extension's wheels are unpacked, except typing_extensions, which Blender 5.0 ships itself.
BUNDLED_PACKAGES: tuple[str, ...] = ("pydantic", "pydantic_core", "annotated_types", "typing_inspection")

# Variables that would override parts of BLENDER_USER_RESOURCES if the caller's environment had them.
_USER_DIR_OVERRIDES = (
    "BLENDER_USER_CONFIG",
    "BLENDER_USER_SCRIPTS",
    "BLENDER_USER_DATAFILES",
    "BLENDER_USER_EXTENSIONS",
)


class ExtensionInstallError(RuntimeError):
    """Installing, enabling or disabling the extension failed."""


def prepare_user_dir(path: Path) -> None:
    """Point Blender's user folder (config, scripts, extensions, ...) at `path`.

    Must run BEFORE the first ``import bpy`` in this process: Blender reads ``BLENDER_USER_RESOURCES`` when
    the module initializes. Also removes the narrower ``BLENDER_USER_*`` overrides so nothing of the real
    user's folder is read or written.
    """
    if "bpy" in sys.modules:
        raise RuntimeError("prepare_user_dir() must run before `import bpy` (bpy is already imported)")
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["BLENDER_USER_RESOURCES"] = str(path)
    for name in _USER_DIR_OVERRIDES:
        os.environ.pop(name, None)


class _HostPackageHider(importlib.abc.MetaPathFinder):
    """Resolves the given top-level modules while skipping the interpreter's own site-packages."""

    def __init__(self, names: Iterable[str], hidden_dirs: Iterable[str]) -> None:
        self.names = frozenset(names)
        self.hidden_dirs = frozenset(os.path.realpath(d) for d in hidden_dirs)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if path is not None or fullname not in self.names:
            return None
        search = [p for p in sys.path if os.path.realpath(p or os.getcwd()) not in self.hidden_dirs]
        spec = importlib.machinery.PathFinder.find_spec(fullname, search)
        if spec is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (the interpreter's own copy is hidden by the test)", name=fullname
            )
        return spec


def hide_host_packages(names: Iterable[str] = BUNDLED_PACKAGES) -> None:
    """Make `names` importable only from outside this interpreter's site-packages.

    The PyPI ``bpy`` venv usually has pydantic installed for the unit tests; a real Blender does not. Call
    this before anything imports them, so the extension's own wheels are what gets imported (and tested).
    """
    if any(name in sys.modules for name in names):
        loaded = [n for n in names if n in sys.modules]
        raise RuntimeError(f"hide_host_packages() called after {loaded} were imported")
    hidden = [*site.getsitepackages(), site.getusersitepackages()]
    sys.meta_path.insert(0, _HostPackageHider(names, hidden))


def extensions_site_packages() -> Path:
    """Where Blender unpacks the wheels of enabled extensions (shared by all of them)."""
    import bpy

    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return Path(bpy.utils.user_resource("EXTENSIONS"), ".local", "lib", version, "site-packages")


def _blender() -> tuple[Any, Any]:
    """`bpy` and `addon_utils`; bpy first, as importing it puts Blender's `scripts/modules` on sys.path."""
    import bpy

    return bpy, importlib.import_module("addon_utils")


def _manifest_of(zip_path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(zip_path) as zf:
        return tomllib.loads(zf.read("blender_manifest.toml").decode("utf-8"))


def _preferences() -> Any:
    import bpy

    prefs = bpy.context.preferences
    if prefs is None:
        raise ExtensionInstallError("bpy.context.preferences is not available")
    return prefs


def enabled_addons() -> set[str]:
    """Module names of the enabled add-ons and extensions (``preferences.addons``)."""
    return {addon.module for addon in _preferences().addons}


def _repo(module: str = REPO_MODULE) -> Any:
    for repo in _preferences().extensions.repos:
        if repo.module == module:
            return repo
    raise ExtensionInstallError(f"no extension repository {module!r} in this Blender")


def install_and_enable(zip_path: Path) -> str:
    """Install the extension zip into the ``user_default`` repository and enable it.

    Returns the add-on module name, ``bl_ext.user_default.<id>``; afterwards that module is imported and
    the extension's wheels are importable. Raises ExtensionInstallError (chained to the add-on's own
    exception, if any) when installing or ``register()`` fails.
    """
    bpy, addon_utils = _blender()

    zip_path = Path(zip_path).resolve()
    if not zip_path.is_file():
        raise ExtensionInstallError(f"no such extension zip: {zip_path}")
    pkg_id = str(_manifest_of(zip_path)["id"])
    module = f"{EXTENSION_PREFIX}.{REPO_MODULE}.{pkg_id}"
    repo = _repo()

    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo=REPO_MODULE, enable_on_install=False)
    package_dir = Path(repo.directory, pkg_id)
    if "FINISHED" not in result or not (package_dir / "__init__.py").is_file():
        raise ExtensionInstallError(
            f"package_install_files({zip_path.name}) returned {result}; {package_dir} has no __init__.py"
        )

    errors: list[BaseException] = []
    addon_utils.enable(module, default_set=True, handle_error=errors.append)
    if errors:
        raise ExtensionInstallError(f"enabling {module} failed: {errors[0]!r}") from errors[0]
    if module not in enabled_addons() or module not in sys.modules:
        raise ExtensionInstallError(f"{module} is not enabled after addon_utils.enable()")
    return module


def uninstall(module: str, *, remove_files: bool = False) -> None:
    """Disable the add-on (runs its ``unregister()``); with `remove_files`, also uninstall the package.

    Raises ExtensionInstallError (chained to the add-on's exception) if ``unregister()`` fails.
    """
    bpy, addon_utils = _blender()

    errors: list[BaseException] = []
    addon_utils.disable(module, default_set=True, handle_error=errors.append)
    if errors:
        raise ExtensionInstallError(f"disabling {module} failed: {errors[0]!r}") from errors[0]
    if module in enabled_addons():
        raise ExtensionInstallError(f"{module} is still enabled after addon_utils.disable()")
    mod = sys.modules.get(module)
    if mod is not None and getattr(mod, "__addon_enabled__", False):
        raise ExtensionInstallError(f"{module} still reports __addon_enabled__ after disabling")

    if remove_files:
        repo_module, _, pkg_id = module.removeprefix(EXTENSION_PREFIX + ".").partition(".")
        repo = _repo(repo_module)
        bpy.ops.extensions.package_uninstall(repo_directory=repo.directory, pkg_id=pkg_id)
        if Path(repo.directory, pkg_id).exists():
            raise ExtensionInstallError(f"{pkg_id} is still installed in {repo.directory}")
