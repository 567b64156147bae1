"""Modules loaded on first use, so that registering Marionette stays cheap.

Registering imports the operator, panel and property modules; whatever they need only when they run
(the job logic, the providers, pydantic, requests, numpy) is bound through `lazy_import`: a stand-in that
imports the real module (the ordinary way, one copy in sys.modules) on its first attribute access.

Not `importlib.util.LazyLoader`: it puts a not-yet-executed module into sys.modules, and Blender's own
exit handler (`addon_utils.disable_all`) walks sys.modules reading each module's `__dict__`, which would
execute every deferred module at quit, or fail once the extension's files were removed.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any


class _Deferred:
    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<deferred module {self._name!r}{'' if self._module is None else ' (loaded)'}>"


def lazy_import(name: str, package: str | None = None) -> Any:
    """The module `name` (relative to `package`, as importlib.import_module takes them), imported when
    one of its attributes is first used."""
    return _Deferred(importlib.util.resolve_name(name, package))
