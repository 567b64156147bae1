"""Options for Blender's import/export operators that differ between versions (4.2 to 5.3)."""

from __future__ import annotations

from typing import Any


def known_options(operator: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """Keep only the options this Blender's `operator` knows (a newer option is dropped on an older one)."""
    known = {p.identifier for p in operator.get_rna_type().properties}
    return {k: v for k, v in wanted.items() if k in known}
