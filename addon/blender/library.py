"""Meshy's animation library in the panel: a searchable, filterable, multi-select list.

The catalog is fetched on a worker thread and cached on disk (core.catalog); the pump copies it into
window-manager properties, which are not saved with .blend files. Until the first fetch the list holds
Meshy's short built-in list, so picking works offline.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import Any

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, StringProperty

from ..core import catalog as core_catalog
from ..core.errors import MarionetteError
from ..core.models import AnimationChoice
from . import session

log = logging.getLogger(__name__)

_state: dict[str, Any] = {"catalog": None, "future": None, "error": None, "synced": None}


class MARIONETTE_PG_animation(bpy.types.PropertyGroup):
    action_id: IntProperty()  # type: ignore[valid-type]
    label: StringProperty()  # type: ignore[valid-type]
    category: StringProperty()  # type: ignore[valid-type]
    sub_category: StringProperty()  # type: ignore[valid-type]
    selected: BoolProperty(name="Use", description="Add this animation to the character")  # type: ignore[valid-type]


def _category_items(_self: Any, _context: Any) -> list[tuple[str, str, str]]:
    current = _state["catalog"]
    items = [("ALL", "All Categories", "")]
    if current is not None:
        items += [(c, c, "") for c in current.categories()]
    _category_items.cache = items  # type: ignore[attr-defined]  # Blender needs the strings kept alive
    return items


class MARIONETTE_PG_library(bpy.types.PropertyGroup):
    items: CollectionProperty(type=MARIONETTE_PG_animation)  # type: ignore[valid-type]
    index: IntProperty()  # type: ignore[valid-type]
    search: StringProperty(name="Search", description="Filter animations by name",  # type: ignore[valid-type]
                           options={"TEXTEDIT_UPDATE"})
    category: EnumProperty(name="Category", items=_category_items)  # type: ignore[valid-type]


def visible(item: Any, search: str, category: str) -> bool:
    if category not in ("", "ALL") and item.category != category:
        return False
    needle = search.lower().replace(" ", "").replace("_", "")
    return not needle or needle in item.label.lower().replace(" ", "").replace("_", "")


class MARIONETTE_UL_animations(bpy.types.UIList):
    def draw_item(self, context: Any, layout: Any, data: Any, item: Any, icon: Any, active_data: Any,
                  active_property: Any, index: Any = 0, flt_flag: Any = 0) -> None:
        row = layout.row(align=True)
        row.prop(item, "selected", text="")
        row.label(text=item.label)
        if item.category:
            row.label(text=item.sub_category or item.category)

    def filter_items(self, context: Any, data: Any, propname: str) -> Any:  # (flags, order) as Blender wants
        items = getattr(data, propname)
        flags = [self.bitflag_filter_item if visible(i, data.search, data.category) else 0 for i in items]
        return flags, []


def library(context: bpy.types.Context | None = None) -> Any:
    wm = (context or bpy.context).window_manager
    return wm.marionette_library  # type: ignore[attr-defined]


def chosen(context: bpy.types.Context | None = None) -> list[AnimationChoice]:
    return [AnimationChoice(action_id=i.action_id, name=i.label.replace(" ", "_"))
            for i in library(context).items if i.selected]


def lookup(name: str) -> AnimationChoice | None:
    """An animation of the cached library by name (case, spaces and underscores ignored)."""
    current = _state["catalog"]
    if current is None:
        return None

    def norm(text: str) -> str:
        return text.lower().replace("_", "").replace(" ", "")

    entry = next((e for e in current.entries if norm(e.name) == norm(name)), None)
    return AnimationChoice(action_id=entry.action_id, name=entry.name) if entry else None


def name_of(action_id: int) -> str | None:
    current = _state["catalog"]
    entry = current.by_id(action_id) if current is not None else None
    return entry.name if entry else None


def status() -> str:
    if _state["future"] is not None:
        return "Fetching Meshy's animation library..."
    if _state["error"]:
        return f"Library: {_state['error']}"
    current = _state["catalog"]
    if current is None or not current.fetched_at:
        return "Built-in list (refresh to get Meshy's whole library)"
    import time

    return f"{len(current.entries)} animations, fetched {time.strftime('%Y-%m-%d', time.localtime(current.fetched_at))}"


def _cache() -> core_catalog.CatalogCache:
    return core_catalog.CatalogCache(session.get().root / "animation_library.json")


def refresh() -> None:
    """Start fetching the library on a worker thread (the pump picks the result up)."""
    if _state["future"] is not None:
        return
    current = session.get()
    base = current.config("meshy").base_url
    online = bpy.app.online_access
    future: Future[core_catalog.Catalog] = Future()

    def work() -> None:
        try:
            future.set_result(_cache().fetch(base, online_access=online))
        except BaseException as exc:
            future.set_exception(exc)

    _state["future"], _state["error"] = future, None
    threading.Thread(target=work, name="marionette-library", daemon=True).start()


def pump() -> bool:
    """Main thread: load the cache once, take a finished fetch, copy into the panel list. True if it changed."""
    changed = False
    if _state["catalog"] is None:
        provider = session.get().providers["meshy"]
        _state["catalog"] = _cache().load() or core_catalog.builtin(provider.common_animations)
    future = _state["future"]
    if future is not None and future.done():
        _state["future"] = None
        try:
            _state["catalog"] = future.result()
        except MarionetteError as exc:
            _state["error"] = str(exc)
        except Exception as exc:
            log.exception("fetching the animation library failed")
            _state["error"] = f"{exc.__class__.__name__}: {exc}"
        changed = True
    # Loading a .blend file replaces the window manager (and empties the list): sync again then too.
    lib = library() if bpy.context.window_manager is not None else None
    if lib is not None and (_state["synced"] is not _state["catalog"]
                            or len(lib.items) != len(_state["catalog"].entries)):
        _sync(_state["catalog"])
        changed = True
    return changed


def _sync(current: core_catalog.Catalog) -> None:
    wm = bpy.context.window_manager
    if wm is None:
        return
    lib = library()
    keep = {i.action_id for i in lib.items if i.selected}
    lib.items.clear()
    for entry in current.entries:
        item = lib.items.add()
        item.action_id, item.label = entry.action_id, entry.label
        item.category, item.sub_category = entry.category, entry.sub_category
        item.selected = entry.action_id in keep
    _state["synced"] = current


def reset() -> None:
    _state.update(catalog=None, future=None, error=None, synced=None)


classes = (MARIONETTE_PG_animation, MARIONETTE_PG_library, MARIONETTE_UL_animations)


def register_properties() -> None:
    bpy.types.WindowManager.marionette_library = bpy.props.PointerProperty(  # type: ignore[attr-defined]
        type=MARIONETTE_PG_library)


def unregister_properties() -> None:
    del bpy.types.WindowManager.marionette_library  # type: ignore[attr-defined]
    reset()
