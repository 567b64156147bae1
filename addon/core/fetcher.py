"""The result fetcher: a job's result files downloaded into its folder, each path recorded at once.

Network trouble is retried (resuming with Range), a damaged file is fetched again a few times, an expired
link is replaced by a fresh one from the task's status. No bpy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import requests

from . import downloads, netpolicy
from .errors import DownloadError, MarionetteError
from .http import Timing, with_retries
from .ledger import JobRecord
from .models import Asset, Job
from .providers.base import Provider

log = logging.getLogger(__name__)

# A result that arrives damaged (an HTML page, a cut GLB) is fetched this many times before the job
# fails; it stays retryable, and the provider's finished task is reused.
CORRUPT_DOWNLOAD_ATTEMPTS = 3
# A refused (expired) link is replaced by a fresh one from the task's status this many times.
LINK_REFRESHES = 2


class ResultFetcher:
    """Downloads a job's results (and its preview) with the job's session, pacer and download limit."""

    def __init__(self, record: JobRecord, provider: Provider, session: requests.Session, timing: Timing,
                 job_dir: Path, online_access: Callable[[], bool], max_bytes: Callable[[], int]) -> None:
        self.record = record
        self.job_id = record.job_id
        self.pacer = record.pacer
        self.provider = provider
        self.session = session
        self.timing = timing
        self.job_dir = job_dir
        self.online_access = online_access
        self.max_bytes = max_bytes
        self.job = record.job
        self.edit = record.edit
        self.notice = record.notice
        self.set_stage = record.set_stage

    def download_preview(self, url: str) -> None:
        """The provider's picture of the result, for the job list. Best effort: never fails the job."""
        dest = self.job_dir / "preview.png"
        try:
            path = downloads.download(self.session, url, dest, pacer=self.pacer, timing=self.timing,
                                      online_access=self.online_access, expect=("png", "jpeg"),
                                      max_bytes=16 << 20)
        except (MarionetteError, OSError) as exc:
            log.info("job %s: no preview (%s)", self.job_id, exc)
            return
        self.edit(lambda job: setattr(job, "thumbnail", str(path)))

    def download_assets(
        self,
        assets: Iterable[Asset],
        *,
        progress_from: float = 0.9,
        refresh_url: Callable[[Asset], str] | None = None,
    ) -> None:
        """Download every asset not yet on disk, in order; records each path in the journal at once."""
        wanted = list(assets)

        def register(job: Job) -> None:
            for asset in wanted:
                stored = job.asset(asset.key)
                if stored is None:
                    job.assets.append(asset)
                elif not stored.path:
                    stored.url = asset.url  # the newest link (an older one may have expired)

        self.edit(register)
        todo = [a for a in self.job().assets if a.key in {w.key for w in wanted} and not a.path]
        for index, asset in enumerate(todo):
            self.set_stage(f"Downloading {asset.name} ({index + 1} of {len(todo)})",
                           progress_from + (1 - progress_from) * index / max(1, len(todo)))
            stem = asset.key.replace(":", "_")
            dest = self.job_dir / downloads.safe_filename(f"{stem}.{_ext(asset.url, asset.role)}")
            if dest.resolve().parent != self.job_dir.resolve():  # safe_filename makes this impossible
                raise DownloadError(f"Refusing to write {dest.name} outside the job's folder")
            path = self._download_one(asset, dest, refresh_url)

            def record(job: Job, key: str = asset.key, path: Path = path) -> None:
                stored = job.asset(key)
                assert stored is not None
                stored.path = str(path)
                stored.size = path.stat().st_size

            self.edit(record)

    def _download_one(self, asset: Asset, dest: Path, refresh_url: Callable[[Asset], str] | None) -> Path:
        """One result file: network trouble is retried (resuming with Range), a damaged file is fetched
        again a few times, an expired link is replaced by a fresh one from the task's status."""
        url = asset.url
        refreshes = corrupt = 0
        expect = ("png", "jpeg") if asset.role in ("image", "preview") else ("glb", "fbx")
        again = f"press Retry to fetch it again (the finished {self.provider.label} task is reused, not paid again)"
        while True:
            try:
                return with_retries(
                    lambda url=url: downloads.download(self.session, url, dest, pacer=self.pacer,  # type: ignore[misc]
                                               timing=self.timing, online_access=self.online_access,
                                               expect=expect, max_bytes=self.max_bytes()),
                    pacer=self.pacer, timing=self.timing, notice=self.notice)
            except downloads.CorruptDownload as exc:
                corrupt += 1
                if corrupt >= CORRUPT_DOWNLOAD_ATTEMPTS:
                    raise DownloadError(f"{asset.name}: {exc} ({corrupt} attempts); nothing was imported. "
                                        f"{again[0].upper()}{again[1:]}.") from exc
                wait = min(self.timing.retry_max, self.timing.retry_base * (2 ** corrupt))
                self.notice(f"{asset.name}: {exc}; fetching it again in {wait:.0f} s")
                log.warning("job %s: %s arrived damaged (%s); attempt %d", self.job_id, asset.name, exc, corrupt)
                self.pacer.sleep(wait)
            except OSError as exc:  # the disk, not the network: full, read-only, a folder gone
                if isinstance(exc, requests.RequestException):  # requests' errors are OSErrors too
                    raise
                raise DownloadError(f"{asset.name} could not be written to {dest.parent} ({exc.strerror or exc}). "
                                    f"Make room there and {again}; the part already downloaded is kept.") from exc
            except netpolicy.BadURL:
                # A link Marionette will not open (a hostile or garbled one): a Retry must not meet the stored
                # copy again when the provider now hands out a good one, so the task's status is asked.
                if refresh_url is None or refreshes >= LINK_REFRESHES:
                    raise
                refreshes += 1
                log.warning("job %s: the link for %s was refused; asking for a fresh one", self.job_id, asset.name)
                url = self._fresh_link(asset, refresh_url)
            except downloads.LinkRefused as exc:
                # A signed link expires (a job resumed later, a slow download): the task's status gives a fresh one.
                if refresh_url is None:
                    raise DownloadError(f"{asset.name}: {exc}. {self.provider.label} cannot hand out a new link "
                                        "for it.") from exc
                if refreshes >= LINK_REFRESHES:
                    raise DownloadError(f"{asset.name}: {exc}, and a fresh link was refused too; {again}.") from exc
                refreshes += 1
                self.notice(f"{asset.name}: the link expired; asking {self.provider.label} for a fresh one")
                url = self._fresh_link(asset, refresh_url)

    def _fresh_link(self, asset: Asset, refresh_url: Callable[[Asset], str]) -> str:
        """A new link for `asset` from the task's status, remembered in the journal for a later Retry."""
        url = with_retries(lambda: refresh_url(asset), pacer=self.pacer, timing=self.timing, notice=self.notice)

        def change(job: Job) -> None:
            stored = job.asset(asset.key)
            if stored is not None:
                stored.url = url

        self.edit(change)
        return url


def _ext(url: str, role: str = "model") -> str:
    """A provisional extension from the link (downloads rename by content once it is known)."""
    default = "png" if role in ("image", "preview") else "glb"
    path = url.split("?", 1)[0].rsplit("/", 1)[-1]
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else default
    return ext if ext in ("glb", "gltf", "fbx", "png", "jpg", "jpeg") else default
