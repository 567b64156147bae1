"""Fault matrix, disk row: the disk refuses a download's writes (full, or a file-size limit). The job stops
with a message that says where to make room, the part already downloaded is kept, and Retry resumes it
with HTTP Range from the same paid task. The refusal is the kernel's own: RLIMIT_FSIZE makes every write
past the limit fail with EFBIG, as a full disk fails with ENOSPC."""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from addon.core.models import JobState
from addon.core.runner import JobRunner
from tests.emulator import Emulator
from tests.unit.fault_matrix import POLLING, Matrix, config, run, settle, wait

LIMIT = 1 << 20  # writes past 1 MB fail; the journal stays far below it
BIG = 3 << 20


def _big_glb(size: int) -> bytes:
    doc = json.dumps({"asset": {"version": "2.0", "generator": "disk test"}, "padding": ""}).encode()
    doc = doc[:-2] + b"x" * (size - 20 - len(doc)) + b'"}'  # the padding string grown to the size
    doc += b" " * (-len(doc) % 4)
    return struct.pack("<4sII", b"glTF", 2, 20 + len(doc)) + struct.pack("<I4s", len(doc), b"JSON") + doc


@pytest.fixture
def big_results(assets: dict[str, Path]) -> None:
    for name in ("model", "rigged"):
        assets[name].write_bytes(_big_glb(BIG))


@contextlib.contextmanager
def small_disk() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG for the writer, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.parametrize("provider", POLLING)
def test_a_disk_that_refuses_writes_stops_the_job_and_retry_resumes(emu: Emulator, runner: JobRunner,
                                                                   matrix: Matrix, provider: str,
                                                                   big_results: None) -> None:
    with small_disk():
        job = run(runner, emu, provider)
    error = job.error or ""
    parts = list(runner.store.job_dir(job.id).glob("*.part"))
    stopped = (job.state is JobState.FAILED and "could not be written to" in error and "Make room" in error
               and "not paid again" in error and len(parts) == 1 and parts[0].stat().st_size == LIMIT)
    assert stopped, (job.state, error, [(p.name, p.stat().st_size) for p in parts])
    emu.clear_log()
    runner.retry(job.id, config(emu, provider))
    job = wait(runner, job.id)
    ranges = [r.range for r in emu.requests if r.method == "GET" and r.path.startswith("/assets/")]
    assert f"bytes={LIMIT}-" in ranges, ranges  # resumed where the disk stopped it, not from the start
    settle(matrix, "disk", provider, "download", emu, job)
