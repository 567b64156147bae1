"""Worker threads that drive jobs on the providers, and the context they share with provider code.

Workers do HTTP and file I/O only and never touch bpy. Every state change goes to the journal at
once (so a crash loses nothing) and the job id is posted on `events` for the main-thread pump.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import shutil
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from . import downloads
from .errors import (
    Cancelled,
    ConfigError,
    DownloadError,
    InputError,
    MarionetteError,
    ProtocolError,
    ProviderError,
    TaskFailed,
    TransientError,
)
from .formats import JPEG_MAGIC, PNG_MAGIC
from .http import (
    ApiClient,
    ConnectFailed,
    Pacer,
    ProviderConfig,
    Shutdown,
    Timing,
    install_log_redaction,
    redact,
    with_retries,
)
from .models import Asset, GenerationRequest, Job, JobState, RemoteTask, TaskStatus
from .providers.base import Provider, TaskSnapshot
from .store import JobStore, Lease

log = logging.getLogger(__name__)

# Two identical requests this close together are one double click, not two purchases.
DOUBLE_SUBMIT_WINDOW = 2.0
# A result that arrives damaged (an HTML page, a cut GLB) is fetched this many times before the job
# fails; it stays retryable, and the provider's finished task is reused.
CORRUPT_DOWNLOAD_ATTEMPTS = 3
# A refused (expired) link is replaced by a fresh one from the task's status this many times.
LINK_REFRESHES = 2
# After a create whose answer was lost, the provider's task list is read this many times (the task
# may appear a moment late) before Marionette gives up looking.
FIND_ATTEMPTS = 3
# A create still waiting for its answer after this long has been given up (timeouts and retries end well
# before): only younger ones make a task found in the provider's list ambiguous.
IN_FLIGHT_SECONDS = 120.0
# How long a look in the task list waits for another job's create in flight to record its task.
IN_FLIGHT_WAIT = 1.0

# Errors provider code raises on an answer of the wrong shape (a list for an object, "abc" for a number,
# a missing field, an answer that is not JSON: requests' JSONDecodeError is a ValueError).
SHAPE_ERRORS: tuple[type[BaseException], ...] = (KeyError, TypeError, ValueError, AttributeError, IndexError)
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def unexpected_form(label: str, exc: BaseException) -> ProtocolError:
    detail = redact(str(exc))[:160]
    return ProtocolError(f"{label} answered in an unexpected form ({exc.__class__.__name__}: {detail}). The "
                         "provider's tasks are kept: press Retry later, or report it if it persists.",
                         code="unexpected_form")


def check_task_id(task_id: object) -> str:
    """A provider task id as given to Recover: letters, digits and `_ . : -`, never a path or a URL."""
    text = task_id.strip() if isinstance(task_id, str) else ""
    if not TASK_ID.fullmatch(text) or ".." in text:
        shown = repr(task_id)[:60]
        raise InputError(f"{shown} is not a task id: give the id exactly as the provider shows it (letters, "
                         "digits, '-', '_', '.' or ':')")
    return text


# find(sent_at) -> the remote id of a task this job created at `sent_at` whose answer was lost, or None.
Finder = Callable[[float], str | None]


class CreateServerError(TransientError):
    """A create request answered 5xx. No provider document says such a task was not created, so it is
    treated as an answer that may have made the task (status None: with_retries does not repeat it):
    looked up where the provider lists its tasks, else not sent again on Marionette's own, unless the
    provider's document says to retry (Provider.create_retries_server_errors)."""

    def __init__(self, message: str, server_status: int) -> None:
        super().__init__(message)
        self.server_status = server_status


@dataclass(frozen=True)
class InputFile:
    name: str
    data: bytes


class JobContext:
    """What a provider's pipeline uses to talk to the outside world while staying resumable."""

    def __init__(self, runner: JobRunner, job_id: str, provider: Provider, client: ApiClient,
                 pacer: Pacer) -> None:
        self.runner = runner
        self.job_id = job_id
        self.provider = provider
        self.client = client
        self.pacer = pacer
        self.timing = runner.timing
        self.request: GenerationRequest = runner.store.get(job_id).request
        self.job_dir: Path = runner.store.job_dir(job_id)

    # -- job state ---------------------------------------------------------------------------------

    def job(self) -> Job:
        return self.runner.store.get(self.job_id)

    def edit(self, change: Callable[[Job], None], force: bool = False) -> Job:
        if self.pacer.stop.is_set() and not force:
            # Blender is closing: the next session owns the journal now. A worker still inside a slow
            # request must not write its stale view of the jobs over it.
            raise Shutdown()
        job = self.runner.store.update(self.job_id, change)
        self.runner.events.put(self.job_id)
        return job

    def set_stage(self, stage: str, progress: float | None = None) -> None:
        def change(job: Job) -> None:
            job.stage = stage
            if progress is not None:
                job.progress = max(0.0, min(1.0, progress))

        self.edit(change)

    def notice(self, text: str | None) -> None:
        text = redact(text) if text else self.runner.note(self.job_id)
        if self.job().notice != text:
            self.edit(lambda job: setattr(job, "notice", text))

    def input_path(self, index: int = 0) -> Path:
        return Path(self.request.inputs[index])

    # -- remote tasks ------------------------------------------------------------------------------

    def submit_once(self, key: str, label: str, create: Callable[[], str], find: Finder | None = None) -> str:
        """Create the remote task `key` unless the journal says it exists; return its remote id.

        The create request is sent at most once per attempt and never repeated after it may have
        reached the provider (a connection lost mid-request): then `find` (where the provider can list
        its tasks) looks for the task that request made and adopts it; without `find`, or when it finds
        nothing, the job fails with a message saying what to do, and Retry sends it again.
        """
        task = self.job().task(key)
        if task and task.remote_id:
            return task.remote_id
        if task and task.submitted_at and task.status in (TaskStatus.SUBMITTING, TaskStatus.NEW):
            # A create left earlier (before a restart, or before a Retry) and its answer never came back.
            if find is not None and (found := self._find(key, label, find, task.submitted_at, attempts=1)):
                return found
            if task.status is TaskStatus.SUBMITTING:
                raise self._interrupted(label, searched=find is not None)
        resent = 0
        while True:
            try:
                remote_id = with_retries(self._attempt(key, label, create), pacer=self.pacer, timing=self.timing,
                                         notice=self.notice, repeatable=False,
                                         queued=lambda waiting: self._queued(label, waiting))
                break
            except CreateServerError as exc:
                # The provider answered 5xx: the task may exist all the same. Look where it can be looked
                # up (and send again only when it is not there); elsewhere stop and say so.
                log.warning("job %s: the %s create request was answered %d by %s", self.job_id, key,
                            exc.server_status, self.provider.label)
                sent_at = (self.job().task(key) or RemoteTask(key=key, label=label)).submitted_at or time.time()
                if find is None:
                    raise self._interrupted(label, searched=False, answered=exc.server_status) from exc
                if found := self._find(key, label, find, sent_at, attempts=FIND_ATTEMPTS):
                    return found
                resent += 1
                if resent > self.timing.max_transient_retries:
                    raise self._interrupted(label, searched=True, answered=exc.server_status) from exc
                self._task_status(key, TaskStatus.NEW, sent=False)  # looked: not made, so it is sent again
                wait = min(self.timing.retry_max, self.timing.retry_base * (2 ** resent))
                self.notice(f"{self.provider.label} answered the {label.lower()} request with a server error "
                            f"({exc.server_status}) and its task list does not show the task: sending it again "
                            f"in {wait:.0f} s")
                self.pacer.sleep(wait)
            except TransientError as exc:
                if exc.status is not None or isinstance(exc, ConnectFailed):  # answered "no", or never sent
                    raise
                log.warning("job %s: the %s create request may have reached %s: %s", self.job_id, key,
                            self.provider.label, exc)
                sent_at = (self.job().task(key) or RemoteTask(key=key, label=label)).submitted_at or time.time()
                if find is not None and (found := self._find(key, label, find, sent_at, attempts=FIND_ATTEMPTS)):
                    return found
                raise self._interrupted(label, searched=find is not None) from exc

        def record(job: Job) -> None:
            task = job.task(key)
            assert task is not None
            task.remote_id = remote_id
            task.status = TaskStatus.SUBMITTED
            task.submitted_at = time.time()

        self.edit(record, force=True)  # a paid task's id is recorded even while Blender closes
        log.info("job %s: %s task %s created", self.job_id, key, remote_id)
        return remote_id

    def _attempt(self, key: str, label: str, create: Callable[[], str]) -> Callable[[], str]:
        """One create attempt: the journal says SUBMITTING only while a request may be on its way, and
        NEW again as soon as the provider has said no (so a quit while waiting to retry is harmless)."""
        def attempt() -> str:
            sent_at = time.time()

            def mark_submitting(job: Job) -> None:
                task = job.task(key)
                if task is None:
                    job.tasks.append(RemoteTask(key=key, label=label, status=TaskStatus.SUBMITTING,
                                                submitted_at=sent_at))
                else:
                    task.status, task.submitted_at = TaskStatus.SUBMITTING, sent_at

            self.edit(mark_submitting)
            try:
                return create()
            except TransientError as exc:
                status = exc.status or 0
                if status >= 500 and not self.provider.create_retries_server_errors:
                    raise CreateServerError(str(exc), status) from exc  # stays SUBMITTING: it may exist
                if exc.status is not None or isinstance(exc, ConnectFailed):
                    self._task_status(key, TaskStatus.NEW, sent=False)
                raise
            except ProtocolError:  # answered, but unreadably: the task may exist, so it stays SUBMITTING
                raise
            except (ProviderError, ConfigError):  # refused, or never sent
                self._task_status(key, TaskStatus.NEW, sent=False)
                raise

        return attempt

    def known_remote_ids(self) -> set[str]:
        """Every remote task id a job in the journal knows: never adopted by another job."""
        return {t.remote_id for job in self.runner.store.all() for t in job.tasks if t.remote_id}

    def _find(self, key: str, label: str, find: Finder, sent_at: float, attempts: int) -> str | None:
        """Look for the task a create sent at `sent_at` made, and adopt it. None when it is not there."""
        for attempt in range(attempts):
            try:
                found = with_retries(lambda: find(sent_at), pacer=self.pacer, timing=self.timing,
                                     notice=self.notice)
            except ProviderError as exc:
                log.warning("job %s: could not look for the %s task: %s", self.job_id, key, exc)
                return None
            self.runner.store.refresh()  # what other windows' jobs have recorded by now
            if found and found not in self.known_remote_ids() and self._others_creating(key):
                # Another job's create of the same kind is still waiting for its answer: the task found
                # may be that job's. Look again once it has recorded what it got (within seconds).
                log.info("job %s: the %s task %s may belong to another job's create; looking again",
                         self.job_id, key, found)
                found = None
                if attempt + 1 < attempts:
                    self.pacer.sleep(max(IN_FLIGHT_WAIT, self.timing.retry_base * (2 ** attempt)))
                continue
            if found and found not in self.known_remote_ids():
                def adopt(job: Job, found: str = found) -> None:
                    task = job.task(key)
                    if task is None:
                        task = RemoteTask(key=key, label=label)
                        job.tasks.append(task)
                    task.remote_id, task.status = found, TaskStatus.SUBMITTED
                    task.submitted_at = task.submitted_at or sent_at

                self.edit(adopt)
                log.info("job %s: found the %s task %s that %s created before its answer was lost",
                         self.job_id, key, found, self.provider.label)
                return found
            if attempt + 1 < attempts:
                self.pacer.sleep(min(self.timing.retry_max, self.timing.retry_base * (2 ** attempt)))
        return None

    def _others_creating(self, key: str) -> bool:
        """Whether another job (in any Blender window) has a create of this kind on its way now."""
        recent = time.time() - IN_FLIGHT_SECONDS
        return any(task.key == key and task.status is TaskStatus.SUBMITTING and not task.remote_id
                   and (task.submitted_at or 0.0) >= recent
                   for job in self.runner.store.all() if job.id != self.job_id and job.state.active
                   for task in job.tasks)

    def _interrupted(self, label: str, searched: bool, answered: int | None = None) -> ProviderError:
        name = self.provider.label
        if answered is None:
            text = (f"Creating the {label.lower()} task was interrupted after the request was sent, before {name} "
                    f"answered. It may exist (and be paid for) on {name}; Marionette does not send it again on "
                    "its own. ")
        else:
            text = (f"{name} answered the {label.lower()} request with a server error ({answered}). {name}'s "
                    "documents do not say that such a task was not created: it may exist (and be paid for); "
                    "Marionette does not send it again on its own. ")
        if searched:
            text += (f"{name}'s task list does not show it: press Retry to look again and send it if it is still "
                     "missing.")
        elif self.provider.can_recover:
            text += (f"If your {name} account lists it, use Recover by Task ID with its id; otherwise press Retry "
                     "to send it again.")
        else:
            text += f"Check your {name} account; press Retry to send it again."
        return ProviderError(text, code="interrupted_create")

    def _queued(self, label: str, waiting: bool) -> None:
        """The provider's queue is full: the job waits locally (PENDING), and runs again once it is taken."""
        def change(job: Job) -> None:
            if waiting:
                job.state, job.stage = JobState.PENDING, f"{label}: queued locally, waiting for a free slot"
            else:
                job.state, job.stage = JobState.RUNNING, f"{label}: submitted"

        self.edit(change)

    def adopt_task(self, key: str, label: str, remote_id: str) -> None:
        """Record a task that exists already (made elsewhere) so that it is polled, never created."""
        def change(job: Job) -> None:
            if job.task(key) is None:
                job.tasks.append(RemoteTask(key=key, label=label, remote_id=remote_id, status=TaskStatus.SUBMITTED))

        self.edit(change)

    def _task_status(self, key: str, status: TaskStatus, sent: bool | None = None) -> None:
        def change(job: Job) -> None:
            task = job.task(key)
            if task is not None:
                task.status = status
                if sent is False:
                    task.submitted_at = None  # nothing left: a later attempt need not look for it

        # The provider's answer is known now: record it even while Blender closes, or the next start
        # would think this create might have been taken.
        self.edit(change, force=True)

    def poll(
        self,
        keys: Sequence[str],
        fetch: Callable[[RemoteTask], TaskSnapshot],
        on_change: Callable[[Job], None] | None = None,
    ) -> dict[str, RemoteTask]:
        """Poll the tasks until all succeed; raise TaskFailed / Cancelled as soon as one does not."""
        interval = self.timing.poll_interval
        while True:
            job = self.job()
            waiting = [t for t in (job.task(k) for k in keys) if t and t.status is not TaskStatus.SUCCEEDED]
            if not waiting:
                return {k: t for k in keys if (t := job.task(k)) is not None}
            for task in waiting:
                snap = with_retries(lambda task=task: self._read_status(fetch, task),  # type: ignore[misc]
                                    pacer=self.pacer, timing=self.timing, notice=self.notice)
                self._apply_snapshot(task.key, snap)
                if snap.state is JobState.FAILED:
                    raise TaskFailed(
                        f"{self.provider.label} could not finish the {task.label.lower()}: "
                        f"{snap.error or 'no reason given'}", code=snap.error_code)
                if snap.state is JobState.CANCELED:
                    raise Cancelled(f"The {task.label.lower()} task was cancelled on {self.provider.label}")
            if on_change is not None:
                on_change(self.job())
            if any(t.status is not TaskStatus.SUCCEEDED for t in (self.job().task(k) for k in keys) if t):
                self.pacer.sleep(interval)
                interval = min(self.timing.max_poll_interval, interval * 1.25)

    def _read_status(self, fetch: Callable[[RemoteTask], TaskSnapshot], task: RemoteTask) -> TaskSnapshot:
        """One status request. An answer in a shape the provider's code cannot read (not JSON, a list
        where an object belongs, a wrong-typed field it needs) is a ProtocolError, not a crash."""
        try:
            return fetch(task)
        except SHAPE_ERRORS as exc:
            raise unexpected_form(self.provider.label, exc) from exc

    def _apply_snapshot(self, key: str, snap: TaskSnapshot) -> None:
        def change(job: Job) -> None:
            task = job.task(key)
            assert task is not None
            task.progress = snap.progress
            task.queue_position = snap.queue_position if snap.state is JobState.PENDING else None
            if snap.state is JobState.SUCCEEDED:
                task.status = TaskStatus.SUCCEEDED
                task.result_urls = dict(snap.result_urls)
                task.progress = 100
            elif snap.state is JobState.FAILED:
                task.status = TaskStatus.FAILED
                task.error, task.error_code = snap.error, snap.error_code
            elif snap.state is JobState.CANCELED:
                task.status = TaskStatus.CANCELED

        self.edit(change)

    # -- results -----------------------------------------------------------------------------------

    def download_preview(self, url: str) -> None:
        """The provider's picture of the result, for the job list. Best effort: never fails the job."""
        dest = self.job_dir / "preview.png"
        try:
            path = downloads.download(self.client.session, url, dest, pacer=self.pacer, timing=self.timing,
                                      online_access=self.runner.online_access_now, expect=("png", "jpeg"),
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
                    lambda url=url: downloads.download(self.client.session, url, dest, pacer=self.pacer,  # type: ignore[misc]
                                               timing=self.timing, online_access=self.runner.online_access_now,
                                               expect=expect, max_bytes=self.runner.max_download_bytes),
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
            except downloads.LinkRefused as exc:
                # A signed link expires (a job resumed later, a slow download): the task's status gives a fresh one.
                if refresh_url is None:
                    raise DownloadError(f"{asset.name}: {exc}. {self.provider.label} cannot hand out a new link "
                                        "for it.") from exc
                if refreshes >= LINK_REFRESHES:
                    raise DownloadError(f"{asset.name}: {exc}, and a fresh link was refused too; {again}.") from exc
                refreshes += 1
                self.notice(f"{asset.name}: the link expired; asking {self.provider.label} for a fresh one")
                url = with_retries(lambda: refresh_url(asset), pacer=self.pacer, timing=self.timing,
                                   notice=self.notice)
                self._remember_url(asset.key, url)

    def _remember_url(self, key: str, url: str) -> None:
        def change(job: Job) -> None:
            stored = job.asset(key)
            if stored is not None:
                stored.url = url

        self.edit(change)


def _ext(url: str, role: str = "model") -> str:
    """A provisional extension from the link (downloads rename by content once it is known)."""
    default = "png" if role in ("image", "preview") else "glb"
    path = url.split("?", 1)[0].rsplit("/", 1)[-1]
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else default
    return ext if ext in ("glb", "gltf", "fbx", "png", "jpg", "jpeg") else default


class JobRunner:
    """Owns the worker threads. Main-thread code calls submit/resume/cancel and drains `events`."""

    def __init__(self, store: JobStore, providers: dict[str, Provider], timing: Timing | None = None) -> None:
        self.store = store
        self.providers = providers
        self.timing = timing or Timing()
        self.events: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.online_access = False  # refreshed by the main thread from bpy.app.online_access
        self.max_download_bytes = downloads.DEFAULT_MAX_BYTES
        # provider id -> the key saved now (thread-safe), so that a job whose key expired mid-job (image3d.io's
        # one-hour ID token) can go on with a fresh one; None: jobs cannot wait for a new key.
        self.key_source: Callable[[str], str] | None = None
        self._stop = threading.Event()
        self._workers: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._pacers: dict[str, Pacer] = {}
        self._notes: dict[str, str] = {}  # job id -> the submit-time note (in memory: this session's jobs)
        self._sync_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        install_log_redaction()

    def online_access_now(self) -> bool:
        return self.online_access

    def note(self, job_id: str) -> str | None:
        """The note given at submit, shown whenever the job has no other notice."""
        return self._notes.get(job_id)

    def provider(self, provider_id: str) -> Provider:
        try:
            return self.providers[provider_id]
        except KeyError:
            raise ConfigError(f"Unknown provider {provider_id!r}; known: {', '.join(self.providers)}") from None

    # -- main-thread API ---------------------------------------------------------------------------

    def submit(self, request: GenerationRequest, config: ProviderConfig, files: Sequence[InputFile] = (),
               note: str | None = None) -> Job:
        """Validate, record and start a job. Input bytes are copied into the job folder first.

        `note` is something the artist should know about the job from the start (e.g. "the picture was
        downscaled"): it stays the job's notice whenever no other notice is showing, to its end.
        """
        provider = self.provider(request.provider)
        request = request.model_copy(update={"options": provider.resolve_options(request.options, request.kind)})
        provider.validate(request)
        # A warning about the key (an ID token about to expire) joins the note: said when the job is sent
        # and shown with the job. (What Marionette adds on its own is shown by the panel with the cost.)
        for step in provider.added_steps(request):
            log.info("%s", step)
        if warning := provider.key_warning(config.api_key):
            note = f"{note.rstrip('.')}. {warning}" if note else warning
        if files:  # an image given by URL (Claythis) has no file to check
            provider.check_files(request.kind, [f.data for f in files])
            check_images(files)
        fingerprint = _fingerprint(request, files)
        now = time.time()

        def double_click(job: Job) -> bool:
            return job.fingerprint == fingerprint and job.state.active and now - job.created_at < DOUBLE_SUBMIT_WINDOW

        for job in self.store.all():
            if double_click(job):
                log.info("ignoring a second identical submit within %.1f s: job %s", DOUBLE_SUBMIT_WINDOW, job.id)
                return job
        job_id = uuid.uuid4().hex[:12]
        folder = self.store.job_dir(job_id)
        paths = []
        for index, item in enumerate(files):
            path = folder / f"input_{index}_{downloads.safe_filename(item.name, 'input.bin')}"
            path.write_bytes(item.data)
            paths.append(str(path))
        job = Job(id=job_id, provider=request.provider, request=request.model_copy(update={"inputs": paths}),
                  fingerprint=fingerprint)
        if paths and request.kind in ("image", "multi_image"):
            job.thumbnail = paths[0]  # until the provider's own preview arrives
        if note:
            job.notice = note
            self._notes[job_id] = note
        lease = self.store.lease(job_id)
        # Under the journal's lock: the same submit from another Blender window a moment ago is one click.
        other = self.store.add(job, duplicate_of=double_click)
        if other is not None:
            if lease is not None:
                lease.release()
            shutil.rmtree(folder, ignore_errors=True)
            self._notes.pop(job_id, None)
            log.info("ignoring an identical submit made %.1f s ago in another Blender: job %s",
                     now - other.created_at, other.id)
            return other
        self.events.put(job_id)
        self._start(job_id, config, lease=lease)
        return job

    def resume(self, job_id: str, config: ProviderConfig) -> bool:
        """Restart the worker of an unfinished job (after a Blender restart, or when the Blender that ran it
        is gone). False if there is nothing to do here, or another Blender runs it (holds its lease)."""
        job = self.store.get(job_id)
        if not job.state.active or self.is_running(job_id):
            return False
        lease = self.store.lease(job_id)
        if lease is None:
            return False  # another Blender window runs it: shown here, polled there
        self.store.refresh()  # the window that held the lease wrote its last word before letting go
        job = self.store.get(job_id)
        if not job.state.active:
            lease.release()
            return False
        if job.cancel_requested:
            self._start(job_id, config, cancelled=True, lease=lease)
            return False
        self._start(job_id, config, lease=lease)
        return True

    def retry(self, job_id: str, config: ProviderConfig) -> Job:
        """Run a failed or cancelled job again. Finished remote tasks are reused (not paid again); tasks
        that failed, were cancelled or whose creation was interrupted are sent again."""
        job = self.store.get(job_id)
        if job.state.active or self.is_running(job_id):
            raise ConfigError("This job is still running")
        if job.state is JobState.SUCCEEDED:
            raise ConfigError("This job succeeded: import it again instead")
        lease = self.store.lease(job_id)
        if lease is None:
            raise ConfigError("Another Blender window is still handling this job")
        self.store.refresh()
        job = self.store.get(job_id)
        if job.state.active or job.state is JobState.SUCCEEDED:
            lease.release()
            raise ConfigError("Another Blender window has taken this job up again")

        def reset(j: Job) -> None:
            kept = []
            for t in j.tasks:
                if t.status in (TaskStatus.SUBMITTED, TaskStatus.SUCCEEDED):
                    kept.append(t)
                elif t.status is TaskStatus.SUBMITTING:
                    # Its answer was lost: sent again on this retry, after a look at the provider's list
                    # (where it has one) in case it was created after all.
                    t.status = TaskStatus.NEW
                    kept.append(t)
            j.tasks = kept
            j.state, j.stage, j.progress = JobState.PENDING, "Queued (retry)", 0.0
            j.error = j.error_code = j.notice = j.import_error = None
            j.cancel_requested = False
            j.retries += 1

        job = self.store.update(job_id, reset)
        note = self.retry_note(job)
        if note:
            self._notes[job_id] = note
            job = self.store.update(job_id, lambda j: setattr(j, "notice", note))
        self.events.put(job_id)
        self._start(job_id, config, lease=lease)
        return job

    def retry_note(self, job: Job) -> str | None:
        """What a Retry of `job` (its tasks as kept for the retry) reuses and what it will cost."""
        provider = self.provider(job.provider)
        total = provider.cost(job.request)
        if total is None:
            return None
        kept = [t for t in job.tasks if t.remote_id and t.status in (TaskStatus.SUBMITTED, TaskStatus.SUCCEEDED)]
        saved = 0.0
        for task in kept:
            cost = provider.task_cost(job.request, task.key)
            if cost is None:
                return f"Retry reuses {len(kept)} finished task(s); the rest is sent again"
            saved += cost
        again = max(0.0, total - saved)
        unit = provider.balance_unit
        if not kept:
            return f"Retry sends the whole job again: {again:g} {unit}"
        names = ", ".join(t.label.lower() for t in kept)
        return f"Retry reuses the {names} (already paid); the new tasks cost {again:g} {unit}"

    def recover(self, provider_id: str, task_id: str, name: str, config: ProviderConfig) -> Job:
        """Download (and later import) the result of a task made elsewhere, by its id."""
        task_id = check_task_id(task_id)
        request = GenerationRequest(provider=provider_id, kind="task", name=name or f"Recovered {task_id[:8]}",
                                    options={"task_id": task_id})
        return self.submit(request, config)

    def cancel(self, job_id: str, config: ProviderConfig | None = None) -> None:
        """Stop the job; its worker also cancels unfinished tasks on the provider. A job another Blender
        window runs gets the request in the journal, and that window's worker stops it."""
        self.store.refresh()  # it may have ended in another window a moment ago
        job = self.store.get(job_id)
        if not job.state.active:
            return
        self.store.update(job_id, lambda j: setattr(j, "cancel_requested", True))
        with self._lock:
            worker = self._workers.get(job_id)
            pacer = self._pacers.get(job_id)
        if worker and worker[0].is_alive():
            worker[1].set()
            if pacer is not None:
                pacer.abort()  # a read blocked on a stalled server ends now, not at its timeout
        else:
            lease = self.store.lease(job_id)
            if lease is None:
                log.info("job %s runs in another Blender window; it was asked to cancel it", job_id)
            else:
                self.store.refresh()
                if not self.store.get(job_id).state.active:
                    lease.release()  # it ended in the window that ran it, just now
                elif config is not None:
                    # No worker (e.g. resumed without one yet): cancel remotely on a short-lived thread.
                    self._start(job_id, config, cancelled=True, lease=lease)
                else:
                    self._finish(job_id, JobState.CANCELED, "Cancelled")
                    lease.release()
        self.events.put(job_id)

    def sync(self) -> set[str]:
        """Take in what other Blender windows wrote to the journal; a job running here whose cancel was
        asked for there is cancelled. Returns the jobs that changed (the panel redraws them)."""
        changed = self.store.refresh()
        for job_id in changed:
            job = self.store.peek(job_id)
            if job is not None and job.cancel_requested and job.state.active and self.is_running(job_id):
                with self._lock:
                    worker = self._workers.get(job_id)
                    pacer = self._pacers.get(job_id)
                if worker is not None and not worker[1].is_set():
                    worker[1].set()
                    if pacer is not None:
                        pacer.abort()
            self.events.put(job_id)
        return changed

    def start_sync(self, interval: float = 0.5) -> None:
        """Keep taking in other Blender windows' journal changes on a background thread (`sync` every
        `interval` seconds until shutdown), so the main thread never reads the journal or waits on its lock."""
        if self._sync_thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.sync()
                except Exception:  # a bad moment on disk: try again next time
                    log.exception("could not read the other Blender windows' journal changes")

        self._sync_thread = threading.Thread(target=loop, name="marionette-journal-sync", daemon=True)
        self._sync_thread.start()

    def orphans(self) -> list[str]:
        """Unfinished jobs no Blender runs: not here, and nobody holds their lease (the window that ran
        them quit or crashed). The caller resumes them."""
        found = []
        for job_id in self.store.active_ids():
            if not self.is_running(job_id):
                lease = self.store.lease(job_id)
                if lease is not None:
                    lease.release()
                    found.append(job_id)
        return found

    def is_running(self, job_id: str) -> bool:
        with self._lock:
            worker = self._workers.get(job_id)
        return bool(worker and worker[0].is_alive())

    def running_count(self) -> int:
        with self._lock:
            return sum(1 for thread, _ in self._workers.values() if thread.is_alive())

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop every worker without changing job states: they resume at the next start.

        Downloads blocked on a read are broken off at once. A worker still inside a slow request
        writes nothing more (JobContext.edit), so it cannot put its stale view of the jobs over the next
        session's journal.
        """
        self._stop.set()
        with self._lock:
            threads = [thread for thread, _ in self._workers.values()]
            pacers = list(self._pacers.values())
        for pacer in pacers:
            pacer.abort()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- workers -----------------------------------------------------------------------------------

    def _start(self, job_id: str, config: ProviderConfig, cancelled: bool = False,
               lease: Lease | None = None) -> None:
        """Start the job's worker, which holds the job's lease (taken here if not given) until it ends."""
        if lease is None:
            lease = self.store.lease(job_id)
            if lease is None:
                log.info("job %s runs in another Blender window; not started here", job_id)
                return
        cancel = threading.Event()
        if cancelled:
            cancel.set()
        thread = threading.Thread(target=self._work, args=(job_id, config, cancel, lease),
                                  name=f"marionette-{job_id}", daemon=True)
        with self._lock:
            self._workers[job_id] = (thread, cancel)
        thread.start()

    def _work(self, job_id: str, config: ProviderConfig, cancel: threading.Event, lease: Lease) -> None:
        try:
            self._run_job(job_id, config, cancel)
        finally:
            lease.release()

    def _run_job(self, job_id: str, config: ProviderConfig, cancel: threading.Event) -> None:
        job = self.store.get(job_id)
        provider = self.provider(job.provider)
        client = ApiClient(config, auth_header=provider.auth_header, online_access=self.online_access_now,
                           timing=self.timing)
        pacer = Pacer(cancel, self._stop)
        with self._lock:
            self._pacers[job_id] = pacer
        install_log_redaction()  # modules imported since the last call get the key filter too
        ctx = JobContext(self, job_id, provider, client, pacer)
        try:
            ctx.edit(lambda j: setattr(j, "state", JobState.RUNNING))
            provider.run(ctx)
            ctx.pacer.checkpoint()
            self._finish(job_id, JobState.SUCCEEDED, "Ready to import", progress=1.0)
        except Shutdown:
            log.info("job %s paused for shutdown; it resumes at the next start", job_id)
        except Cancelled as exc:
            if self._stop.is_set():  # closing: the journal's cancel_requested finishes it at the next start
                return
            self._cancel_remote(provider, ctx)
            self._finish(job_id, JobState.CANCELED, "Cancelled", error=None if str(exc) == "Cancelled" else str(exc))
        except MarionetteError as exc:
            if self._stop.is_set():  # an error caused by the shutdown itself: resume, do not fail
                log.info("job %s stopped for shutdown (%s); it resumes at the next start", job_id, exc)
                return
            log.warning("job %s failed: %s", job_id, exc)
            self._finish(job_id, JobState.FAILED, "Failed", error=str(exc), code=getattr(exc, "code", None))
        except SHAPE_ERRORS as exc:  # provider code met an answer it cannot read: a protocol error
            log.exception("job %s: an answer in an unexpected form", job_id)
            if not self._stop.is_set():
                problem = unexpected_form(provider.label, exc)
                self._finish(job_id, JobState.FAILED, "Failed", error=str(problem), code=problem.code)
        except Exception as exc:  # a bug must not kill the job silently: record it
            log.exception("job %s: unexpected error", job_id)
            if not self._stop.is_set():
                self._finish(job_id, JobState.FAILED, "Failed",
                             error=f"Unexpected error ({exc.__class__.__name__}): {exc}")
        finally:
            client.close()
            with self._lock:
                if self._pacers.get(job_id) is pacer:
                    del self._pacers[job_id]
            self.events.put(job_id)

    def _cancel_remote(self, provider: Provider, ctx: JobContext) -> None:
        try:
            provider.cancel_remote(ctx)
        except Exception as exc:  # best effort: the local cancel stands either way
            log.warning("job %s: could not cancel on %s: %s", ctx.job_id, provider.label, exc)

    def _finish(self, job_id: str, state: JobState, stage: str, *, error: str | None = None,
                code: str | None = None, progress: float | None = None) -> None:
        def change(job: Job) -> None:
            job.state, job.stage, job.notice = state, stage, self.note(job_id)
            if error is not None:
                job.error, job.error_code = redact(error), code  # a provider may echo the key back
            if progress is not None:
                job.progress = progress

        self.store.update(job_id, change)
        self.events.put(job_id)


def _fingerprint(request: GenerationRequest, files: Sequence[InputFile]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(request.model_dump(mode="json", exclude={"name", "inputs"}), sort_keys=True).encode())
    for item in files:
        digest.update(hashlib.sha256(item.data).digest())
    return digest.hexdigest()


# -- input images ------------------------------------------------------------------------------------

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
MAX_IMAGE_PIXELS = 1 << 28  # 16384 x 16384: larger headers are damage, not pictures


def check_images(files: Sequence[InputFile]) -> None:
    """Refuse a PNG or JPEG that is damaged (a valid signature on broken data) before anything is sent:
    a provider would take the upload (and maybe the credits) and fail later, or make garbage of it."""
    for item in files:
        head = item.data[:8]
        if head.startswith(PNG_MAGIC):
            problem = png_problem(item.data)
        elif head.startswith(JPEG_MAGIC):
            problem = jpeg_problem(item.data)
        else:
            continue
        if problem:
            raise InputError(f"The image {item.name} is damaged ({problem}): open it in an image editor and save "
                             "it again, or pick another picture")


def png_problem(data: bytes) -> str | None:
    """What is wrong with a PNG file, or None: every chunk's length and CRC, the header, and that the
    image data decompresses to exactly the size the header announces."""
    pos, first, header = len(PNG_MAGIC), True, None
    inflate = zlib.decompressobj()
    produced = 0
    ended = False
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body_end = pos + 8 + length
        if body_end + 4 > len(data):
            return "the file is cut short"
        body = data[pos + 8:body_end]
        (crc,) = struct.unpack_from(">I", data, body_end)
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            return f"its {kind.decode('latin-1', 'replace')} chunk is corrupt"
        if first and kind != b"IHDR":
            return "it has no PNG header"
        first = False
        if kind == b"IHDR":
            if length != 13:
                return "its PNG header is malformed"
            header = struct.unpack(">IIBBBBB", body)
            width, height, depth, color, _compression, _filter, interlace = header
            if not 0 < width * height <= MAX_IMAGE_PIXELS or depth not in _PNG_DEPTHS.get(color, ()) \
                    or interlace not in (0, 1):
                return "its PNG header is malformed"
        elif kind == b"IDAT":
            try:
                while body and not inflate.eof:
                    produced += len(inflate.decompress(body, 1 << 20))
                    body = inflate.unconsumed_tail
            except zlib.error:
                return "its image data does not decompress"
        elif kind == b"IEND":
            ended = True
            break
        pos = body_end + 4
    if header is None:
        return "it has no PNG header"
    try:
        while not inflate.eof and (out := inflate.decompress(inflate.unconsumed_tail, 1 << 20)):
            produced += len(out)
    except zlib.error:
        return "its image data does not decompress"
    if not ended or not inflate.eof:
        return "the file is cut short"
    width, height, depth, color, _c, _f, interlace = header
    if produced != _png_raw_size(width, height, depth * _PNG_CHANNELS[color], interlace):
        return "its image data does not match its size"
    return None


def _png_raw_size(width: int, height: int, bits_per_pixel: int, interlace: int) -> int:
    """Bytes of filtered scanlines (a filter byte per row) the image data must inflate to."""
    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits_per_pixel + 7) // 8)

    if not interlace:
        return rows(width, height)
    total = 0
    for x0, y0, dx, dy in _ADAM7:
        pass_width = (width - x0 + dx - 1) // dx if width > x0 else 0
        pass_height = (height - y0 + dy - 1) // dy if height > y0 else 0
        total += rows(pass_width, pass_height)
    return total


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or JPEG from its header, or None when it cannot be told."""
    if data.startswith(PNG_MAGIC) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack_from(">II", data, 16)
        return int(width), int(height)
    if not data.startswith(JPEG_MAGIC):
        return None
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header: SOFn
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return int(width), int(height)
        if marker == 0xDA:  # scan data before any frame header
            return None
        pos += 2 + length
    return None


def jpeg_problem(data: bytes) -> str | None:
    """A JPEG must end its data with an EOI marker; a cut-off file does not."""
    if len(data) < 4 or data.rfind(b"\xff\xd9") < 2:
        return "the file is cut short"
    return None
