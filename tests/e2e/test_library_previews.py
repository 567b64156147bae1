"""Previews before paying: the animation picker shows each Meshy animation's preview (fetched in the
background from the catalog's previewUrl, cached on disk, never during a draw), and Claythis's motions
show a category. The emulator's catalog points a few previews at its own asset host (a GIF like Meshy's
CDN serves, and a PNG); the rest stay on cdn.meshy.ai, which is refused while online access is off."""

from __future__ import annotations

import importlib
import time
from types import ModuleType, SimpleNamespace
from typing import Any

import bpy
import pytest

from tests.emulator import Emulator
from tests.unit.test_previews import make_gif, pattern, png_bytes


class Layout:
    """Records what a UIList item or a panel draws (see test_panel_draw.Recorder)."""

    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        self.calls = calls

    def row(self, **_kwargs: Any) -> Layout:
        return self

    column = box = row

    def prop(self, _data: Any, name: str, **kwargs: Any) -> None:
        self.calls.append(("prop", name))

    def operator(self, idname: str, **_kwargs: Any) -> Any:
        self.calls.append(("operator", idname))
        return SimpleNamespace()

    def label(self, **kwargs: Any) -> None:
        self.calls.append(("label", (kwargs.get("text", ""), kwargs.get("icon_value", 0))))

    def template_list(self, *_args: Any, **_kwargs: Any) -> None:
        self.calls.append(("list", None))

    def template_icon(self, **kwargs: Any) -> None:
        self.calls.append(("icon", kwargs["icon_value"]))


def pump(ext: ModuleType) -> None:
    importlib.import_module(ext.__name__ + ".blender.timer").pump()


def wait_for(ext: ModuleType, done: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        pump(ext)
        time.sleep(0.01)


@pytest.fixture
def catalog_with_previews(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Idle's preview is a GIF on the emulator's asset host, Casual_Walk's a PNG; the rest stay on the CDN."""
    catalog = [dict(entry) for entry in emulator.meshy.catalog]
    emulator.files.put("previews", "Idle.gif", data=make_gif(24, 16, pattern))
    emulator.files.put("previews", "Walking.png", data=png_bytes())
    urls = {"Idle": emulator.files.url("previews", "Idle.gif", 86400),
            "Casual_Walk": emulator.files.url("previews", "Walking.png", 86400)}
    for entry in catalog:
        if entry["name"] in urls:
            entry["previewUrl"] = urls[entry["name"]]
    assert all(name in {e["name"] for e in catalog} for name in urls)
    monkeypatch.setattr(emulator.meshy, "catalog", catalog)
    return urls


def test_previews_are_fetched_in_the_background_and_cached(ext: ModuleType, emulator: Emulator, session: Any,
                                                           catalog_with_previews: dict[str, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    library = importlib.import_module(ext.__name__ + ".blender.library")
    thumbnails = importlib.import_module(ext.__name__ + ".blender.thumbnails")
    real_icon_for = thumbnails.icon_for
    # Without a window Blender makes no icons (icon_id is always 0): stand in a number once the preview
    # image is loaded, so the test sees which draws had a picture.
    monkeypatch.setattr(thumbnails, "icon_for", lambda path: real_icon_for(path) or (4242 if path else 0))
    ui = importlib.import_module(ext.__name__ + ".blender.ui")
    (session.root / "animation_library.json").unlink(missing_ok=True)
    library.reset()
    bpy.context.scene.marionette.provider = "meshy"
    pump(ext)
    assert bpy.ops.marionette.refresh_animation_library() == {"FINISHED"}
    items = bpy.context.window_manager.marionette_library.items
    wait_for(ext, lambda: any(i.name == "Idle" and i.preview_url == catalog_with_previews["Idle"] for i in items))
    idle = next(i for i in items if i.name == "Idle")
    walking = next(i for i in items if i.name == "Casual_Walk")
    remote = next(i for i in items if i.preview_url.startswith("https://cdn.meshy.ai/"))

    def draw_item(item: Any) -> tuple[str, int]:
        calls: list[tuple[str, Any]] = []
        library.MARIONETTE_UL_animations.draw_item(SimpleNamespace(), bpy.context, Layout(calls), None, item, 0,
                                                   None, "")
        return next(c[1] for c in calls if c[0] == "label" and c[1][0] == item.label)

    asked = emulator.count("GET", r"^/assets/previews/")
    started = time.perf_counter()
    assert draw_item(idle) == (idle.label, 0)  # not there yet: queued, the draw goes on without it
    assert draw_item(walking) == (walking.label, 0)
    assert draw_item(remote) == (remote.label, 0)
    assert time.perf_counter() - started < 0.5  # nothing waited for the network (and no picture yet above)
    wait_for(ext, lambda: draw_item(idle)[1] > 0 and draw_item(walking)[1] > 0)
    # Blender really reads the cached files (the GIF's first frame as a 24x16 PNG).
    loaded = {tuple(p.image_size) for p in thumbnails._previews.values()}
    assert {(24, 16), (2, 2)} <= loaded
    assert emulator.count("GET", r"^/assets/previews/") == asked + 2
    cached = sorted(p.suffix for p in (session.root / "previews").iterdir())
    assert cached == [".png", ".png"]  # the GIF's first frame was stored as PNG
    fetcher = session.library.previews
    wait_for(ext, lambda: fetcher.failure(remote.preview_url) is not None)
    assert "nline" in fetcher.failure(remote.preview_url)  # online access is off: nothing sent to the CDN
    assert draw_item(remote) == (remote.label, 0)

    # The active item's preview, larger, under the list.
    lib = bpy.context.window_manager.marionette_library
    lib.index = list(items).index(idle)
    panel = next(p for p in ui.classes if p.__name__ == "MARIONETTE_PT_animations")
    calls: list[tuple[str, Any]] = []
    panel.draw(SimpleNamespace(layout=Layout(calls)), bpy.context)
    assert ("icon", draw_item(idle)[1]) in calls

    # Cached on disk: a new session shows them without asking again.
    library.reset()
    pump(ext)
    items = bpy.context.window_manager.marionette_library.items
    idle = next(i for i in items if i.name == "Idle")
    assert draw_item(idle)[1] > 0
    assert emulator.count("GET", r"^/assets/previews/") == asked + 2


def test_claythis_motions_show_their_category(ext: ModuleType) -> None:
    library = importlib.import_module(ext.__name__ + ".blender.library")
    library.reset()
    bpy.context.scene.marionette.provider = "claythis"
    pump(ext)
    items = {i.name: i for i in bpy.context.window_manager.marionette_library.items}
    assert items["Walk_Loop_Rig"].category == "Locomotion"
    assert items["Sword_Attack_Rig"].category == "Combat"
    assert items["Idle_Loop_Rig"].category == "Idle"
    assert items["Jump_Start_Rig"].category == "Jumping"
    assert items["Hit_Chest_Rig"].category == "Reactions"
    assert all(i.category for i in items.values())
    combat = [i for i in items.values() if library.visible(i, "", "Combat")]
    assert combat and all(i.category == "Combat" for i in combat)
    bpy.context.scene.marionette.provider = "meshy"
