"""Fault matrix, download rows: a stalled body, a truncated body with a lying Content-Length, Range on
and off, an HTML page or a corrupt file where the GLB/PNG should be (never kept, fetched again, a clear
failure when it never comes right), and expired links refreshed from each provider's task status."""

from __future__ import annotations

from pathlib import Path

import pytest

from addon.core.fetcher import CORRUPT_DOWNLOAD_ATTEMPTS
from addon.core.models import Job, JobState
from addon.core.runner import JobRunner
from tests.emulator import Emulator
from tests.unit.fault_matrix import (
    ASSET,
    POLLING,
    PROVIDERS,
    RESULT_KEY,
    SHORT_READS,
    Matrix,
    config,
    make_runner,
    polled,
    run,
    settle,
    wait,
)


def asset_gets(emu: Emulator, provider: str) -> list[str | None]:
    """The Range header of every request for the provider's result file, in order."""
    import re

    pattern = re.compile(ASSET[provider])
    return [r.range for r in emu.requests if r.method == "GET" and pattern.search(r.path)]


def settle_download(matrix: Matrix, row: str, provider: str, emu: Emulator, job: Job, injected: int = 1) -> None:
    """``settle`` for a download fault, and no partial file left next to the result."""
    settle(matrix, row, provider, "download", emu, job, injected)
    assert not list(Path(job.asset(RESULT_KEY[provider]).path).parent.glob("*.part"))  # type: ignore[union-attr, arg-type]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stalled_download_resumes_with_range(tmp_path: Path, emu: Emulator, matrix: Matrix, provider: str) -> None:
    job_runner = make_runner(tmp_path / "store", SHORT_READS)
    try:
        emu.inject_fault("GET", ASSET[provider], "stall", keep=0.5, seconds=0.7)
        job = run(job_runner, emu, provider)
        gets = asset_gets(emu, provider)
        assert len(gets) == 2 and gets[0] is None and gets[1] and gets[1].startswith("bytes="), gets
        assert gets[1] != "bytes=0-"  # it continued where the stall left it
        settle_download(matrix, "stall", provider, emu, job)
    finally:
        job_runner.shutdown()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_truncated_body_resumes_with_range(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str) -> None:
    emu.inject_fault("GET", ASSET[provider], "truncate", keep=0.6)
    job = run(runner, emu, provider)
    gets = asset_gets(emu, provider)
    assert len(gets) == 2 and gets[1] and gets[1] != "bytes=0-", gets
    settle_download(matrix, "truncated", provider, emu, job)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_server_without_range_starts_over(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str) -> None:
    emu.inject_fault("GET", ASSET[provider], "truncate", keep=0.5)
    emu.inject_fault("GET", ASSET[provider], "ignore_range")  # the resume gets the whole file (200)
    job = run(runner, emu, provider)
    assert len(asset_gets(emu, provider)) == 2
    settle_download(matrix, "range_off", provider, emu, job, injected=2)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_html_page_instead_of_the_file(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str) -> None:
    emu.inject_fault("GET", ASSET[provider], "html")
    job = run(runner, emu, provider)
    assert len(asset_gets(emu, provider)) == 2
    settle_download(matrix, "html_page", provider, emu, job)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", ["corrupt", "garble"])
def test_corrupt_file_is_fetched_again(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str,
                                       kind: str) -> None:
    emu.inject_fault("GET", ASSET[provider], kind)
    job = run(runner, emu, provider)
    settle_download(matrix, "corrupt_file", provider, emu, job)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_corrupt_every_time_fails_clearly_and_retry_reuses_the_task(emu: Emulator, runner: JobRunner,
                                                                    matrix: Matrix, provider: str) -> None:
    emu.inject_fault("GET", ASSET[provider], "garble" if provider != "claid" else "corrupt",
                     times=CORRUPT_DOWNLOAD_ATTEMPTS)
    job = run(runner, emu, provider)
    assert job.state is JobState.FAILED and f"{CORRUPT_DOWNLOAD_ATTEMPTS} attempts" in (job.error or ""), job.error
    assert "nothing was imported" in (job.error or "") and "Retry" in (job.error or "")
    result = job.asset(RESULT_KEY[provider])
    assert result is not None and not result.path  # nothing that could be imported
    job_dir = runner.store.job_dir(job.id)
    assert not [p for p in job_dir.iterdir() if p.suffix in (".glb", ".fbx", ".part")]
    runner.retry(job.id, config(emu, provider))
    job = wait(runner, job.id)
    settle_download(matrix, "corrupt_persistent", provider, emu, job, injected=CORRUPT_DOWNLOAD_ATTEMPTS)


@pytest.mark.parametrize("provider", POLLING)
def test_expired_link_is_refreshed_from_the_task(emu: Emulator, runner: JobRunner, matrix: Matrix,
                                                 provider: str) -> None:
    polled(emu, provider).expired_links = 1  # on Rodin the same counter as expired_lists (one stale list)
    job = run(runner, emu, provider)
    gets = asset_gets(emu, provider)
    assert len(gets) == 2, gets
    assert [r.status for r in emu.requests if r.method == "GET" and r.path.startswith("/assets/")][-2:] != [403, 403]
    settle_download(matrix, "expired_url", provider, emu, job)
    asset = job.asset(RESULT_KEY[provider])
    assert asset is not None and "Expires=" in asset.url  # the fresh link is remembered in the journal


def test_expired_link_twice_in_a_row(emu: Emulator, runner: JobRunner, matrix: Matrix) -> None:
    emu.meshy.expired_links = 2  # the first poll's link and the first refresh are both stale
    job = run(runner, emu, "meshy")
    settle_download(matrix, "expired_url", "meshy", emu, job, injected=2)


def test_claid_links_cannot_be_renewed_and_say_so(emu: Emulator, runner: JobRunner) -> None:
    """Claid has no task to ask for a new link: an expired one fails clearly (Marionette downloads at
    once, Claid keeps them a day)."""
    emu.claid.expired_links = 1
    job = run(runner, emu, "claid")
    assert job.state is JobState.FAILED and "cannot hand out a new link" in (job.error or ""), job.error
