"""Operators of the animation library: fetch it again, choose every animation the list shows (or none)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy

from . import library, session

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


class MARIONETTE_OT_refresh_animation_library(bpy.types.Operator):
    """Fetch the provider's animation library again (it is cached on disk with its date)"""

    bl_idname = "marionette.refresh_animation_library"
    bl_label = "Refresh Animation Library"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        current = session.active()
        if current is None:
            return False
        cfg = current.config(library.catalog_provider(current).id)
        from ..core import netpolicy

        if not netpolicy.is_loopback_url(cfg.base_url) and not bpy.app.online_access:
            cls.poll_message_set("Online access is off. " + netpolicy.ONLINE_ACCESS_HINT)
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        library.refresh()
        return {"FINISHED"}


class MARIONETTE_OT_select_animations(bpy.types.Operator):
    """Choose every animation the list shows, or none"""

    bl_idname = "marionette.select_animations"
    bl_label = "Choose Animations"

    select: bpy.props.BoolProperty(name="Select", default=True)  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        lib = library.library(context)
        for item in lib.items:
            if not self.select:
                item.selected = False
            elif library.visible(item, lib.search, lib.category):
                item.selected = True
        return {"FINISHED"}


classes = (MARIONETTE_OT_refresh_animation_library, MARIONETTE_OT_select_animations)
