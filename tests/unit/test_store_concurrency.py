"""The journal under many writers: the disk write happens outside the jobs lock, so these prove that an
older snapshot never overwrites a newer one, that every change is on disk once `update` returns, and that
a change that changes nothing is not written again."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from addon.core.models import GenerationRequest, Job, JobState
from addon.core.store import JobStore


def _job(job_id: str, created: float = 0.0) -> Job:
    job = Job(id=job_id, provider="meshy", request=GenerationRequest(provider="meshy", kind="image", name=job_id))
    if created:
        job.created_at = created
    return job


def _on_disk(root: Path) -> dict[str, dict[str, object]]:
    return {item["id"]: item for item in json.loads((root / "journal.json").read_text())["jobs"]}


def test_each_update_is_on_disk_when_it_returns_whatever_other_threads_do(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    workers, steps = 8, 40
    for index in range(workers):
        store.add(_job(f"job{index}"))
    failures: list[str] = []
    start = threading.Barrier(workers)

    def work(index: int) -> None:
        start.wait()
        for step in range(1, steps + 1):
            def advance(job: Job, step: int = step) -> None:
                job.progress = step / steps

            store.update(f"job{index}", advance)
            seen = _on_disk(tmp_path)[f"job{index}"]["progress"]
            if seen != step / steps:  # only this thread changes this job: the file must show this step
                failures.append(f"job{index}: wrote {step / steps}, the file says {seen}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:5]
    final = JobStore(tmp_path)
    assert all(final.get(f"job{i}").progress == 1.0 for i in range(workers))
    assert not list(tmp_path.glob("*.tmp"))


def test_a_change_that_changes_nothing_is_not_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = JobStore(tmp_path)
    store.add(_job("a"))
    store.update("a", lambda j: setattr(j, "progress", 0.5))
    stamp = store.get("a").updated_at
    renames: list[str] = []
    real_replace = os.replace
    def counting_replace(src: str | Path, dst: str | Path) -> None:
        renames.append(str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", counting_replace)
    store.update("a", lambda j: setattr(j, "progress", 0.5))  # a poll that saw the same progress
    store.update("a", lambda j: None)  # a change that changes nothing at all
    assert renames == [] and store.get("a").updated_at == stamp
    store.update("a", lambda j: setattr(j, "state", JobState.RUNNING))
    assert len(renames) == 1 and store.get("a").updated_at >= stamp
    assert _on_disk(tmp_path)["a"]["state"] == "RUNNING"


def test_peek_is_the_stored_job_and_newest_copies_only_what_is_shown(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    for index in range(30):
        store.add(_job(f"job{index:02d}", created=1000.0 + index))
    assert store.peek("missing") is None
    peeked = store.peek("job03")
    assert peeked is not None and peeked is store.peek("job03")  # no copy
    store.update("job03", lambda j: setattr(j, "stage", "Polling"))
    assert peeked.stage == "Polling"
    shown, total = store.newest(12)
    assert total == 30 and [j.id for j in shown] == [f"job{i:02d}" for i in range(29, 17, -1)]
    shown[0].stage = "changed on the copy"
    assert store.get("job29").stage != "changed on the copy"
