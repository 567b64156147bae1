"""bpy.data bookkeeping: which data-blocks an import created, found by comparing every ID collection of
``bpy.data`` before and after (pre-existing data is never touched), and their removal."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import bpy

# ID collections of bpy.data that belong to the UI or to libraries: never diffed, never removed.
_SKIPPED_ID_COLLECTIONS = frozenset({"libraries", "screens", "window_managers", "workspaces"})

Snapshot = dict[str, set[int]]


@functools.cache
def id_collection_names() -> tuple[str, ...]:
    """The ID collections of bpy.data (objects, meshes, actions, images, ...), found through RNA."""
    names = []
    for prop in bpy.types.BlendData.bl_rna.properties:
        if not isinstance(prop, bpy.types.CollectionProperty) or prop.identifier in _SKIPPED_ID_COLLECTIONS:
            continue
        fixed = prop.fixed_type
        rna_type = getattr(bpy.types, fixed.identifier, None) if fixed is not None else None
        # A collection typed as the base ID (Blender 5.2's `all_ids`) holds the data-blocks of every other
        # collection again: diffing it only costs time (the diff below dedupes anyway).
        if isinstance(rna_type, type) and issubclass(rna_type, bpy.types.ID) and rna_type is not bpy.types.ID:
            names.append(prop.identifier)
    return tuple(names)


def snapshot() -> Snapshot:
    return {name: {id_.as_pointer() for id_ in getattr(bpy.data, name)} for name in id_collection_names()}


def created_since(before: Snapshot) -> list[bpy.types.ID]:
    """Every data-block created since `before`, each once: a data-block reachable through two collections
    (Blender 5.2+'s `all_ids` holds them all) must not be counted, turned or removed twice."""
    created: dict[int, bpy.types.ID] = {}
    for name in id_collection_names():
        known = before.get(name, set())
        for id_ in getattr(bpy.data, name):
            pointer = id_.as_pointer()
            if pointer not in known:
                created.setdefault(pointer, id_)
    return list(created.values())


def remove_ids(ids: Sequence[bpy.types.ID]) -> None:
    if ids:
        bpy.data.batch_remove(ids=list(ids))
