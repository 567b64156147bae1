"""The import transaction: :func:`atomic_import`, which both entry points run their work in.

It saves what the artist had (selection, active object, mode, active collection) and the scene settings
Blender's importers change (frame range, current frame, fps, scene custom properties, the glTF add-on's
animation track list), snapshots every ``bpy.data`` ID collection, leaves Edit Mode (import operators need
Object Mode) and runs the work under a context override (:func:`context_override`). On any failure it
removes every data-block created since the snapshot, restores all of the above and raises
:class:`ImportFailed` (an unexpected error is logged with its traceback and said in one line).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import bpy

from ...core.errors import ImportFailed
from . import ids

log = logging.getLogger(__name__)


@dataclass
class SceneSettings:
    frame_start: int
    frame_end: int
    frame_current: int
    fps: int
    fps_base: float
    custom_keys: set[str]
    gltf_tracks: list[str] | None
    gltf_applied: int | None

    @classmethod
    def capture(cls, scene: bpy.types.Scene) -> SceneSettings:
        first = bpy.data.scenes[0] if len(bpy.data.scenes) else None
        tracks = getattr(first, "gltf2_animation_tracks", None) if first is not None else None
        applied = getattr(first, "gltf2_animation_applied", None) if first is not None else None
        return cls(
            frame_start=scene.frame_start,
            frame_end=scene.frame_end,
            frame_current=scene.frame_current,
            fps=scene.render.fps,
            fps_base=scene.render.fps_base,
            custom_keys=set(scene.keys()),
            gltf_tracks=[t.name for t in tracks] if tracks is not None else None,
            gltf_applied=applied if isinstance(applied, int) else None,
        )

    def restore(self, scene: bpy.types.Scene, *, fps: bool = True) -> None:
        scene.frame_start = self.frame_start
        scene.frame_end = self.frame_end
        scene.frame_current = self.frame_current
        if fps:
            scene.render.fps = self.fps
            scene.render.fps_base = self.fps_base
        for key in set(scene.keys()) - self.custom_keys:
            del scene[key]
        self.restore_gltf_tracks(self.gltf_tracks)

    def restore_gltf_tracks(self, names: list[str] | None) -> None:
        if names is None or not len(bpy.data.scenes):
            return
        first = bpy.data.scenes[0]
        tracks = getattr(first, "gltf2_animation_tracks", None)
        if tracks is None or [t.name for t in tracks] == names:
            return
        tracks.clear()
        for name in names:
            tracks.add().name = name
        if self.gltf_applied is not None and hasattr(first, "gltf2_animation_applied"):
            first.gltf2_animation_applied = self.gltf_applied


@dataclass
class UserState:
    """What the artist had selected/active, to restore when the import fails."""

    selected: list[str]
    active: str | None
    mode: str
    active_layer_collection: str | None
    settings: SceneSettings

    @classmethod
    def capture(cls, scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> UserState:
        active = view_layer.objects.active
        layer = view_layer.active_layer_collection
        return cls(
            selected=[o.name for o in view_layer.objects if o.select_get(view_layer=view_layer)],
            active=active.name if active is not None else None,
            mode=active.mode if active is not None else "OBJECT",
            active_layer_collection=layer.collection.name if layer is not None else None,
            settings=SceneSettings.capture(scene),
        )

    def restore_selection(self, view_layer: bpy.types.ViewLayer) -> None:
        selected = set(self.selected)
        for obj in view_layer.objects:
            obj.select_set(obj.name in selected, view_layer=view_layer)
        active = view_layer.objects.get(self.active) if self.active else None
        view_layer.objects.active = active


def _find_layer_collection(root: bpy.types.LayerCollection, name: str) -> bpy.types.LayerCollection | None:
    if root.collection.name == name:
        return root
    for child in root.children:
        found = _find_layer_collection(child, name)
        if found is not None:
            return found
    return None


def set_active_collection(view_layer: bpy.types.ViewLayer, name: str | None) -> None:
    if name is None:
        return
    layer = _find_layer_collection(view_layer.layer_collection, name)
    if layer is not None:
        view_layer.active_layer_collection = layer


@contextlib.contextmanager
def context_override(
    context: bpy.types.Context, scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer
) -> Iterator[None]:
    """A context in which import operators run: a window when there is one (GUI, timers), our scene."""
    members: dict[str, Any] = {"scene": scene, "view_layer": view_layer}
    window = getattr(context, "window", None)
    manager = getattr(context, "window_manager", None)
    if window is None and manager is not None and len(manager.windows):
        window = manager.windows[0]
    if window is not None:
        members["window"] = window
    if (getattr(context, "window", None) == window and context.scene == scene
            and context.view_layer == view_layer):
        # Nothing to override: skip it, as every bpy.context lookup inside an override is slower and
        # the glTF importer makes many (about 15% of a 127-animation import).
        yield
        return
    with context.temp_override(**members):
        yield


def ensure_object_mode(view_layer: bpy.types.ViewLayer) -> None:
    active = view_layer.objects.active
    mode_set: Any = bpy.ops.object.mode_set
    if active is not None and active.mode != "OBJECT" and mode_set.poll():
        mode_set(mode="OBJECT")


def _rollback(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, before: ids.Snapshot,
              state: UserState) -> None:
    try:
        ensure_object_mode(view_layer)
    except RuntimeError as exc:  # pragma: no cover - defensive
        log.debug("could not leave edit mode during rollback: %s", exc)
    ids.remove_ids(ids.created_since(before))
    state.settings.restore(scene)
    set_active_collection(view_layer, state.active_layer_collection)
    state.restore_selection(view_layer)
    active = view_layer.objects.active
    if active is not None and state.mode != "OBJECT" and active.mode != state.mode:
        mode_set: Any = bpy.ops.object.mode_set
        try:
            mode_set(mode=state.mode)
        except (RuntimeError, TypeError) as exc:
            log.debug("could not restore mode %s: %s", state.mode, exc)


@contextlib.contextmanager
def atomic_import(
    context: bpy.types.Context,
    scene: bpy.types.Scene,
    view_layer: bpy.types.ViewLayer,
    *,
    what: str,
    failure: str,
    unchanged: str,
    undo: Callable[[], None] | None = None,
) -> Iterator[UserState]:
    """Run the block as one import: all of it, or nothing left behind.

    Yields the artist's saved state (the block restores parts of it on success: the import operators
    change scene settings the result must not keep). On failure everything created since entering is
    removed, the saved state restored, then `undo` (the caller's own repairs) runs. ImportFailed passes
    through; any other error is logged as "`what` failed" and raised as ImportFailed
    "`failure`: <error>. `unchanged`".
    """
    state = UserState.capture(scene, view_layer)
    before = ids.snapshot()
    try:
        with context_override(context, scene, view_layer):
            try:
                ensure_object_mode(view_layer)
                yield state
            except BaseException:
                _rollback(scene, view_layer, before, state)
                if undo is not None:
                    undo()
                raise
    except ImportFailed:
        raise
    except Exception as exc:
        log.exception("%s failed", what)
        raise ImportFailed(f"{failure}: {exc}. {unchanged}") from exc
