"""Worker threads that drive jobs on the providers, and the context they share with provider code.

Workers do HTTP and file I/O only and never touch bpy. Every state change goes to the journal at
once (so a crash loses nothing) and the job id is posted on `events` for the main-thread pump.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import downloads
from .errors import Cancelled, ConfigError, MarionetteError, ProviderError, TaskFailed, TransientError
from .http import ApiClient, Pacer, ProviderConfig, Shutdown, Timing, with_retries
from .models import Asset, GenerationRequest, Job, JobState, RemoteTask, TaskStatus
from .providers.base import Provider, TaskSnapshot
from .store import JobStore

log = logging.getLogger(__name__)

# Two identical requests this close together are one double click, not two purchases.
DOUBLE_SUBMIT_WINDOW = 2.0


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

    def edit(self, change: Callable[[Job], None]) -> Job:
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
        if self.job().notice != text:
            self.edit(lambda job: setattr(job, "notice", text))

    def input_path(self, index: int = 0) -> Path:
        return Path(self.request.inputs[index])

    # -- remote tasks ------------------------------------------------------------------------------

    def submit_once(self, key: str, label: str, create: Callable[[], str]) -> str:
        """Create the remote task `key` unless the journal says it exists; return its remote id."""
        task = self.job().task(key)
        if task and task.remote_id:
            return task.remote_id
        if task and task.status is TaskStatus.SUBMITTING:
            raise ProviderError(
                f"Creating the {label.lower()} task was interrupted before {self.provider.label} answered. "
                f"It may exist (and be paid for) on {self.provider.label}; Marionette does not send it "
                "again. Check your account's task list, or recover it by task id."
            )

        def mark_submitting(job: Job) -> None:
            existing = job.task(key)
            if existing is None:
                job.tasks.append(RemoteTask(key=key, label=label, status=TaskStatus.SUBMITTING))
            else:
                existing.status = TaskStatus.SUBMITTING

        self.edit(mark_submitting)
        try:
            remote_id = with_retries(create, pacer=self.pacer, timing=self.timing, notice=self.notice,
                                     repeatable=False)
        except TransientError as exc:
            if exc.status is not None:  # the provider answered "no": nothing was created
                self._task_status(key, TaskStatus.NEW)
            raise
        except (ProviderError, ConfigError, Cancelled, Shutdown):
            self._task_status(key, TaskStatus.NEW)  # refused or never sent
            raise

        def record(job: Job) -> None:
            task = job.task(key)
            assert task is not None
            task.remote_id = remote_id
            task.status = TaskStatus.SUBMITTED
            task.submitted_at = time.time()

        self.edit(record)
        log.info("job %s: %s task %s created", self.job_id, key, remote_id)
        return remote_id

    def adopt_task(self, key: str, label: str, remote_id: str) -> None:
        """Record a task that exists already (made elsewhere) so that it is polled, never created."""
        def change(job: Job) -> None:
            if job.task(key) is None:
                job.tasks.append(RemoteTask(key=key, label=label, remote_id=remote_id, status=TaskStatus.SUBMITTED))

        self.edit(change)

    def _task_status(self, key: str, status: TaskStatus) -> None:
        def change(job: Job) -> None:
            task = job.task(key)
            if task is not None:
                task.status = status

        self.edit(change)

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
                snap = with_retries(lambda task=task: fetch(task), pacer=self.pacer,  # type: ignore[misc]
                                    timing=self.timing, notice=self.notice)
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
                if job.asset(asset.key) is None:
                    job.assets.append(asset)

        self.edit(register)
        todo = [a for a in self.job().assets if a.key in {w.key for w in wanted} and not a.path]
        for index, asset in enumerate(todo):
            self.set_stage(f"Downloading {asset.name} ({index + 1} of {len(todo)})",
                           progress_from + (1 - progress_from) * index / max(1, len(todo)))
            stem = asset.key.replace(":", "_")
            dest = self.job_dir / downloads.safe_filename(f"{stem}.{_ext(asset.url, asset.role)}")
            path = self._download_one(asset, dest, refresh_url)

            def record(job: Job, key: str = asset.key, path: Path = path) -> None:
                stored = job.asset(key)
                assert stored is not None
                stored.path = str(path)
                stored.size = path.stat().st_size

            self.edit(record)

    def _download_one(self, asset: Asset, dest: Path, refresh_url: Callable[[Asset], str] | None) -> Path:
        url = asset.url
        refreshed = False
        expect = ("png", "jpeg") if asset.role in ("image", "preview") else ("glb", "fbx")
        while True:
            try:
                return with_retries(
                    lambda url=url: downloads.download(self.client.session, url, dest, pacer=self.pacer,  # type: ignore[misc]
                                               timing=self.timing, online_access=self.runner.online_access_now,
                                               expect=expect, max_bytes=self.runner.max_download_bytes),
                    pacer=self.pacer, timing=self.timing, notice=self.notice)
            except MarionetteError as exc:
                # An expired link is normal for a job resumed later: ask the provider for a fresh one.
                if refresh_url is None or refreshed or "expired" not in str(exc):
                    raise
                url = refresh_url(asset)
                refreshed = True


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
        self._stop = threading.Event()
        self._workers: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.Lock()

    def online_access_now(self) -> bool:
        return self.online_access

    def provider(self, provider_id: str) -> Provider:
        try:
            return self.providers[provider_id]
        except KeyError:
            raise ConfigError(f"Unknown provider {provider_id!r}; known: {', '.join(self.providers)}") from None

    # -- main-thread API ---------------------------------------------------------------------------

    def submit(self, request: GenerationRequest, config: ProviderConfig, files: Sequence[InputFile] = ()) -> Job:
        """Validate, record and start a job. Input bytes are copied into the job folder first."""
        provider = self.provider(request.provider)
        request = request.model_copy(update={"options": provider.resolve_options(request.options, request.kind)})
        provider.validate(request)
        if files:  # an image given by URL (Claythis) has no file to check
            provider.check_files(request.kind, [f.data for f in files])
        fingerprint = _fingerprint(request, files)
        now = time.time()
        for job in self.store.all():
            if job.fingerprint == fingerprint and job.state.active and now - job.created_at < DOUBLE_SUBMIT_WINDOW:
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
        self.store.add(job)
        self.events.put(job_id)
        self._start(job_id, config)
        return job

    def resume(self, job_id: str, config: ProviderConfig) -> bool:
        """Restart the worker of an unfinished job (after a Blender restart). False if nothing to do."""
        job = self.store.get(job_id)
        if not job.state.active or self.is_running(job_id):
            return False
        if job.cancel_requested:
            self.cancel(job_id, config)
            return False
        self._start(job_id, config)
        return True

    def retry(self, job_id: str, config: ProviderConfig) -> Job:
        """Run a failed or cancelled job again. Finished remote tasks are reused (not paid again); tasks
        that failed, were cancelled or whose creation was interrupted are sent again."""
        job = self.store.get(job_id)
        if job.state.active or self.is_running(job_id):
            raise ConfigError("This job is still running")
        if job.state is JobState.SUCCEEDED:
            raise ConfigError("This job succeeded: import it again instead")

        def reset(j: Job) -> None:
            j.tasks = [t for t in j.tasks if t.status in (TaskStatus.SUBMITTED, TaskStatus.SUCCEEDED)]
            j.state, j.stage, j.progress = JobState.PENDING, "Queued (retry)", 0.0
            j.error = j.error_code = j.notice = j.import_error = None
            j.cancel_requested = False
            j.retries += 1

        job = self.store.update(job_id, reset)
        self.events.put(job_id)
        self._start(job_id, config)
        return job

    def recover(self, provider_id: str, task_id: str, name: str, config: ProviderConfig) -> Job:
        """Download (and later import) the result of a task made elsewhere, by its id."""
        request = GenerationRequest(provider=provider_id, kind="task", name=name or f"Recovered {task_id[:8]}",
                                    options={"task_id": task_id})
        return self.submit(request, config)

    def cancel(self, job_id: str, config: ProviderConfig | None = None) -> None:
        """Stop the job; its worker also cancels unfinished tasks on the provider."""
        job = self.store.get(job_id)
        if not job.state.active:
            return
        self.store.update(job_id, lambda j: setattr(j, "cancel_requested", True))
        with self._lock:
            worker = self._workers.get(job_id)
        if worker and worker[0].is_alive():
            worker[1].set()
        elif config is not None:
            # No worker (e.g. resumed without one yet): cancel remotely on a short-lived thread.
            self._start(job_id, config, cancelled=True)
        else:
            self._finish(job_id, JobState.CANCELED, "Cancelled")
        self.events.put(job_id)

    def is_running(self, job_id: str) -> bool:
        with self._lock:
            worker = self._workers.get(job_id)
        return bool(worker and worker[0].is_alive())

    def running_count(self) -> int:
        with self._lock:
            return sum(1 for thread, _ in self._workers.values() if thread.is_alive())

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop every worker without changing job states: they resume at the next start."""
        self._stop.set()
        with self._lock:
            threads = [thread for thread, _ in self._workers.values()]
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- workers -----------------------------------------------------------------------------------

    def _start(self, job_id: str, config: ProviderConfig, cancelled: bool = False) -> None:
        cancel = threading.Event()
        if cancelled:
            cancel.set()
        thread = threading.Thread(target=self._work, args=(job_id, config, cancel),
                                  name=f"marionette-{job_id}", daemon=True)
        with self._lock:
            self._workers[job_id] = (thread, cancel)
        thread.start()

    def _work(self, job_id: str, config: ProviderConfig, cancel: threading.Event) -> None:
        job = self.store.get(job_id)
        provider = self.provider(job.provider)
        client = ApiClient(config, auth_header=provider.auth_header, online_access=self.online_access_now,
                           timing=self.timing)
        ctx = JobContext(self, job_id, provider, client, Pacer(cancel, self._stop))
        try:
            self.store.update(job_id, lambda j: setattr(j, "state", JobState.RUNNING))
            self.events.put(job_id)
            provider.run(ctx)
            ctx.pacer.checkpoint()
            self._finish(job_id, JobState.SUCCEEDED, "Ready to import", progress=1.0)
        except Cancelled as exc:
            self._cancel_remote(provider, ctx)
            self._finish(job_id, JobState.CANCELED, "Cancelled", error=None if str(exc) == "Cancelled" else str(exc))
        except Shutdown:
            log.info("job %s paused for shutdown; it resumes at the next start", job_id)
        except MarionetteError as exc:
            log.warning("job %s failed: %s", job_id, exc)
            self._finish(job_id, JobState.FAILED, "Failed", error=str(exc), code=getattr(exc, "code", None))
        except Exception as exc:  # a bug must not kill the job silently: record it
            log.exception("job %s: unexpected error", job_id)
            self._finish(job_id, JobState.FAILED, "Failed",
                         error=f"Unexpected error ({exc.__class__.__name__}): {exc}")
        finally:
            client.close()
            self.events.put(job_id)

    def _cancel_remote(self, provider: Provider, ctx: JobContext) -> None:
        try:
            provider.cancel_remote(ctx)
        except Exception as exc:  # best effort: the local cancel stands either way
            log.warning("job %s: could not cancel on %s: %s", ctx.job_id, provider.label, exc)

    def _finish(self, job_id: str, state: JobState, stage: str, *, error: str | None = None,
                code: str | None = None, progress: float | None = None) -> None:
        def change(job: Job) -> None:
            job.state, job.stage, job.notice = state, stage, None
            if error is not None:
                job.error, job.error_code = error, code
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
