"""The journal shared by several Blender processes, at the store's level: two JobStore objects on one
folder stand for two processes (their flock locks are separate open files, so they exclude each other
as two processes' would). The real-process proof is tests/e2e/test_many_blenders.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

from addon.core.models import GenerationRequest, Job, JobState, RemoteTask, TaskStatus
from addon.core.store import JobStore


def _job(job_id: str, fingerprint: str = "") -> Job:
    request = GenerationRequest(provider="meshy", kind="text", prompt="x", name=job_id)
    return Job(id=job_id, provider="meshy", request=request, fingerprint=fingerprint or job_id)


def _on_disk(root: Path) -> dict[str, dict]:
    return {item["id"]: item for item in json.loads((root / "journal.json").read_text())["jobs"]}


def test_two_writers_keep_each_others_jobs(tmp_path: Path) -> None:
    a, b = JobStore(tmp_path), JobStore(tmp_path)
    for index in range(3):
        a.add(_job(f"a{index}"))
        b.add(_job(f"b{index}"))
    assert set(_on_disk(tmp_path)) == {"a0", "a1", "a2", "b0", "b1", "b2"}
    assert "a2" in b  # b took in a's jobs when it wrote its own
    assert a.refresh() == {"b0", "b1", "b2"}  # taken in by a's own writes, and b's last one now
    assert a.refresh() == set()  # nothing new: a stat, no read
    assert {j.id for j in a.all()} == {j.id for j in b.all()} == set(_on_disk(tmp_path))


def test_the_owner_keeps_its_progress_and_a_cancel_from_elsewhere_comes_in(tmp_path: Path) -> None:
    owner, other = JobStore(tmp_path), JobStore(tmp_path)
    owner.add(_job("j"))
    other.refresh()
    other.update("j", lambda j: setattr(j, "cancel_requested", True))  # the other window's Cancel
    time.sleep(0.01)

    def progress(job: Job) -> None:  # the owner's worker, with its stale view of the job
        job.tasks.append(RemoteTask(key="image", label="Model", remote_id="task-1", status=TaskStatus.SUBMITTED))
        job.stage = "Model: 10%"

    owner.update("j", progress)
    stored = _on_disk(tmp_path)["j"]
    assert stored["cancel_requested"] is True  # the other window's field
    assert stored["tasks"][0]["remote_id"] == "task-1" and stored["stage"] == "Model: 10%"  # the owner's
    # The cancel came in with the owner's own write: refresh still reports the job, so the owner's runner
    # stops its worker (it did not before, and the job ran to its end).
    assert "j" in owner.refresh() and owner.get("j").cancel_requested
    other.update("j", lambda j: setattr(j, "notice", "seen"))  # a later write of the other window...
    stored = _on_disk(tmp_path)["j"]
    assert stored["tasks"][0]["remote_id"] == "task-1"  # ...never drops the owner's paid task


def test_a_removed_job_stays_removed(tmp_path: Path) -> None:
    a, b = JobStore(tmp_path), JobStore(tmp_path)
    a.add(_job("done"))
    a.update("done", lambda j: setattr(j, "state", JobState.SUCCEEDED))
    b.refresh()
    b.remove("done")
    a.add(_job("next"))  # a still had "done" in memory
    assert set(_on_disk(tmp_path)) == {"next"}
    assert "done" not in a


def test_one_lease_per_job(tmp_path: Path) -> None:
    a, b = JobStore(tmp_path), JobStore(tmp_path)
    a.add(_job("j"))
    lease = a.lease("j")
    assert lease is not None and b.lease("j") is None
    lease.release()
    taken = b.lease("j")
    assert taken is not None and a.lease("j") is None
    taken.release()


def test_the_double_click_guard_sees_the_other_window(tmp_path: Path) -> None:
    a, b = JobStore(tmp_path), JobStore(tmp_path)
    assert a.add(_job("first", fingerprint="same")) is None
    found = b.add(_job("second", fingerprint="same"), duplicate_of=lambda j: j.fingerprint == "same")
    assert found is not None and found.id == "first"
    assert set(_on_disk(tmp_path)) == {"first"}
