"""Worker threads that drive jobs on the providers: submit, resume, retry, cancel, the journal sync
between Blender windows, and each job's lease. A job's worker runs its provider's pipeline with a
JobContext (jobcontext.py: the task ledger and the result fetcher).

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
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from . import downloads
from .errors import Cancelled, ConfigError, InputError, MarionetteError
from .http import ApiClient, Pacer, ProviderConfig, Shutdown, Timing
from .images import InputFile, check_images
from .jobcontext import JobContext
from .ledger import SHAPE_ERRORS, unexpected_form
from .models import GenerationRequest, Job, JobState, TaskStatus
from .providers.base import Provider
from .redaction import install_log_redaction, redact
from .store import JobStore, Lease

__all__ = ["DOUBLE_SUBMIT_WINDOW", "InputFile", "JobContext", "JobRunner", "check_task_id"]

log = logging.getLogger(__name__)

# Two identical requests this close together are one double click, not two purchases.
DOUBLE_SUBMIT_WINDOW = 2.0
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def check_task_id(task_id: object) -> str:
    """A provider task id as given to Recover: letters, digits and `_ . : -`, never a path or a URL."""
    text = task_id.strip() if isinstance(task_id, str) else ""
    if not TASK_ID.fullmatch(text) or ".." in text:
        shown = repr(task_id)[:60]
        raise InputError(f"{shown} is not a task id: give the id exactly as the provider shows it (letters, "
                         "digits, '-', '_', '.' or ':')")
    return text


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
            if not provider.in_estimate(job.request, task.key):
                continue  # a step added on the way: reusing it takes nothing off the estimate
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
