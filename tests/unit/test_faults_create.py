"""Fault matrix, create rows: a create whose answer is lost after the provider made the task (reset,
read timeout or a cut answer), and a full queue (Meshy NoMoreConcurrentTasks, Rodin's parallelism
limit, image3d.io's concurrency limit). Nothing may be paid twice and nothing paid may be lost."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
import requests

from addon.core.models import JobState, TaskStatus
from addon.core.runner import JobRunner
from tests.emulator import Emulator
from tests.unit.fault_matrix import (
    CREATE,
    FAST,
    KEY,
    PNG,
    SHORT_READS,
    Matrix,
    config,
    created,
    hold,
    lost,
    make_runner,
    result_ok,
    run,
    settle,
    submit,
    wait,
    wait_for,
)

MESHY_CREATE = CREATE["meshy"][1]


@pytest.mark.parametrize("fault", ["reset_after", "delay", "truncate"])
def test_meshy_adopts_the_task_its_lost_create_made(tmp_path: Path, emu: Emulator, matrix: Matrix,
                                                    fault: str) -> None:
    job_runner = make_runner(tmp_path / "store", SHORT_READS if fault == "delay" else FAST)
    try:
        emu.inject_fault("POST", MESHY_CREATE, fault, seconds=0.6, keep=4)
        job = run(job_runner, emu, "meshy")
        settle(matrix, "create_lost", "meshy", "submit", emu, job)
        wait_for(lambda: emu.count("POST", MESHY_CREATE) == 1, what="the delayed answer to be logged")
        assert emu.count("GET", r"^/openapi/v1/image-to-3d$") >= 1  # found through the task list
        assert job.tasks[0].remote_id == next(iter(emu.meshy.tasks))
    finally:
        job_runner.shutdown()


def test_meshy_text_refine_lost_answer_is_found_by_prompt(emu: Emulator, runner: JobRunner, matrix: Matrix) -> None:
    emu.inject_fault("POST", r"^/openapi/v2/text-to-3d$", "reset_after", times=2)  # preview and refine
    job = run(runner, emu, "meshy", kind="text", prompt="a knight in silver armour")
    ok = job.state is JobState.SUCCEEDED and bool(job.asset("model") and job.asset("model").path)  # type: ignore[union-attr]
    matrix.record("create_lost", "meshy", "submit", injected=2, survived=2 if ok else 0,
                  lost=0 if ok and len(emu.meshy.tasks) == 2 else 1)
    assert ok, job.error
    assert [t.key for t in job.tasks] == ["preview", "refine"] and len(emu.meshy.tasks) == 2
    assert emu.count("POST", r"^/openapi/v2/text-to-3d$") == 2


def test_meshy_never_adopts_a_task_another_job_knows_or_an_ambiguous_one(emu: Emulator, runner: JobRunner) -> None:
    first = run(runner, emu, "meshy")
    assert first.state is JobState.SUCCEEDED
    # Another client makes a task in the same second: two unknown candidates -> do not guess.
    body = {"image_url": "data:image/png;base64," + base64.b64encode(PNG).decode()}
    requests.post(emu.base_url + "/openapi/v1/image-to-3d", json=body, headers={"Authorization": f"Bearer {KEY}"},
                  timeout=5)
    emu.inject_fault("POST", MESHY_CREATE, "reset_after")
    job = run(runner, emu, "meshy")
    assert job.state is JobState.FAILED and job.error_code == "interrupted_create", job.error
    assert job.tasks[0].status is TaskStatus.SUBMITTING and job.tasks[0].remote_id is None
    assert first.tasks[0].remote_id not in {t.remote_id for t in job.tasks}
    assert created(emu, "meshy") == 3


def test_meshy_rig_has_no_list_and_is_recovered_by_its_id(emu: Emulator, runner: JobRunner, matrix: Matrix) -> None:
    emu.inject_fault("POST", r"^/openapi/v1/rigging$", "reset_after")
    job = run(runner, emu, "meshy", rig=True)
    assert job.state is JobState.FAILED and "Recover by Task ID" in (job.error or ""), job.error
    assert emu.count("POST", r"^/openapi/v1/rigging$") == 1
    [rig_id] = [t.id for t in emu.meshy.tasks.values() if t.kind == "rig"]
    recovered = wait(runner, runner.recover("meshy", rig_id, "Recovered", config(emu, "meshy")).id)
    ok = recovered.state is JobState.SUCCEEDED and bool(recovered.asset("rigged") and recovered.asset("rigged").path)  # type: ignore[union-attr]
    matrix.record("create_lost", "meshy", "submit (rig)", survived=ok, lost=0 if ok else 1)
    assert ok, recovered.error
    assert emu.meshy.created["rig"] == 1


@pytest.mark.parametrize("provider", ["rodin", "claythis", "image3d"])
def test_lost_create_answer_is_stopped_and_recovered_by_task_id(emu: Emulator, runner: JobRunner, matrix: Matrix,
                                                                provider: str) -> None:
    method, path = CREATE[provider]
    emu.inject_fault(method, path, "reset_after")
    job = run(runner, emu, provider)
    assert job.state is JobState.FAILED and job.error_code == "interrupted_create", job.error
    assert "does not send it again" in (job.error or "") and "Recover by Task ID" in (job.error or "")
    assert emu.count(method, path) == 1 and created(emu, provider) == 1
    task_id = {"rodin": lambda: next(iter(emu.rodin.tasks)), "claythis": lambda: next(iter(emu.claythis.tasks)),
               "image3d": lambda: next(iter(emu.image3d.tasks))}[provider]()
    recovered = wait(runner, runner.recover(provider, task_id, "", config(emu, provider)).id)
    settle(matrix, "create_lost", provider, "submit", emu, recovered)
    assert emu.count(method, path) == 1


def test_claid_lost_scene_answer_is_reported_not_resent(emu: Emulator, runner: JobRunner, matrix: Matrix) -> None:
    """Claid makes scenes synchronously and keeps no task to look up: the job stops and says so. The
    images Claid made for the lost answer cannot be fetched by anyone: counted as lost, honestly."""
    method, path = CREATE["claid"]
    emu.inject_fault(method, path, "reset_after")
    job = run(runner, emu, "claid")
    assert job.state is JobState.FAILED and job.error_code == "interrupted_create", job.error
    assert "Check your Claid account" in (job.error or "")
    assert emu.count(method, path) == 1 and created(emu, "claid") == 1
    matrix.record("create_lost_claid", "claid", "submit", survived=True, lost=lost(job, "claid", emu))
    runner.retry(job.id, config(emu, "claid"))  # the artist decides to pay again
    job = wait(runner, job.id)
    assert result_ok(job, "claid") and created(emu, "claid") == 2


# -- a full queue: wait locally, submit when a slot frees ---------------------------------------------


def _free(emu: Emulator, provider: str, task_id: str) -> None:
    if provider == "meshy":
        task = emu.meshy.tasks[task_id]
        task.pending_polls = task.running_polls = 0
    elif provider == "rodin":
        emu.rodin.tasks[task_id].polls = 10**6
    else:
        emu.image3d.tasks[task_id].polls = 10**6


@pytest.mark.parametrize("provider", ["meshy", "rodin", "image3d"])
def test_full_queue_waits_locally_and_submits_when_a_slot_frees(emu: Emulator, runner: JobRunner,
                                                                matrix: Matrix, provider: str) -> None:
    {"meshy": lambda: setattr(emu.meshy, "queue_limit", 1), "rodin": lambda: setattr(emu.rodin, "parallel_limit", 1),
     "image3d": lambda: setattr(emu.image3d, "concurrency_limit", 1)}[provider]()
    hold(emu, provider, True)
    first = submit(runner, emu, provider)
    wait_for(lambda: bool(runner.store.get(first.id).tasks and runner.store.get(first.id).tasks[0].remote_id),
             what="the first task")
    hold(emu, provider, False)
    other = {"meshy": {"ai_model": "meshy-5"}, "rodin": {"quality": "low"}, "image3d": {"quality": "fast"}}
    second = submit(runner, emu, provider, options=other[provider])  # not a double click: another request
    seen: list[tuple[JobState, str | None]] = []

    def queued() -> bool:
        job = runner.store.get(second.id)
        seen.append((job.state, job.notice))
        return job.state is JobState.PENDING and "free slot" in (job.notice or "")

    wait_for(queued, what="the second job to wait for a slot")
    refusals = emu.count(*CREATE[provider])
    time.sleep(0.1)
    assert created(emu, provider) == 1 and emu.count(*CREATE[provider]) > refusals - 1  # still asking, not failing
    assert runner.store.get(second.id).state is JobState.PENDING
    _free(emu, provider, runner.store.get(first.id).tasks[0].remote_id or "")
    done = [wait(runner, first.id), wait(runner, second.id)]
    ok = all(result_ok(job, provider) for job in done)
    missing = sum(0 if result_ok(job, provider) else 1 for job in done) + max(0, created(emu, provider) - 2)
    matrix.record("queue_full", provider, "submit", survived=ok, lost=missing)
    assert ok, [job.error for job in done]
    assert created(emu, provider) == 2 and emu.count(*CREATE[provider]) >= 3
    assert all(job.state is not JobState.FAILED for job in done)
