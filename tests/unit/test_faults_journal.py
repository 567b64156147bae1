"""Fault matrix, journal row: a journal cut short (a crash of a naive writer, a full disk, a bad copy), a
temp file left by a crash between its write and its rename, and one unreadable job entry. The damaged
file is kept aside byte for byte and reported, never silently emptied; what can be saved is kept, and a
saved unfinished job resumes without its task being sent again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from addon.core.models import GenerationRequest, Job, RemoteTask, TaskStatus
from addon.core.store import JobStore
from tests.emulator import Emulator
from tests.unit.fault_matrix import Matrix, config, hold, make_runner, release, settle, submit, wait, wait_for


def _job(job_id: str, remote: str | None = None) -> Job:
    job = Job(id=job_id, provider="meshy", request=GenerationRequest(provider="meshy", kind="image", name=job_id))
    if remote:
        job.tasks.append(RemoteTask(key="image", label="Model", remote_id=remote, status=TaskStatus.SUBMITTED))
    return job


def _journal(root: Path, count: int = 3) -> bytes:
    store = JobStore(root)
    for index in range(count):
        store.add(_job(f"job{index}", remote=f"task-{index}"))
    return store.path.read_bytes()


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_a_journal_cut_short_is_kept_aside_and_reported(tmp_path: Path, matrix: Matrix, fraction: float) -> None:
    whole = _journal(tmp_path)
    cut = whole[: int(len(whole) * fraction)]
    (tmp_path / "journal.json").write_bytes(cut)
    store = JobStore(tmp_path)
    kept = list(tmp_path.glob("journal.damaged-*.json"))
    ok = (store.warning is not None and "could not be read" in store.warning and len(kept) == 1
          and kept[0].read_bytes() == cut and kept[0].name in store.warning)
    store.add(_job("new"))  # the next write does not touch what was kept aside
    ok = ok and kept[0].read_bytes() == cut and JobStore(tmp_path).warning is None
    matrix.record("journal", "all", "cut short", survived=ok)
    assert ok, store.warning


def test_a_crash_between_write_and_rename_keeps_the_new_journal(tmp_path: Path, matrix: Matrix) -> None:
    whole = _journal(tmp_path)
    (tmp_path / "journal.json.tmp").write_bytes(whole)  # complete and fsynced, not yet renamed ...
    (tmp_path / "journal.json").write_bytes(whole[:25])  # ... over a journal a naive tool left cut
    store = JobStore(tmp_path)
    ok = [j.id for j in store.all()] == ["job0", "job1", "job2"] and "3 job(s) were recovered" in (store.warning or "")
    (tmp_path / "journal.json").unlink()  # and the crash came before the very first rename
    again = JobStore(tmp_path)
    ok = ok and len(again.all()) == 3 and again.warning is None
    matrix.record("journal", "all", "crash before rename", injected=2, survived=2 if ok else 0)
    assert ok, store.warning


def test_a_half_written_temp_file_is_ignored(tmp_path: Path, matrix: Matrix) -> None:
    whole = _journal(tmp_path)
    (tmp_path / "journal.json.tmp").write_bytes(whole[: len(whole) // 3])  # the crash came mid-write
    store = JobStore(tmp_path)
    ok = len(store.all()) == 3 and store.warning is None  # the old journal is whole: atomic writes
    matrix.record("journal", "all", "crash mid-write", survived=ok)
    assert ok


def test_one_unreadable_job_keeps_the_others(tmp_path: Path, matrix: Matrix) -> None:
    _journal(tmp_path)
    data = json.loads((tmp_path / "journal.json").read_text())
    data["jobs"][1]["state"] = "EXPLODED"
    (tmp_path / "journal.json").write_text(json.dumps(data))
    store = JobStore(tmp_path)
    ok = [j.id for j in store.all()] == ["job0", "job2"] and "1 of 3 jobs unreadable" in (store.warning or "")
    ok = ok and len(list(tmp_path.glob("journal.damaged-*.json"))) == 1
    matrix.record("journal", "all", "bad entry", survived=ok)
    assert ok, store.warning


def test_a_recovered_journal_resumes_without_sending_again(tmp_path: Path, emu: Emulator, matrix: Matrix) -> None:
    root = tmp_path / "user"
    first = make_runner(root)
    hold(emu, "meshy", True)
    job = submit(first, emu, "meshy")
    wait_for(lambda: bool(first.store.get(job.id).tasks and first.store.get(job.id).tasks[0].remote_id))
    first.shutdown()
    whole = (root / "journal.json").read_bytes()
    (root / "journal.json.tmp").write_bytes(whole)
    (root / "journal.json").write_bytes(whole[:40])  # damaged; the crash left a complete temp file
    release(emu, "meshy")
    second = make_runner(root)
    assert second.store.warning and second.resume(job.id, config(emu, "meshy"))
    done = wait(second, job.id)
    second.shutdown()
    settle(matrix, "journal", "meshy", "resume after recovery", emu, done)
