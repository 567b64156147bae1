"""The one Marionette session of this Blender process: journal, key file, runner, providers.

Created on first use (`get()`: the first draw of a panel that needs it, an operator, an `api` call, or the
pump's first tick shortly after start), never at register, so that enabling Marionette loads neither
pydantic nor requests, reads no journal and starts no thread. Stopped at unregister.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import bpy

from ..core.errors import ConfigError, InputError  # stdlib only: cheap at start

if TYPE_CHECKING:
    from ..core.capabilities import Capability
    from ..core.http import ProviderConfig
    from ..core.providers.base import Provider

log = logging.getLogger(__name__)

# The extension's own package ("bl_ext.user_default.marionette" when installed).
PACKAGE = __package__.rpartition(".")[0] if __package__ else "marionette"


# What each capability lets an artist do, for messages.
CAPABILITY_WORDS = {"rig_mesh": "rig a selected mesh", "add_animations": "add animations to a character",
                    "animation_catalog": "fetch an animation library", "recover": "recover a task by its id",
                    "balance": "tell its balance", "rig": "rig a character", "remesh": "remesh"}


class Session:
    def __init__(self, root: Path) -> None:
        _ensure_wheels_on_path()
        # The core, loaded here on first use rather than at Blender's start.
        from ..core import config as core_config
        from ..core.providers import all_providers
        from ..core.runner import JobRunner
        from ..core.secrets import KeyStore
        from ..core.store import JobStore

        self.root = root
        self.providers: dict[str, Provider] = all_providers()
        self.store = JobStore(root)
        self.keys = KeyStore(root / "keys.json")
        self.runner = JobRunner(self.store, self.providers, core_config.timing_from_env())
        # Worker threads read a key saved after their job started (KeyStore is thread-safe; the
        # environment's key still wins): a job waiting for a fresh image3d.io ID token goes on by itself.
        self.runner.key_source = lambda provider_id: core_config.resolve(
            self.providers[provider_id], self.keys.get(provider_id), "").api_key
        self.runner.start_sync(SYNC_INTERVAL)  # other Blender windows' journal changes, off the main thread
        # Jobs submitted in this Blender session are imported when done; older ones are offered.
        self.auto_import: set[str] = set()
        self.resumed = False
        # The last refusal or warning of a Marionette operator, shown in the panel until the next action
        # (the status bar forgets it in seconds). Kept here, not in the scene, so no .blend carries it.
        self.panel_message: tuple[str, str] | None = None
        # Keys the preferences refused (provider id -> why, never the key), shown under the key field.
        self.key_problems: dict[str, str] = {}
        self._adopted_at = time.monotonic()
        # Work off the main thread other than jobs (balances, the animation library, previews), drained by
        # the timer pump, and what it tells the panel.
        from ..core.background import Background
        from .account import Balances
        from .library import LibraryState

        self.background = Background()
        self.balances = Balances()
        self.library = LibraryState()

    def preferences(self) -> bpy.types.AddonPreferences | None:
        addon = bpy.context.preferences.addons.get(PACKAGE)
        return addon.preferences if addon else None

    def apply_download_limit(self) -> str | None:
        """Hand the preference's (or the environment's) download limit to the runner; the problem, if the
        environment's value is not valid (the limit then stays as it was)."""
        from ..core import config as core_config

        prefs = self.preferences()
        try:
            self.runner.max_download_bytes = core_config.download_limit(getattr(prefs, "max_download_mb", None))
        except ConfigError as exc:
            return str(exc)
        return None

    def config(self, provider_id: str) -> ProviderConfig:
        """Key and base URL from the preferences and the environment. Main thread only."""
        from ..core import config as core_config

        provider = self.providers[provider_id]
        prefs = self.preferences()
        base = getattr(prefs, f"{provider_id}_base_url", "") if prefs else ""
        return core_config.resolve(provider, self.keys.get(provider_id), base)

    def provider_for(self, capability: Capability, provider_id: str | None = None) -> Provider:
        """The provider named (it must have `capability`), else the first that declares it."""
        if provider_id is not None:
            provider = self.providers.get(provider_id)
            if provider is None or not provider.can(capability):
                raise InputError(f"{provider.label if provider else provider_id!r} cannot "
                                 f"{CAPABILITY_WORDS.get(capability, capability)}")
            return provider
        for provider in self.providers.values():
            if provider.can(capability):
                return provider
        raise InputError(f"No provider can {CAPABILITY_WORDS.get(capability, capability)}")

    def problem(self, provider_id: str) -> str | None:
        from ..core import config as core_config

        provider = self.providers[provider_id]
        try:
            cfg = self.config(provider_id)
        except ConfigError as exc:  # a malformed URL or an unusable key (the message says which)
            return str(exc)
        except Exception as exc:
            return f"{provider.label} base URL is not valid: {exc}"
        return core_config.problem(provider, cfg, bpy.app.online_access)

    def resume_jobs(self) -> list[str]:
        """Restart polling for unfinished jobs of earlier sessions (once, from the pump)."""
        self.resumed = True
        self.apply_download_limit()  # the preferences are readable by now; a bad env value is said at submit
        resumed = []
        for job in self.store.all():
            if not job.state.active:
                continue
            if self.problem(job.provider):
                continue  # stays in the journal; resumes once the key / online access is there
            if self.runner.resume(job.id, self.config(job.provider)):
                resumed.append(job.id)
        if resumed:
            log.info("resumed %d unfinished job(s)", len(resumed))
        return resumed

    def sync(self) -> None:
        """Other Blender windows on this user folder: take over the unfinished jobs of a window that quit
        or crashed (every few seconds; the runner's own thread takes in their journal changes)."""
        now = time.monotonic()
        if now - self._adopted_at < TAKEOVER_INTERVAL:
            return
        self._adopted_at = now
        for job_id in self.runner.orphans():
            job = self.store.peek(job_id)
            if job is None or self.problem(job.provider):
                continue
            if self.runner.resume(job_id, self.config(job.provider)):
                log.info("took over job %s from a Blender window that is gone", job_id)

    def stop(self) -> None:
        self.background.stop()
        self.runner.shutdown()


# How often the pump looks for jobs left by a Blender window that quit (a lock attempt per unfinished job
# not running here); the runner's thread takes in other windows' journal changes every SYNC_INTERVAL.
SYNC_INTERVAL = 0.5
TAKEOVER_INTERVAL = 3.0

def _ensure_wheels_on_path() -> None:
    """Blender puts the extensions' wheel folder (pydantic) on sys.path when it syncs their wheels at
    enable time; a preferences reset between enabling and the core's first use can take it off again
    (seen once in a while in the test suite). Put it back, as Blender's own sync does, when it is there."""
    folder = Path(bpy.utils.user_resource("EXTENSIONS"), ".local", "lib",
                  f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages")
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.append(str(folder))


_session: Session | None = None


def user_folder() -> Path:
    override = os.environ.get("MARIONETTE_HOME")
    if override:
        return Path(override)
    try:
        return Path(bpy.utils.extension_path_user(PACKAGE, create=True))
    except (ValueError, AttributeError):  # running from a checkout as a legacy add-on
        return Path(bpy.utils.user_resource("DATAFILES", path="marionette", create=True))


def start() -> Session:
    global _session
    if _session is None:
        _session = Session(user_folder())
    return _session


def get() -> Session:
    """The session, started on first use."""
    if not _enabled:
        raise RuntimeError("Marionette is not enabled")
    return start()


def active() -> Session | None:
    """The session while Marionette is enabled, started on first use; None once it is disabled (drawing
    and poll functions use this: their first call loads the core)."""
    return start() if _enabled else None


def get_or_none() -> Session | None:
    """The session if something has started it already; never starts it (for cheap looks)."""
    return _session


# Set by register/unregister: a session may start only while the add-on is enabled.
_enabled = False


def enable() -> None:
    global _enabled
    _enabled = True


def stop() -> None:
    global _session, _enabled
    _enabled = False
    if _session is not None:
        _session.stop()
        _session = None
