"""Reading actions on every Blender: 4.2-4.4 keep an action's F-curves on `action.fcurves`; 5.0+ keep
them in layers > strips > channelbags, one channelbag per slot (what the action animates)."""

from __future__ import annotations

from typing import Any

import bpy


def fcurves(action: bpy.types.Action, slot: Any = None) -> list[Any]:
    """The F-curves of `action`: for `slot` only when one is given and the action is layered."""
    layers = getattr(action, "layers", None)
    if layers is not None and len(layers):
        curves: list[Any] = []
        for layer in layers:
            for strip in layer.strips:
                for bag in getattr(strip, "channelbags", ()):
                    if slot is None or bag.slot == slot:
                        curves.extend(bag.fcurves)
        return curves
    return list(getattr(action, "fcurves", ()))
