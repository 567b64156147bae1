"""The job journal: every job, its remote task ids and its files, in one JSON file that survives
Blender restarts and crashes.

Writes are atomic (temp file, fsync, rename), so a crash leaves either the old or the new journal.
A journal that cannot be read is copied aside (byte for byte) and reported, never silently replaced by
an empty one; what can be saved from it is kept: a complete temp file left by a crash between its
write and its rename, else every job entry that still reads. API keys are not part of the models, so
they cannot reach this file.
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

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.json"
JOURNAL_VERSION = 1


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
        self._load()
        self._dumps = {job_id: job.model_dump(mode="json") for job_id, job in self._jobs.items()}

    # -- reading -----------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.exists():
            self._adopt_leftover_tmp()
            return
        try:
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

    def job_dir(self, job_id: str) -> Path:
        path = self.root / "jobs" / job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- writing -----------------------------------------------------------------------------------

    def add(self, job: Job) -> None:
        with self._lock:
            if job.id in self._jobs:
                raise ValueError(f"Job {job.id} exists already")
            self._jobs[job.id] = job.model_copy(deep=True)
            self._dumps[job.id] = job.model_dump(mode="json")
            snapshot = self._snapshot()
        self._write(*snapshot)

    def update(self, job_id: str, change: Callable[[Job], None]) -> Job:
        """Apply `change` to the stored job and persist it before returning; returns a copy of the result.

        A change that changes nothing (a poll that saw the same progress) is not written again."""
        with self._lock:
            job = self._jobs[job_id]
            change(job)
            snapshot = self._changed(job)
            result = job.model_copy(deep=True)
        if snapshot:
            self._write(*snapshot)
        return result

    @contextmanager
    def editing(self, job_id: str) -> Iterator[Job]:
        with self._lock:
            job = self._jobs[job_id]
            yield job
            snapshot = self._changed(job)
        if snapshot:
            self._write(*snapshot)

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)
            self._dumps.pop(job_id, None)
            snapshot = self._snapshot()
        self._write(*snapshot)

    def _changed(self, job: Job) -> tuple[int, list[dict[str, Any]]] | None:
        """Under the lock: a snapshot to write if the job differs from its last saved form, else None."""
        dump = job.model_dump(mode="json")
        before = self._dumps.get(job.id)
        if before is not None and {**before, "updated_at": None} == {**dump, "updated_at": None}:
            return None
        job.updated_at = time.time()
        dump["updated_at"] = job.updated_at
        self._dumps[job.id] = dump
        return self._snapshot()

    def _snapshot(self) -> tuple[int, list[dict[str, Any]]]:
        """Under the lock: the journal's content as of now. The dicts are replaced, never changed, so the
        list can be serialised after the lock is let go."""
        self._seq += 1
        return self._seq, list(self._dumps.values())

    def _write(self, seq: int, jobs: list[dict[str, Any]]) -> None:
        """Atomic write (temp file, fsync, rename) outside the jobs lock, so the pump and other workers
        never wait for the disk. A snapshot older than the one on disk is dropped: the newer one holds
        this change too, and writing the older one would undo another thread's change."""
        with self._write_lock:
            if seq <= self._written:
                return
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"version": JOURNAL_VERSION, "jobs": jobs}, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self._written = seq
