"""The one Marionette session of this Blender process: journal, key file, runner, providers.

Created at register, stopped at unregister. Main-thread code reaches it through `get()`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import bpy

from ..core import config as core_config
from ..core.errors import ConfigError
from ..core.http import ProviderConfig
from ..core.providers import all_providers
from ..core.providers.base import Provider
from ..core.runner import JobRunner
from ..core.secrets import KeyStore
from ..core.store import JobStore

log = logging.getLogger(__name__)

# The extension's own package ("bl_ext.user_default.marionette" when installed).
PACKAGE = __package__.rpartition(".")[0] if __package__ else "marionette"


class Session:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.providers: dict[str, Provider] = all_providers()
        self.store = JobStore(root)
        self.keys = KeyStore(root / "keys.json")
        self.runner = JobRunner(self.store, self.providers, core_config.timing_from_env())
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

    def preferences(self) -> bpy.types.AddonPreferences | None:
        addon = bpy.context.preferences.addons.get(PACKAGE)
        return addon.preferences if addon else None

    def apply_download_limit(self) -> str | None:
        """Hand the preference's (or the environment's) download limit to the runner; the problem, if the
        environment's value is not valid (the limit then stays as it was)."""
        prefs = self.preferences()
        try:
            self.runner.max_download_bytes = core_config.download_limit(getattr(prefs, "max_download_mb", None))
        except ConfigError as exc:
            return str(exc)
        return None

    def config(self, provider_id: str) -> ProviderConfig:
        """Key and base URL from the preferences and the environment. Main thread only."""
        provider = self.providers[provider_id]
        prefs = self.preferences()
        base = getattr(prefs, f"{provider_id}_base_url", "") if prefs else ""
        return core_config.resolve(provider, self.keys.get(provider_id), base)

    def problem(self, provider_id: str) -> str | None:
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
        self.runner.shutdown()


# How often the pump looks for jobs left by a Blender window that quit (a lock attempt per unfinished job
# not running here); the runner's thread takes in other windows' journal changes every SYNC_INTERVAL.
SYNC_INTERVAL = 0.5
TAKEOVER_INTERVAL = 3.0

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
    if _session is None:
        raise RuntimeError("Marionette is not enabled")
    return _session


def get_or_none() -> Session | None:
    return _session


def stop() -> None:
    global _session
    if _session is not None:
        _session.stop()
        _session = None
