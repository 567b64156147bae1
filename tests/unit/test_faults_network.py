"""Fault matrix, network rows: connection refused and reset, 5xx bursts, 429 (with and without
Retry-After), read timeouts, truncated answers and HTML pages in the API's place, for every provider on
submit, on poll and on download. Real jobs through JobRunner and JobStore against the emulator."""

from __future__ import annotations

import email.utils
import logging
import time
from pathlib import Path

import pytest

from addon.core.models import JobState, TaskStatus
from addon.core.runner import InputFile, JobRunner
from tests.emulator import Emulator
from tests.unit.fault_matrix import (
    ASSET,
    CREATE,
    PATIENT,
    PNG,
    POLL,
    POLLING,
    PROVIDERS,
    SHORT_READS,
    Matrix,
    config,
    created,
    make_runner,
    polled,
    request,
    run,
    settle,
    wait,
)

STAGES = ("submit", "poll", "download")
CASES = [(p, s) for p in PROVIDERS for s in STAGES if not (s == "poll" and p not in POLLING)]


def where(provider: str, stage: str) -> tuple[str, str]:
    if stage == "submit":
        return CREATE[provider]
    if stage == "poll":
        return POLL[provider]
    return "GET", ASSET[provider]


@pytest.mark.parametrize(("provider", "stage"), CASES)
def test_connection_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture, emu: Emulator, matrix: Matrix,
                            provider: str, stage: str) -> None:
    caplog.set_level(logging.INFO, logger="addon.core.http")
    job_runner = make_runner(tmp_path / "store", PATIENT)
    try:
        if stage == "submit":
            emu.refuse_connections(0.15)  # the worker's first request finds nobody listening
        else:
            method, path = where(provider, stage)
            emu.inject_fault(method, path, "down", seconds=0.15)  # this one is reset, the next ones refused
        job = run(job_runner, emu, provider)
        assert "connection refused" in caplog.text  # the client really found nobody listening
        settle(matrix, "refused", provider, stage, emu, job)
    finally:
        job_runner.shutdown()


@pytest.mark.parametrize(("provider", "stage"), [c for c in CASES if c[1] != "submit"])
def test_connection_reset_on_poll_and_download(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str,
                                                stage: str) -> None:
    method, path = where(provider, stage)
    emu.inject_reset(method, path, times=2)
    job = run(runner, emu, provider)
    settle(matrix, "reset", provider, stage, emu, job, injected=2)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_connection_reset_on_submit_is_never_resent_on_its_own(emu: Emulator, runner: JobRunner, matrix: Matrix,
                                                               provider: str) -> None:
    """The create may have reached the provider: the job stops, says what to do, and Retry sends it
    (Meshy first looks in its task list). Here the reset came before the provider made anything."""
    method, path = CREATE[provider]
    emu.inject_reset(method, path)
    job = run(runner, emu, provider)
    assert job.state is JobState.FAILED and job.error_code == "interrupted_create", job.error
    assert "does not send it again" in (job.error or "") and "Retry" in (job.error or "")
    if provider == "meshy":
        assert "task list does not show it" in (job.error or "")
        assert emu.count("GET", r"^/openapi/v1/image-to-3d$") >= 1  # it looked
    assert emu.count(method, path) == 1 and created(emu, provider) == 0
    runner.retry(job.id, config(emu, provider))
    job = wait(runner, job.id)
    settle(matrix, "reset", provider, "submit", emu, job)
    assert emu.count(method, path) == 2


@pytest.mark.parametrize(("provider", "stage"), [c for c in CASES if c[1] != "submit"])
def test_5xx_burst(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str, stage: str) -> None:
    method, path = where(provider, stage)
    if stage == "poll":  # a proxy's HTML 502 page, not the provider's JSON
        emu.inject(method, path, status=502, body="<html><body>502 Bad Gateway</body></html>",
                   headers={"Content-Type": "text/html"}, times=3)
    else:
        emu.inject(method, path, status=503, body={"message": "Service temporarily unavailable"}, times=3)
    job = run(runner, emu, provider)
    settle(matrix, "5xx", provider, stage, emu, job, injected=3)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_5xx_answer_to_a_create(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str) -> None:
    """Issue 11 item 11: a create answered 5xx may still have made the task (no provider document says
    otherwise). Meshy: its task list is read before each send again; image3d.io: sent again, as its
    document says ("500 ... Retry after a few seconds"); the others: not sent again on Marionette's own,
    the job says the task may exist and how to recover it, and Retry sends it."""
    method, path = CREATE[provider]
    bursts = 3 if provider in ("meshy", "image3d") else 1
    emu.inject(method, path, status=503, body={"message": "Service temporarily unavailable"}, times=bursts)
    job = run(runner, emu, provider)
    if provider == "meshy":
        assert emu.count("GET", r"^/openapi/v1/image-to-3d$") >= bursts  # looked before each send again
    if provider not in ("meshy", "image3d"):
        ok = (job.state is JobState.FAILED and "server error (503)" in (job.error or "")
              and "may exist" in (job.error or "") and emu.count(method, path) == 1)
        assert ok, job.error
        assert job.tasks[-1].status is TaskStatus.SUBMITTING  # so Retry looks (where it can) before sending
        runner.retry(job.id, config(emu, provider))
        job = wait(runner, job.id)
    assert emu.count(method, path) == bursts + 1
    settle(matrix, "5xx_create", provider, "submit", emu, job, injected=bursts)


def _rate_body(provider: str) -> dict[str, object]:
    if provider == "claid":
        return {"detail": {"error_code": "2001", "error_type": "general",
                           "error_message": "Too Many Requests. Rate limit exceeded."}}
    return {"message": "Too many requests", "error": "Too many requests"}


@pytest.mark.parametrize(("provider", "stage"), CASES)
def test_429_without_retry_after(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str, stage: str) -> None:
    method, path = where(provider, stage)
    emu.inject(method, path, status=429, body=_rate_body(provider), times=2)
    job = run(runner, emu, provider)
    settle(matrix, "429", provider, stage, emu, job, injected=2)


@pytest.mark.parametrize(("provider", "stage"), [c for c in CASES if c[1] != "download"])
def test_429_with_retry_after(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str, stage: str) -> None:
    method, path = where(provider, stage)
    past = email.utils.format_datetime(email.utils.localtime().replace(year=2001), usegmt=False)
    emu.inject(method, path, status=429, body=_rate_body(provider), headers={"Retry-After": "0"})
    emu.inject(method, path, status=429, body=_rate_body(provider), headers={"Retry-After": past})
    job = run(runner, emu, provider)
    settle(matrix, "429_retry_after", provider, stage, emu, job, injected=2)


def test_retry_after_is_honoured(emu: Emulator, runner: JobRunner, matrix: Matrix) -> None:
    method, path = CREATE["meshy"]
    emu.inject(method, path, status=429, body={"message": "Too many requests"}, headers={"Retry-After": "1"})
    job = run(runner, emu, "meshy")
    posts = [r.time for r in emu.requests if r.method == method and r.path == "/openapi/v1/image-to-3d"]
    assert len(posts) == 2 and posts[1] - posts[0] >= 0.9  # the tests' retry base is 0.01 s: this is the header
    settle(matrix, "429_retry_after", "meshy", "submit", emu, job)


def test_meshy_rate_limit_exceeded_backs_off(emu: Emulator, runner: JobRunner, matrix: Matrix) -> None:
    for method, path in (CREATE["meshy"], POLL["meshy"]):
        emu.inject(method, path, status=429, body={"message": "RateLimitExceeded"}, times=2)
    notices: list[str] = []
    job = runner.submit(request("meshy"), config(emu, "meshy"), [InputFile("hero.png", PNG)])
    while runner.is_running(job.id) or runner.store.get(job.id).state.active:
        if (text := runner.store.get(job.id).notice) and text not in notices:
            notices.append(text)
        time.sleep(0.002)
    job = runner.store.get(job.id)
    assert any("RateLimitExceeded" in n for n in notices), notices
    assert emu.count("POST", r"^/openapi/v1/image-to-3d$") == 3
    settle(matrix, "meshy_rate", "meshy", "submit+poll", emu, job, injected=4)


@pytest.mark.parametrize(("provider", "stage"), [c for c in CASES if c[1] != "submit"])
def test_read_timeout(tmp_path: Path, emu: Emulator, matrix: Matrix, provider: str, stage: str) -> None:
    job_runner = make_runner(tmp_path / "store", SHORT_READS)
    try:
        method, path = where(provider, stage)
        emu.inject_fault(method, path, "delay", seconds=0.6)  # answered after the client gave up
        job = run(job_runner, emu, provider)
        settle(matrix, "read_timeout", provider, stage, emu, job)
    finally:
        job_runner.shutdown()


@pytest.mark.parametrize("provider", POLLING)
def test_truncated_and_html_answers_while_polling(emu: Emulator, runner: JobRunner, matrix: Matrix,
                                                  provider: str) -> None:
    method, path = POLL[provider]
    emu.inject_fault(method, path, "truncate", keep=5)
    job = run(runner, emu, provider)
    settle(matrix, "truncated", provider, "poll", emu, job)
    for other in POLLING:
        polled(emu, other).tasks.clear()
    emu.inject_fault(method, path, "html")
    job = run(runner, emu, provider)
    settle(matrix, "html_page", provider, "poll", emu, job)


def test_a_refused_create_leaves_nothing_to_look_for(emu: Emulator, runner: JobRunner) -> None:
    """A create the provider refused (a 4xx answer) leaves the journal saying nothing exists remotely, so
    a Retry sends it without looking for a task first."""
    emu.inject("POST", CREATE["rodin"][1], status=400, body={"error": "BAD", "message": "boom"}, times=1)
    job = run(runner, emu, "rodin")
    assert job.state is JobState.FAILED and "boom" in (job.error or "")
    assert job.tasks[0].status is TaskStatus.NEW and job.tasks[0].submitted_at is None
    emu.clear_injections()
