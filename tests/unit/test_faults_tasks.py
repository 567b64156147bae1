"""Fault matrix, provider failure rows: a task that ends FAILED, with each of Meshy's documented
task_error types and codes, and the failures of Rodin, Claythis and image3d.io. The job ends with the
provider's words and code and what to do; nothing is downloaded or importable; failed tasks are refunded
by the providers; Retry makes a new task and reuses the ones that finished (never paying for them again)."""

from __future__ import annotations

import pytest

from addon.core.models import JobState
from addon.core.runner import JobRunner
from tests.emulator import Emulator
from tests.unit.fault_matrix import Matrix, config, result_ok, run, wait

# Meshy's documented task_error types, each with one of its documented codes.
MESHY_ERRORS = [
    ("invalid_input", "image_too_complex", "Change the input"),
    ("invalid_input", "moderation_blocked", "Change the input"),
    ("invalid_input", "model_missing_uv", "Change the input"),
    ("invalid_input", "model_insufficient_uv", "Change the input"),
    ("timeout", "timeout", "usually temporary"),
    ("service_unavailable", None, "Retry later"),
    ("server_error", "format_conversion_failed", "press Retry"),
]


@pytest.mark.parametrize(("error_type", "code", "hint"), MESHY_ERRORS)
def test_meshy_task_failed(emu: Emulator, runner: JobRunner, matrix: Matrix, error_type: str, code: str | None,
                           hint: str) -> None:
    emu.meshy.fail_next("image-to-3d", type=error_type, code=code, message="Meshy could not make this.")
    balance = emu.meshy.balance
    job = run(runner, emu, "meshy")
    failed_well = (job.state is JobState.FAILED and "Meshy could not make this" in (job.error or "")
                   and hint in (job.error or "") and job.error_code == (code or error_type)
                   and not any(a.path for a in job.assets) and not job.ready_to_import)
    refunded = emu.meshy.balance == balance
    runner.retry(job.id, config(emu, "meshy"))
    job = wait(runner, job.id)
    ok = failed_well and refunded and result_ok(job, "meshy")
    matrix.record("task_failed", "meshy", f"poll ({error_type})", survived=ok, lost=0 if refunded else 1)
    assert ok, job.error
    assert len(emu.meshy.tasks) == 2 and emu.meshy.balance == balance - 30  # one paid result, one refund


def test_meshy_rig_failure_retry_reuses_the_model(emu: Emulator, runner: JobRunner, matrix: Matrix) -> None:
    emu.meshy.fail_next("rig", type="invalid_input", code="invalid_input", message="No humanoid found.")
    job = run(runner, emu, "meshy", rig=True)
    assert job.state is JobState.FAILED and "No humanoid found" in (job.error or "")
    runner.retry(job.id, config(emu, "meshy"))
    job = wait(runner, job.id)
    ok = job.state is JobState.SUCCEEDED and emu.meshy.created["image-to-3d"] == 1 and emu.meshy.created["rig"] == 2
    matrix.record("task_failed", "meshy", "poll (rig)", survived=ok, lost=emu.meshy.created["image-to-3d"] - 1)
    assert ok, job.error


@pytest.mark.parametrize("provider", ["rodin", "claythis", "image3d"])
def test_other_providers_task_failed(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str) -> None:
    if provider == "rodin":
        emu.rodin.fail_next()
    elif provider == "claythis":
        emu.claythis.fail_next("No humanoid found in the picture")
    else:
        emu.image3d.fail_next("The mesh could not be generated")
    job = run(runner, emu, provider)
    failed_well = (job.state is JobState.FAILED and bool(job.error) and bool(job.error_code)
                   and not any(a.path for a in job.assets))
    runner.retry(job.id, config(emu, provider))
    job = wait(runner, job.id)
    ok = failed_well and result_ok(job, provider)
    matrix.record("task_failed", provider, "poll", survived=ok)
    assert ok, job.error
