"""Add-on preferences: per provider an API key (password field, stored in the key file, not in
userpref.blend) and a base URL. Environment variables override both."""

from __future__ import annotations

import logging
from typing import Any

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from ..core.declared import DEFAULT_MAX_DOWNLOAD_MB, DOWNLOAD_LIMIT_ENV, env_name
from ..core.declared import providers as declared_providers
from . import session

log = logging.getLogger(__name__)

# The key fields read and write the key file, so they load Marionette's core (first draw of the
# preferences, a script setting a key); registering the class loads nothing.


def _key_getter(provider_id: str) -> Any:
    def get(_self: Any) -> str:
        return session.get().keys.get(provider_id)

    return get


def _key_setter(provider_id: str) -> Any:
    def set_(_self: Any, value: str) -> None:
        from ..core.redaction import key_problem, register_secret

        current = session.get()
        value = value.strip()
        register_secret(value)
        problem = key_problem(value)
        if problem:  # refused where it enters: said under the field, never stored, never quoted
            current.key_problems[provider_id] = f"Key not saved: {problem}. Copy it again (no spaces)."
            log.warning("the %s key was not saved: %s", provider_id, problem)
            return
        current.key_problems.pop(provider_id, None)
        current.keys.set(provider_id, value)

    return set_


def _download_limit_changed(_self: Any, _context: Any) -> None:
    current = session.get_or_none()
    if current:
        current.apply_download_limit()  # downloads that start from now on use it


def _annotations() -> dict[str, Any]:
    ann: dict[str, Any] = {}
    for provider in declared_providers().values():
        ann[f"{provider.id}_api_key"] = StringProperty(
            name=f"{provider.label} {provider.key_label}",
            description=f"Your {provider.label} {provider.key_label}. Kept in a private file in Marionette's "
                        f"user folder, never in a .blend file. {env_name(provider.id, 'API_KEY')} overrides it",
            subtype="PASSWORD",
            get=_key_getter(provider.id),
            set=_key_setter(provider.id),
        )
        ann[f"{provider.id}_base_url"] = StringProperty(
            name="Base URL",
            description=f"Where {provider.label}'s API lives. {env_name(provider.id, 'BASE_URL')} overrides it",
            default=provider.default_base_url,
        )
    ann["mark_as_asset"] = BoolProperty(
        name="Mark as Assets",
        description="Mark each imported character's collection as an asset, with the job's picture as its "
                    "preview, so that it shows in the Asset Browser once the file is saved",
        default=False,
    )
    ann["max_download_mb"] = IntProperty(
        name="Download Limit (MB)",
        description="A result larger than this is refused rather than filling the disk. "
                    f"{DOWNLOAD_LIMIT_ENV} overrides it",
        default=DEFAULT_MAX_DOWNLOAD_MB, min=1, soft_max=8192,
        update=_download_limit_changed,
    )
    ann["auto_import"] = BoolProperty(
        name="Import When Done",
        description="Import a job's result into the current scene as soon as it is ready",
        default=True,
    )
    return ann


class MARIONETTE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = session.PACKAGE
    __annotations__ = _annotations()

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        current = session.active()
        for provider in declared_providers().values():
            box = layout.box()
            box.label(text=provider.label)
            box.prop(self, f"{provider.id}_api_key")
            if current and (refused := current.key_problems.get(provider.id)):
                box.label(text=refused, icon="ERROR")
            status = (current.providers[provider.id].key_status(current.config(provider.id).api_key)
                      if current else None)
            if status:  # e.g. how long image3d.io's ID token has left
                box.label(text=status, icon="TIME")
            box.prop(self, f"{provider.id}_base_url")
        layout.prop(self, "auto_import")
        layout.prop(self, "mark_as_asset")
        layout.prop(self, "max_download_mb")
        if not bpy.app.online_access:
            layout.label(text="Online access is off: only a local emulator can be used.", icon="INFO")
        tested, untested_note = support_text(tuple(bpy.app.version[:2]))
        layout.label(text=tested, icon="CHECKMARK" if untested_note is None else "INFO")
        if untested_note is not None:
            layout.label(text=untested_note)
        if current:
            layout.label(text=f"Jobs and downloads: {current.root}")


# The Blender versions the test suite runs on (README: "Which Blender"). There is no upper cap: a newer
# Blender still loads Marionette, and the preferences say it is untested there.
TESTED_BLENDERS: tuple[tuple[int, int], ...] = ((4, 2), (4, 5), (5, 0), (5, 2), (5, 3))
REPORT_HINT = "Untested here: if something fails, report it with your Blender version and the job's log"


def support_text(version: tuple[int, ...]) -> tuple[str, str | None]:
    """What the preferences say about the running Blender: the tested versions, and a note when this one
    is not among them."""
    names = ", ".join(f"{major}.{minor}" for major, minor in TESTED_BLENDERS)
    tested = f"Tested with Blender {names}"
    if tuple(version[:2]) in TESTED_BLENDERS:
        return tested, None
    return tested, f"Blender {version[0]}.{version[1]}: {REPORT_HINT}"


classes = (MARIONETTE_AP_preferences,)
