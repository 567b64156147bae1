"""The create-once task ledger: a job's remote tasks as the journal records them.

A create request is sent at most once per attempt and never repeated after it may have reached the
provider; a task whose answer was lost is looked up (where the provider lists its tasks) and adopted;
task states from polling go to the journal at once. Every change is a journal edit through `JobRecord`,
which posts the job id for the main-thread pump. No bpy, no threads of its own.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence

from .errors import (
    Cancelled,
    ConfigError,
    ProtocolError,
    ProviderError,
    TaskFailed,
    TransientError,
)
from .http import ConnectFailed, Pacer, Shutdown, Timing, with_retries
from .models import Job, JobState, RemoteTask, TaskStatus
from .providers.base import Provider, TaskSnapshot
from .redaction import redact
from .store import JobStore

log = logging.getLogger(__name__)

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

# find(sent_at) -> the remote id of a task this job created at `sent_at` whose answer was lost, or None.
Finder = Callable[[float], str | None]


def unexpected_form(label: str, exc: BaseException) -> ProtocolError:
    detail = redact(str(exc))[:160]
    return ProtocolError(f"{label} answered in an unexpected form ({exc.__class__.__name__}: {detail}). The "
                         "provider's tasks are kept: press Retry later, or report it if it persists.",
                         code="unexpected_form")


class CreateServerError(TransientError):
    """A create request answered 5xx. No provider document says such a task was not created, so it is
    treated as an answer that may have made the task (status None: with_retries does not repeat it):
    looked up where the provider lists its tasks, else not sent again on Marionette's own, unless the
    provider's document says to retry (Provider.create_retries_server_errors)."""

    def __init__(self, message: str, server_status: int) -> None:
        super().__init__(message)
        self.server_status = server_status


class JobRecord:
    """One job's entry in the journal: read it, edit it (each edit is posted on `events`), its stage and notice."""

    def __init__(self, store: JobStore, events: queue.SimpleQueue[str], job_id: str, pacer: Pacer,
                 note: Callable[[], str | None]) -> None:
        self.store = store
        self.events = events
        self.job_id = job_id
        self.pacer = pacer
        self._note = note

    def job(self) -> Job:
        return self.store.get(self.job_id)

    def edit(self, change: Callable[[Job], None], force: bool = False) -> Job:
        if self.pacer.stop.is_set() and not force:
            # Blender is closing: the next session owns the journal now. A worker still inside a slow
            # request must not write its stale view of the jobs over it.
            raise Shutdown()
        job = self.store.update(self.job_id, change)
        self.events.put(self.job_id)
        return job

    def set_stage(self, stage: str, progress: float | None = None) -> None:
        def change(job: Job) -> None:
            job.stage = stage
            if progress is not None:
                job.progress = max(0.0, min(1.0, progress))

        self.edit(change)

    def notice(self, text: str | None) -> None:
        text = redact(text) if text else self._note()
        if self.job().notice != text:
            self.edit(lambda job: setattr(job, "notice", text))


class TaskLedger:
    """The job's remote tasks: created once, found and adopted after a lost answer, polled to the end."""

    def __init__(self, record: JobRecord, provider: Provider, timing: Timing) -> None:
        self.record = record
        self.store = record.store
        self.job_id = record.job_id
        self.pacer = record.pacer
        self.provider = provider
        self.timing = timing
        self.job = record.job
        self.edit = record.edit
        self.notice = record.notice

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
        return {t.remote_id for job in self.store.all() for t in job.tasks if t.remote_id}

    def _find(self, key: str, label: str, find: Finder, sent_at: float, attempts: int) -> str | None:
        """Look for the task a create sent at `sent_at` made, and adopt it. None when it is not there."""
        for attempt in range(attempts):
            try:
                found = with_retries(lambda: find(sent_at), pacer=self.pacer, timing=self.timing,
                                     notice=self.notice)
            except ProviderError as exc:
                log.warning("job %s: could not look for the %s task: %s", self.job_id, key, exc)
                return None
            self.store.refresh()  # what other windows' jobs have recorded by now
            if found and found in self.known_remote_ids():
                found = None
            if found and self._others_creating(key):
                # Another job's create of the same kind is still waiting for its answer: the task found
                # may be that job's. Look again once it has recorded what it got (within seconds).
                log.info("job %s: the %s task %s may belong to another job's create; looking again",
                         self.job_id, key, found)
                if attempt + 1 < attempts:
                    self.pacer.sleep(max(IN_FLIGHT_WAIT, self.timing.retry_base * (2 ** attempt)))
                continue
            if found:
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
                   for job in self.store.all() if job.id != self.job_id and job.state.active
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
