"""addon/core must stay plain Python: importing every module must not pull in bpy."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "addon" / "core"


def test_no_core_source_imports_bpy() -> None:
    pattern = re.compile(r"^\s*(import|from)\s+(bpy|mathutils|bmesh|gpu|bl_\w+)\b", re.MULTILINE)
    offenders = [str(p.relative_to(ROOT)) for p in CORE.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_importing_all_of_core_loads_no_bpy() -> None:
    modules = [f"addon.core.{m.name}" for m in pkgutil.walk_packages([str(CORE)]) if not m.ispkg]
    modules += [f"addon.core.providers.{m.name}" for m in pkgutil.iter_modules([str(CORE / "providers")])]
    assert "addon.core.runner" in modules and "addon.core.providers.meshy" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('bpy', 'mathutils', 'bmesh'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
