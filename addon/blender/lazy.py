"""Modules loaded on first use, so that registering Marionette stays cheap.

Registering imports the operator, panel and property modules; whatever they need only when they run
(the job logic, the providers, pydantic, requests, numpy) is bound through `lazy_import`, the standard
library's `importlib.util.LazyLoader`: the module object exists at once and executes on its first
attribute access.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str, package: str | None = None) -> ModuleType:
    """The module `name` (relative to `package`, as importlib.import_module takes them), executed when one
    of its attributes is first used."""
    name = importlib.util.resolve_name(name, package)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
