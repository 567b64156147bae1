"""Job thumbnails for the panel, through one bpy.utils.previews collection (freed at unregister)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy.utils.previews

_previews: Any = None


def icon_for(path: str | None) -> int:
    """The icon id of a picture on disk (0 when there is none or it cannot be read)."""
    global _previews
    if not path or not Path(path).is_file():
        return 0
    if _previews is None:
        _previews = bpy.utils.previews.new()
    preview = _previews.get(path)
    if preview is None:
        preview = _previews.load(path, path, "IMAGE")
    return int(preview.icon_id)


def clear() -> None:
    global _previews
    if _previews is not None:
        bpy.utils.previews.remove(_previews)
        _previews = None
