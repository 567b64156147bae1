"""The job journal: every job, its remote task ids and its files, in one JSON file that survives
Blender restarts and crashes.

Writes are atomic (temp file, fsync, rename), so a crash leaves either the old or the new journal.
A journal that cannot be read is copied aside (byte for byte) and reported, never silently replaced by
an empty one; what can be saved from it is kept: a complete temp file left by a crash between its
write and its rename, else every job entry that still reads. API keys are not part of the models, so
they cannot reach this file.

Many Blenders, one journal: several Blender processes may share the user folder. Every write takes a
cross-process lock (`journal.lock`, flock), reads what the others wrote since, merges it in and writes the
result, so no process's jobs or task ids are dropped by another's write. The merge is three-way per job
and per field: a field this process changed since it last read the file keeps its value, every other
field takes the file's (so the process running a job keeps its progress and task ids, while a cancel
requested in another window comes in). A job one process removed is not brought back by another.
A job is run by one process at a time: the one holding its lease (`jobs/<id>/.lease`, an flock held for
as long as its worker runs, so the kernel frees it when that Blender quits or crashes, and another takes
the job over). Other processes show it (`refresh`) and leave it alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .models import Job

try:  # POSIX: flock; Windows: msvcrt byte-range locks; elsewhere no cross-process lock
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
try:
    import msvcrt
except ImportError:
    msvcrt = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.json"
JOURNAL_VERSION = 1
LOCK_NAME = "journal.lock"
LEASE_NAME = ".lease"  # in the job's folder


def _lock_fd(fd: int, blocking: bool) -> bool:
    """Lock an open file for this process; False when `blocking` is off and another process holds it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True
    if msvcrt is not None:  # pragma: no cover - Windows
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not blocking:
                    return False
                time.sleep(0.01)
    return True  # pragma: no cover


def _unlock_fd(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    elif msvcrt is not None:  # pragma: no cover - Windows
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """The journal's cross-process lock, held while the file is read, merged and written."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _lock_fd(fd, blocking=True)
        try:
            yield
        finally:
            _unlock_fd(fd)
    finally:
        os.close(fd)


class Lease:
    """This process's right to run one job: an exclusive lock on jobs/<id>/.lease, held until released
    (or until the process ends, when the operating system frees it)."""

    def __init__(self, store: JobStore, job_id: str, fd: int) -> None:
        self.store = store
        self.job_id = job_id
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with self.store._lock:
            self.store._held.discard(self.job_id)
        try:
            _unlock_fd(fd)
        finally:
            os.close(fd)


def _merge3(base: dict[str, Any] | None, ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Per field: what this process changed since `base` (the last version it read or wrote) wins, the
    rest is the file's. `updated_at` is the later of the two."""
    out = dict(theirs)
    for key, value in ours.items():
        if base is None or base.get(key) != value:
            out[key] = value
    out["updated_at"] = max(float(ours.get("updated_at") or 0), float(theirs.get("updated_at") or 0))
    return out


class JobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = root / JOURNAL_NAME
        self._lock = threading.RLock()  # guards the jobs; held for microseconds, never during disk I/O
        self._write_lock = threading.Lock()  # one writer of the file at a time
        self._jobs: dict[str, Job] = {}
        # Each job's JSON form, made when it changes: a save joins these instead of dumping every job.
        self._dumps: dict[str, dict[str, Any]] = {}
        self._seq = 0  # snapshot number, taken under _lock
        self._written = 0  # newest snapshot on disk, under _write_lock
        self.warning: str | None = None
        self._lock_path = root / LOCK_NAME
        self._base: dict[str, dict[str, Any]] = {}  # each job as last read from or written to the file
        self._removed: set[str] = set()  # removed here: never taken back in from the file
        self._held: set[str] = set()  # jobs whose lease this process holds (under _lock)
        self._incoming: set[str] = set()  # jobs other processes changed, not yet reported by refresh()
        self._disk_sig: tuple[int, int, int] | None = None  # the file as last read or written
        self._load()
        self._dumps = {job_id: job.model_dump(mode="json") for job_id, job in self._jobs.items()}
        if self.warning is None:
            self._base = {job_id: dict(dump) for job_id, dump in self._dumps.items()}

    # -- reading -----------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.exists():
            self._adopt_leftover_tmp()
            return
        try:
            self._disk_sig = self._signature()
            raw = self.path.read_bytes()
            data = json.loads(raw.decode("utf-8"))
            items = data["jobs"]
            if not isinstance(items, list):
                raise TypeError("jobs is not a list")
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            # RecursionError: JSON nested too deeply for the parser (a damaged or hostile file).
            self._damaged(exc.__class__.__name__, self._read_tmp())
            return
        jobs, bad = [], 0
        for item in items:
            try:
                jobs.append(Job.model_validate(item))
            except (ValidationError, ValueError, TypeError, RecursionError):
                bad += 1
        if bad:
            self._damaged(f"{bad} of {len(items)} jobs unreadable", jobs)
            return
        self._jobs = {job.id: job for job in jobs}

    def _read_tmp(self) -> list[Job] | None:
        """The jobs of a complete temp journal (a crash came between its fsync and its rename), else None."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            data = json.loads(tmp.read_text(encoding="utf-8"))
            return [Job.model_validate(item) for item in data["jobs"]]
        except (OSError, ValueError, KeyError, TypeError, ValidationError, RecursionError):
            return None

    def _adopt_leftover_tmp(self) -> None:
        jobs = self._read_tmp()
        if jobs:
            self._jobs = {job.id: job for job in jobs}
            log.warning("the job journal was restored from %s.tmp (a crash came before its rename)", JOURNAL_NAME)

    def _damaged(self, why: str, salvaged: list[Job] | None) -> None:
        """Keep the damaged file aside, say so, and carry on with what could be saved."""
        aside = self.path.with_name(f"journal.damaged-{time.strftime('%Y%m%d-%H%M%S')}.json")
        counter = 1
        while aside.exists():
            counter += 1
            aside = self.path.with_name(f"journal.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{counter}.json")
        try:
            shutil.copy2(self.path, aside)
        except OSError:
            os.replace(self.path, aside)  # no room for a copy: a rename needs none
        kept = f"it was kept as {aside.name}"
        if salvaged:
            self._jobs = {job.id: job for job in salvaged}
        saved = f"; {len(salvaged)} job(s) were recovered" if salvaged else ""
        self.warning = f"The job journal could not be read ({why}); {kept}{saved}"
        log.error(self.warning)

    def get(self, job_id: str) -> Job:
        with self._lock:
            try:
                return self._jobs[job_id].model_copy(deep=True)
            except KeyError:
                raise KeyError(f"No Marionette job with id {job_id!r}") from None

    def peek(self, job_id: str) -> Job | None:
        """The stored job itself, not a copy, or None: for a quick look from the main thread (the pump).
        Read a few fields and let go; never change it or keep it."""
        with self._lock:
            return self._jobs.get(job_id)

    def __contains__(self, job_id: object) -> bool:
        with self._lock:
            return job_id in self._jobs

    def all(self) -> list[Job]:
        with self._lock:
            return [job.model_copy(deep=True) for job in sorted(self._jobs.values(), key=lambda j: j.created_at)]

    def newest(self, limit: int) -> tuple[list[Job], int]:
        """Copies of the `limit` newest jobs, newest first, and how many jobs there are in all: the panel
        draws a few jobs of a long history without copying all of it on every redraw."""
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)[:limit]
            return [job.model_copy(deep=True) for job in jobs], len(self._jobs)

    def active_ids(self) -> list[str]:
        """Ids of the unfinished jobs, without copying any job (for a look from the main thread)."""
        with self._lock:
            return [job_id for job_id, job in self._jobs.items() if job.state.active]

    def job_dir(self, job_id: str) -> Path:
        path = self.root / "jobs" / job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- writing -----------------------------------------------------------------------------------

    def add(self, job: Job, duplicate_of: Callable[[Job], bool] | None = None) -> Job | None:
        """Add `job` and write it. With `duplicate_of`, first takes in what other processes wrote and,
        under the journal's lock, returns a copy of a job it matches instead of adding (the double-click
        guard across Blender windows)."""
        with self._write_lock, _file_lock(self._lock_path):
            self._take_in()
            with self._lock:
                if duplicate_of is not None:
                    for other in self._jobs.values():
                        if duplicate_of(other):
                            return other.model_copy(deep=True)
                if job.id in self._jobs:
                    raise ValueError(f"Job {job.id} exists already")
                self._jobs[job.id] = job.model_copy(deep=True)
                self._dumps[job.id] = job.model_dump(mode="json")
                seq = self._next()
            self._flush(seq)
        return None

    def update(self, job_id: str, change: Callable[[Job], None]) -> Job:
        """Apply `change` to the stored job and persist it before returning; returns a copy of the result.

        A change that changes nothing (a poll that saw the same progress) is not written again."""
        with self._lock:
            job = self._jobs[job_id]
            change(job)
            seq = self._changed(job)
            result = job.model_copy(deep=True)
        if seq:
            self._write(seq)
        return result

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)
            self._dumps.pop(job_id, None)
            self._removed.add(job_id)
            seq = self._next()
        self._write(seq)

    def _changed(self, job: Job) -> int | None:
        """Under the lock: a snapshot number to write if the job differs from its last saved form."""
        dump = job.model_dump(mode="json")
        before = self._dumps.get(job.id)
        if before is not None and {**before, "updated_at": None} == {**dump, "updated_at": None}:
            return None
        job.updated_at = time.time()
        dump["updated_at"] = job.updated_at
        self._dumps[job.id] = dump
        return self._next()

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _write(self, seq: int) -> None:
        """Atomic write (temp file, fsync, rename) outside the jobs lock, so the pump and other workers
        never wait for the disk. A change already on disk (a later write took it) is not written again."""
        with self._write_lock:
            if seq <= self._written:
                return
            with _file_lock(self._lock_path):
                self._take_in()
                self._flush(self._seq)

    def _flush(self, seq: int) -> None:
        """Under _write_lock and the file lock, after _take_in: write every job as this process has it."""
        with self._lock:
            seq = self._seq
            jobs = list(self._dumps.values())
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"version": JOURNAL_VERSION, "jobs": jobs}, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._disk_sig = self._signature()
        self._base = {dump["id"]: dump for dump in jobs}
        self._written = max(self._written, seq)

    # -- other processes ---------------------------------------------------------------------------

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def refresh(self) -> set[str]:
        """Take in what other Blender processes wrote since this one last read or wrote the journal.
        Returns the ids of jobs that changed here (added, updated, removed). Cheap when nothing did."""
        if self._signature() != self._disk_sig:
            with self._write_lock, _file_lock(self._lock_path):
                self._take_in()
        with self._lock:  # also what this process's own writes took in since the last call
            changed, self._incoming = self._incoming, set()
        return changed

    def _take_in(self) -> set[str]:
        """Under _write_lock and the file lock: merge the file's jobs into this process's."""
        sig = self._signature()
        if sig is None or sig == self._disk_sig:
            return set()
        try:
            data = json.loads(self.path.read_bytes().decode("utf-8"))
            items = data["jobs"]
            if not isinstance(items, list):
                raise TypeError("jobs is not a list")
            theirs = {str(item["id"]): item for item in items if isinstance(item, dict) and "id" in item}
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            # Another writer's file must be whole (atomic rename); if not, keep ours and overwrite it.
            log.warning("the job journal written by another Blender could not be read (%s)", exc.__class__.__name__)
            self._disk_sig = sig
            return set()
        changed: set[str] = set()
        with self._lock:
            for job_id, their in theirs.items():
                if job_id in self._removed:
                    continue
                ours = self._dumps.get(job_id)
                merged = their if ours is None else _merge3(self._base.get(job_id), ours, their)
                if merged == ours:
                    continue
                try:
                    job = Job.model_validate(merged)
                except (ValidationError, ValueError, TypeError, RecursionError):
                    continue
                self._jobs[job_id] = job
                self._dumps[job_id] = job.model_dump(mode="json")
                changed.add(job_id)
            for job_id in list(self._jobs):
                gone = job_id not in theirs and job_id in self._base
                if gone and not self._jobs[job_id].state.active and job_id not in self._held:
                    del self._jobs[job_id]  # another window removed it from the list
                    self._dumps.pop(job_id, None)
                    changed.add(job_id)
            if changed:
                self._seq += 1
                self._incoming |= changed
        self._base = {job_id: dict(item) for job_id, item in theirs.items()}
        self._disk_sig = sig
        return changed

    def lease(self, job_id: str) -> Lease | None:
        """The right to run `job_id` in this process, or None while another Blender runs it."""
        fd = os.open(self.job_dir(job_id) / LEASE_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        if not _lock_fd(fd, blocking=False):
            os.close(fd)
            return None
        with self._lock:
            self._held.add(job_id)
        return Lease(self, job_id, fd)
