"""The animation list in the panel: searchable, filterable, multi-select, for the chosen provider.

A provider that serves its library has it fetched on the session's background and cached on disk
(core.catalog); others (Claythis's Quaternius motions) have a built-in list. The pump copies the chosen
provider's list into window-manager properties, which are not saved with .blend files. Until the first
fetch a served library is a short built-in one, so picking works offline. What the panel knows lives in
the session's :class:`LibraryState`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, StringProperty

from ..core.errors import MarionetteError
from . import session, thumbnails
from .lazy import lazy_import

if TYPE_CHECKING:
    from ..core import catalog as core_catalog
    from ..core import models, motion_categories, previews
    from ..core.background import Outcome
else:  # loaded on first use, not when Marionette is enabled
    core_catalog = lazy_import("..core.catalog", __package__)
    models = lazy_import("..core.models", __package__)
    motion_categories = lazy_import("..core.motion_categories", __package__)
    previews = lazy_import("..core.previews", __package__)

log = logging.getLogger(__name__)


class LibraryState:
    """What the panel knows of the animation libraries. Owned by the session (main thread only)."""

    def __init__(self) -> None:
        self.catalogs: dict[str, core_catalog.Catalog] = {}  # provider id -> its list
        self.provider = ""  # whose list the panel shows
        self.fetching: str | None = None  # the provider whose library is being fetched
        self.error: str | None = None
        self.synced: core_catalog.Catalog | None = None  # the list last copied into the panel
        self.previews: previews.PreviewFetcher | None = None
        self.online = False  # Blender's online access, as the pump saw it last
        self.changed = False  # a fetch or a preview arrived: the panel redraws

    def fetcher(self, current: session.Session) -> previews.PreviewFetcher:
        if self.previews is None:

            def arrived(_url: str) -> None:  # main thread, from the pump
                self.changed = True

            # The worker reads online access from here (the pump copies it from bpy), never from bpy.
            self.previews = previews.PreviewFetcher(current.root / "previews", lambda: self.online, arrived,
                                                    background=current.background)
        return self.previews


def _state() -> LibraryState | None:
    current = session.get_or_none()
    return current.library if current is not None else None


class MARIONETTE_PG_animation(bpy.types.PropertyGroup):
    action_id: IntProperty()  # type: ignore[valid-type]
    name: StringProperty()  # type: ignore[valid-type]
    label: StringProperty()  # type: ignore[valid-type]
    category: StringProperty()  # type: ignore[valid-type]
    sub_category: StringProperty()  # type: ignore[valid-type]
    preview_url: StringProperty()  # type: ignore[valid-type]
    selected: BoolProperty(name="Use", description="Add this animation to the character")  # type: ignore[valid-type]


def _current() -> core_catalog.Catalog | None:
    state = _state()
    return state.catalogs.get(state.provider) if state is not None else None


def _category_items(_self: Any, _context: Any) -> list[tuple[str, str, str]]:
    current = _current()
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
        icon = preview_icon(item.preview_url)
        if icon:
            row.label(text=item.label, icon_value=icon)
        else:
            row.label(text=item.label)
        if item.category:
            row.label(text=item.sub_category or item.category)

    def filter_items(self, context: Any, data: Any, propname: str) -> Any:  # (flags, order) as Blender wants
        items = getattr(data, propname)
        flags = [self.bitflag_filter_item if visible(i, data.search, data.category) else 0 for i in items]
        return flags, []


def preview_icon(url: str) -> int:
    """The icon of an animation's preview when it is on disk, else 0 (and it is fetched in the background).
    Safe to call from draw(): no network, one stat of the cache file."""
    current = session.get_or_none()
    if not url or current is None:
        return 0
    path = current.library.fetcher(current).path(url)
    return thumbnails.icon_for(str(path)) if path is not None else 0


def library(context: bpy.types.Context | None = None) -> Any:
    wm = (context or bpy.context).window_manager
    return wm.marionette_library  # type: ignore[attr-defined]


def chosen(context: bpy.types.Context | None = None) -> list[models.AnimationChoice]:
    return [models.AnimationChoice(action_id=i.action_id, name=i.name) for i in library(context).items if i.selected]


def lookup(name: str) -> models.AnimationChoice | None:
    """An animation of the current list by name (case, spaces and underscores ignored)."""
    current = _current()
    if current is None:
        return None

    def norm(text: str) -> str:
        return text.lower().replace("_", "").replace(" ", "")

    entry = next((e for e in current.entries if norm(e.name) == norm(name)), None)
    return models.AnimationChoice(action_id=entry.action_id, name=entry.name) if entry else None


def name_of(action_id: int) -> str | None:
    current = _current()
    entry = current.by_id(action_id) if current is not None else None
    return entry.name if entry else None


def status() -> str:
    state = _state()
    if state is not None and state.fetching is not None:
        return "Fetching the animation library..."
    if state is not None and state.error:
        return f"Library: {state.error}"
    current = _current()
    if current is None or not current.fetched_at:
        return "Built-in list" + (" (refresh to get the whole library)" if _fetchable() else "")
    import time

    return f"{len(current.entries)} animations, fetched {time.strftime('%Y-%m-%d', time.localtime(current.fetched_at))}"


def catalog_provider(current: session.Session) -> Any:
    """The provider whose library the panel shows by default: the first that serves a catalog, else the
    first with animations to choose."""
    providers = list(current.providers.values())
    return next((p for p in providers if p.can("animation_catalog")), None) or current.provider_for("animations")


def _cache(provider_id: str) -> core_catalog.CatalogCache:
    current = session.get()
    # The default library keeps the file name it always had, so an existing cache stays valid.
    default = catalog_provider(current).id
    name = "animation_library.json" if provider_id == default else f"animation_library_{provider_id}.json"
    return core_catalog.CatalogCache(current.root / name)


def _fetchable() -> bool:
    current = session.get()
    provider = current.providers.get(current.library.provider)
    return bool(provider and provider.fetches_animation_catalog)


def refresh() -> None:
    """Start fetching the current provider's library in the background (the pump takes the result)."""
    current = session.get()
    state = current.library
    if state.fetching is not None or not _fetchable():
        return
    provider_id = state.provider
    provider = current.providers[provider_id]
    base = current.config(provider_id).base_url
    online = bpy.app.online_access
    cache = _cache(provider_id)

    def work() -> core_catalog.Catalog:  # on the worker: no bpy
        return cache.fetch(base, online_access=online, read=provider.fetch_animation_catalog)

    def done(outcome: Outcome[core_catalog.Catalog]) -> None:  # main thread, from the pump
        state.fetching = None
        state.changed = True
        try:
            state.catalogs[provider_id] = outcome.get()
        except MarionetteError as exc:
            state.error = str(exc)
        except Exception as exc:
            log.error("fetching the animation library failed", exc_info=exc)
            state.error = f"{exc.__class__.__name__}: {exc}"

    state.fetching, state.error = provider_id, None
    if not current.background.submit("library", work, done):
        state.fetching = None


def pump() -> bool:
    """Main thread: load lists, copy the chosen provider's list into the panel (a finished fetch was
    taken by the background's drain just before). True if the panel changed."""
    changed = False
    current = session.get()
    state = current.library
    scene = bpy.context.scene
    props = getattr(scene, "marionette", None) if scene is not None else None
    provider_id = props.provider if props is not None else state.provider
    provider = current.providers.get(provider_id)
    if provider is None or not provider.common_animations:
        provider = catalog_provider(current)
        provider_id = provider.id
    state.provider = provider_id
    catalogs = state.catalogs
    if provider_id not in catalogs:
        cached = _cache(provider_id).load() if provider.fetches_animation_catalog else None
        catalogs[provider_id] = cached or _builtin(provider)
    online = bool(bpy.app.online_access)
    if online and not state.online and state.previews is not None:
        state.previews.forget()  # online access was just turned on: try the refused previews again
    state.online = online
    if state.changed:
        state.changed = False
        changed = True
    # Loading a .blend file replaces the window manager (and empties the list): sync again then too.
    catalog = catalogs[provider_id]
    lib = library() if bpy.context.window_manager is not None else None
    if lib is not None and (state.synced is not catalog or len(lib.items) != len(catalog.entries)):
        _sync(state, catalog)
        changed = True
    return changed


def _sync(state: LibraryState, current: core_catalog.Catalog) -> None:
    wm = bpy.context.window_manager
    if wm is None:
        return
    lib = library()
    keep = {i.action_id for i in lib.items if i.selected}
    lib.items.clear()
    for entry in current.entries:
        item = lib.items.add()
        item.action_id, item.name, item.label = entry.action_id, entry.name, entry.label
        item.category, item.sub_category = entry.category, entry.sub_category
        item.preview_url = entry.preview_url
        item.selected = entry.action_id in keep
    state.synced = current


def _builtin(provider: Any) -> core_catalog.Catalog:
    catalog = core_catalog.builtin(provider.common_animations)
    if not provider.can("animation_catalog"):  # only clip names: they say what they are (Quaternius's do)
        for entry in catalog.entries:
            entry.category = entry.category or motion_categories.motion_category(entry.name)
    return catalog


def reset() -> None:
    """Forget the lists and previews the panel knows (the disk caches stay): as in a new session."""
    current = session.get_or_none()
    if current is None:
        return
    if current.library.previews is not None:
        current.library.previews.stop()
    current.library = LibraryState()


classes = (MARIONETTE_PG_animation, MARIONETTE_PG_library, MARIONETTE_UL_animations)


def register_properties() -> None:
    bpy.types.WindowManager.marionette_library = bpy.props.PointerProperty(  # type: ignore[attr-defined]
        type=MARIONETTE_PG_library)


def unregister_properties() -> None:
    del bpy.types.WindowManager.marionette_library  # type: ignore[attr-defined]
    reset()
