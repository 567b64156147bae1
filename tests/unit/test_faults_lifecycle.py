"""Fault matrix, lifecycle rows: Blender quitting while a job polls and while it downloads (the next
start resumes it, the download continues with Range), cancel at every stage (polling stops, Meshy
tasks are deleted, nothing is left to import), and a double click (one job)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from addon.core.models import JobState
from addon.core.runner import JobRunner
from tests.emulator import Emulator
from tests.unit.fault_matrix import (
    ASSET,
    CREATE,
    KEY,
    POLL,
    POLLING,
    PROVIDERS,
    RESULT_KEY,
    Matrix,
    config,
    created,
    hold,
    make_runner,
    release,
    result_ok,
    settle,
    submit,
    wait,
    wait_for,
)


def _result_part(job_dir: Path, provider: str) -> Path | None:
    """The result file's partial download with some bytes in it (not the preview's)."""
    stem = RESULT_KEY[provider].replace(":", "_")
    return next((p for p in job_dir.glob(f"{stem}.*.part") if p.stat().st_size > 0), None)


def _polls(emu: Emulator, provider: str) -> int:
    method, path = POLL[provider]
    return emu.count(method, path)


# -- Blender quits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_quit_while_polling_resumes_without_sending_again(tmp_path: Path, emu: Emulator, matrix: Matrix,
                                                          provider: str) -> None:
    root = tmp_path / "user"
    first = make_runner(root)
    if provider == "claid":  # nothing to poll: quit while the scene request waits out a rate limit
        emu.inject("POST", CREATE["claid"][1], status=429, times=10**6,
                   body={"detail": {"error_code": "2001", "error_type": "general", "error_message": "Slow down"}})
    hold(emu, provider, True)
    job = submit(first, emu, provider)
    if provider == "claid":
        wait_for(lambda: emu.count(*CREATE["claid"]) >= 2, what="the scene request to be refused")
    else:
        wait_for(lambda: _polls(emu, provider) >= 2, what="polling")
    first.shutdown()  # Blender quits: workers stop, the journal stays as it is
    assert not first.is_running(job.id)
    emu.clear_injections()
    hold(emu, provider, False)
    release(emu, provider)
    second = make_runner(root)  # the next start reads the journal
    assert second.store.get(job.id).state.active
    assert second.resume(job.id, config(emu, provider))
    done = wait(second, job.id)
    second.shutdown()
    settle(matrix, "quit_polling", provider, "poll" if provider != "claid" else "submit", emu, done)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_quit_during_a_download_continues_with_range(tmp_path: Path, emu: Emulator, matrix: Matrix,
                                                     provider: str) -> None:
    root = tmp_path / "user"
    first = make_runner(root)
    emu.inject_fault("GET", ASSET[provider], "stall", keep=0.5, seconds=5.0)  # far longer than the test
    job = submit(first, emu, provider)
    job_dir = first.store.job_dir(job.id)
    wait_for(lambda: _result_part(job_dir, provider) is not None, what="half a download")
    began = time.monotonic()
    first.shutdown()
    assert time.monotonic() - began < 1.5 and not first.is_running(job.id)  # the stalled read was broken off
    part = _result_part(job_dir, provider)
    assert part is not None
    kept = part.stat().st_size
    second = make_runner(root)
    assert second.store.get(job.id).state is JobState.RUNNING  # the old worker wrote nothing on its way out
    assert second.resume(job.id, config(emu, provider))
    done = wait(second, job.id)
    second.shutdown()
    resumed = [r.range for r in emu.requests if r.method == "GET" and r.range]
    settle(matrix, "quit_download", provider, "download", emu, done)
    assert resumed == [f"bytes={kept}-"]


# -- cancel at every stage ----------------------------------------------------------------------------


def _settled_quietly(emu: Emulator, runner: JobRunner, job_id: str) -> bool:
    """The job is cancelled, its worker gone, nothing importable, and no request follows."""
    job = wait(runner, job_id)
    before = len(emu.requests)
    time.sleep(0.08)
    asset = job.asset("model") or job.asset("rigged") or job.asset("image:1")
    return (job.state is JobState.CANCELED and not job.ready_to_import and not (asset and asset.path)
            and len(emu.requests) == before)


def test_cancel_while_queued_locally(emu: Emulator, runner: JobRunner, matrix: Matrix) -> None:
    emu.meshy.queue_limit = 0  # every create is refused with NoMoreConcurrentTasks
    job = submit(runner, emu, "meshy")
    wait_for(lambda: runner.store.get(job.id).state is JobState.PENDING and emu.count(*CREATE["meshy"]) >= 2,
             what="the job to wait for a slot")
    runner.cancel(job.id, config(emu, "meshy"))
    ok = _settled_quietly(emu, runner, job.id) and created(emu, "meshy") == 0
    matrix.record("cancel", "meshy", "queued", survived=ok)
    assert ok


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cancel_while_the_create_is_on_its_way(emu: Emulator, runner: JobRunner, matrix: Matrix,
                                               provider: str) -> None:
    method, path = CREATE[provider]
    emu.inject_fault(method, path, "delay", seconds=0.3)
    job = submit(runner, emu, provider)
    wait_for(lambda: any(t.status.value == "submitting" for t in runner.store.get(job.id).tasks)
             and (provider != "claid" or len(runner.store.get(job.id).tasks) == 2), what="the create to leave")
    runner.cancel(job.id, config(emu, provider))
    ok = _settled_quietly(emu, runner, job.id)
    final = runner.store.get(job.id)
    if provider == "meshy":  # the task that the create made (still queued) is deleted on Meshy
        [task] = emu.meshy.deleted
        ok = ok and not emu.meshy.tasks and emu.count("DELETE") == 1
        assert final.tasks[0].remote_id == task.id  # recorded before the cancel took effect
        assert final.tasks[0].status.value == "canceled"  # so Retry creates a new one, never polls it
    matrix.record("cancel", provider, "creating", survived=ok)
    assert ok, (final.state, final.error)


@pytest.mark.parametrize("provider", POLLING)
def test_cancel_while_polling(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str) -> None:
    hold(emu, provider, True)
    job = submit(runner, emu, provider)
    wait_for(lambda: _polls(emu, provider) >= 2, what="polling")
    runner.cancel(job.id, config(emu, provider))
    ok = _settled_quietly(emu, runner, job.id)
    if provider == "meshy":
        ok = ok and emu.count("DELETE", r"^/openapi/v1/image-to-3d/") == 1
        ok = ok and not emu.meshy.tasks and len(emu.meshy.deleted) == 1
    matrix.record("cancel", provider, "polling", survived=ok)
    assert ok


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cancel_during_a_stalled_download(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str) -> None:
    emu.inject_fault("GET", ASSET[provider], "stall", keep=0.5, seconds=5.0)
    job = submit(runner, emu, provider)
    job_dir = runner.store.job_dir(job.id)
    wait_for(lambda: _result_part(job_dir, provider) is not None, what="half a download")
    began = time.monotonic()
    runner.cancel(job.id, config(emu, provider))
    wait(runner, job.id)
    quick = time.monotonic() - began < 1.5  # the blocked read was broken off, not waited out
    ok = _settled_quietly(emu, runner, job.id) and quick
    matrix.record("cancel", provider, "downloading", survived=ok)
    assert ok
    assert runner.store.get(job.id).asset(RESULT_KEY[provider]).path is None  # type: ignore[union-attr]


# -- double click -------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_double_click_makes_one_job(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str) -> None:
    one = submit(runner, emu, provider)
    two = submit(runner, emu, provider)
    done = wait(runner, one.id)
    ok = one.id == two.id and len(runner.store.all()) == 1 and result_ok(done, provider)
    matrix.record("double_click", provider, "submit", survived=ok, lost=max(0, created(emu, provider) - 1))
    assert ok and created(emu, provider) == 1
    assert KEY not in runner.store.path.read_text()
