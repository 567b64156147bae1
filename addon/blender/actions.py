"""Reading actions on every Blender: 4.2-4.4 keep an action's F-curves on `action.fcurves`; 5.0+ keep
them in layers > strips > channelbags, one channelbag per slot (what the action animates)."""

from __future__ import annotations

import math
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


def add_track(anim_data: Any, action: bpy.types.Action, slot: Any, name: str,
              start: float | None = None) -> Any:
    """A muted NLA track holding `action` (on `slot` where actions have slots), starting at its first
    frame (or `start`); returns the strip."""
    track = anim_data.nla_tracks.new()
    track.name = name
    first = action.frame_range[0] if start is None else start
    strip = track.strips.new(name, math.floor(first), action)
    if strip.frame_start != first:  # keys at fractional frames
        strip.frame_start_ui = first
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot
    track.mute = True
    track.select = False
    return strip


def make_active(anim_data: Any, action: bpy.types.Action, slot: Any) -> None:
    """`action` (on `slot`) plays as the object's own action, whole and alone."""
    anim_data.action = action
    if slot is not None and hasattr(anim_data, "action_slot"):
        anim_data.action_slot = slot
    anim_data.action_extrapolation = "HOLD"
    anim_data.action_blend_type = "REPLACE"
    anim_data.action_influence = 1.0
