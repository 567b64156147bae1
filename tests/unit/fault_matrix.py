"""The fault matrix: what the fault tests inject, and what came of it, counted by the tests themselves.

Every fault test records, per injection, whether the job survived it (ended with its result on disk, or
with a clear message and still retryable where that is the designed answer) and how many paid results
were lost (a result the provider made that is neither in the job's folder nor recoverable by task id,
plus every task paid for twice). `scripts/fault_matrix.py` runs the tests and prints the README table
from `.cache/fault_matrix.json`, which the `matrix` fixture writes when the test session ends.

Also the shared harness of the core-level fault tests: the emulator, fast timings, one standard job per
provider, where each provider's submit, poll and download requests go, and the check that a job survived
its fault. tests/unit/conftest.py makes its fixtures (assets, emu, runner, matrix) those of every unit test.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from addon.core import png
from addon.core.http import ProviderConfig, Timing
from addon.core.models import GenerationRequest, Job, JobState
from addon.core.providers import all_providers
from addon.core.runner import InputFile, JobRunner
from addon.core.store import JobStore
from tests.emulator import ClaythisState, Emulator, Image3DState, MeshyState, RodinState

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / ".cache" / "fault_matrix.json"

# Row id -> the fault or bad input as the README names it. The table keeps this order.
ROWS: dict[str, str] = {
    "refused": "Connection refused (nothing sent: even a create is sent again)",
    "reset": "Connection reset before the answer",
    "create_lost": "Create answer lost after the provider made the task (reset, timeout, cut answer)",
    "create_lost_claid": "Claid scene answer lost after Claid made it (Claid keeps nothing to look up)",
    "5xx": "5xx burst (3 in a row)",
    "5xx_create": "5xx answer to a create (the task may exist: Meshy looks in its list before sending again, "
                  "image3d.io retries as its document says, others stop and say so; Retry sends it)",
    "429": "429 without Retry-After",
    "429_retry_after": "429 with Retry-After (seconds or HTTP date)",
    "meshy_rate": "Meshy RateLimitExceeded (back off)",
    "queue_full": "Queue full: Meshy NoMoreConcurrentTasks, Rodin parallelism, image3d.io busy (wait locally)",
    "read_timeout": "Read timeout (no answer in time)",
    "stall": "Download stalls mid-body (resumed with Range)",
    "truncated": "Truncated body (fewer bytes than Content-Length)",
    "range_off": "Server ignores Range (download starts over)",
    "html_page": "HTML error page instead of the answer or the GLB",
    "corrupt_file": "Corrupt file instead of the GLB/PNG (bad magic, damaged glTF JSON)",
    "corrupt_persistent": "Corrupt file every time (clear failure, Retry fetches it, nothing paid again)",
    "expired_url": "Expired asset link (fresh one from the task's status)",
    "task_failed": "Provider task FAILED (each Meshy task_error type, Rodin/Claythis/image3d failures)",
    "journal": "Journal cut short, left half-renamed by a crash, or nested 100,000 levels deep",
    "double_click": "Double click on Generate",
    "quit_polling": "Blender quits while polling",
    "quit_download": "Blender quits during a download",
    "cancel": "Cancel (queued, creating, polling, downloading)",
    "key_logs": "Key echoed by a provider (logs, job error, notices)",
    "key_hosts": "Key never sent to asset hosts",
    "redirect": "Redirect to another host (API: refused; download: followed without the key)",
    "file_names": "Hostile file names from the server (../, absolute, reserved)",
    "size_limit": "Download over the size limit (with and without Content-Length)",
    "disk": "Disk refuses the writes (full, file-size limit): job stops, Retry resumes with Range",
    "offline": "Online access off: API, asset link or redirect to a non-loopback host",
    "tls": "TLS verification never disabled (every add-on source file scanned)",
    "bad_png": "Corrupt PNG with a valid signature, cut JPEG",
    "bad_file": "Non-image file, 0-byte file",
    "image_16bit": "16-bit PNG, float image (converted to 8-bit PNG)",
    "image_large": "Image over the provider's size limit (downscaled, and said so)",
    "long_prompt": "Prompt over the provider's limit",
    "bad_motion": "Unknown or misspelt Claythis motion names",
    "bad_mesh": "Mesh without faces, non-mesh selection, linked library data",
    "key_files": "Key in any file the add-on writes (journal, logs, .blend, userpref, job folders)",
    "result_refs": "Result file naming files outside its job folder (glTF/GLB image or buffer URI, FBX texture "
                   "path): refused, kept, nothing outside read or packed",
    "bad_key": "Key with a line break, control, space or non-ASCII character: refused where it enters, never quoted",
    "url_confusion": "URL read differently by parsers (backslash, user-info) in a base URL, result link or redirect",
    "answer_bomb": "API answer over 8 MB, or a gzip bomb (8 MB decompressed): poll fails, task kept, memory flat",
    "wrong_shape": "Answer of the wrong shape (wrong-typed field, list for an object, not JSON, task_error as text)",
    "many_blenders": "Many Blender processes on one user folder (submit, poll, cancel across, double click, quit, "
                     "crash)",
    "soak": "Soak: 200 jobs from two Blender processes at once with faults on (429, 5xx, resets, cut and expired "
            "downloads), one quitting",
    "bad_api_input": "Bad scripting input (task id, huge PNG header, nan option, animations as a string, deleted mesh)",
}


@dataclass
class Cell:
    injected: int = 0
    survived: int = 0
    lost: int = 0
    providers: set[str] = field(default_factory=set)
    stages: set[str] = field(default_factory=set)


class Matrix:
    """Counts per row; `record` after the checks that decide the outcome."""

    def __init__(self) -> None:
        self.suite = os.environ.get("MARIONETTE_FAULT_SUITE", "unit")
        self.cells: dict[str, Cell] = {}
        self._lock = threading.Lock()

    def record(self, row: str, provider: str, stage: str, *, injected: int = 1, survived: int | bool = True,
               lost: int = 0) -> None:
        if row not in ROWS:
            raise KeyError(f"unknown fault matrix row {row!r}")
        with self._lock:
            cell = self.cells.setdefault(row, Cell())
            cell.injected += injected
            # True: every injection was survived; an int: that many were.
            cell.survived += (injected if survived else 0) if isinstance(survived, bool) else survived
            cell.lost += lost
            cell.providers.add(provider)
            cell.stages.add(stage)

    def save(self, path: Path = OUTPUT) -> None:
        with self._lock:
            rows = {row: {"injected": c.injected, "survived": c.survived, "lost": c.lost,
                          "providers": sorted(c.providers), "stages": sorted(c.stages)}
                    for row, c in self.cells.items()}
        if not rows:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        suites = data.get("suites") if isinstance(data.get("suites"), dict) else {}
        suites[self.suite] = {"rows": rows, "written": time.strftime("%Y-%m-%d %H:%M:%S")}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"labels": ROWS, "suites": suites}, indent=1), encoding="utf-8")
        os.replace(tmp, path)


MATRIX = Matrix()


@pytest.fixture(scope="session")
def matrix() -> Iterator[Matrix]:
    """The session's fault counts; written to .cache/fault_matrix.json when the session ends."""
    yield MATRIX
    MATRIX.save()


# -- the harness of the core-level fault tests -------------------------------------------------------

KEY = "fault-test-key-0123456789"
PROVIDERS = ("meshy", "rodin", "claythis", "image3d", "claid")
POLLING = ("meshy", "rodin", "claythis", "image3d")  # Claid answers synchronously: nothing to poll
PNG = png.encode_rgba8(4, 4, bytes([200, 80, 40, 255]) * 16)

# Where each provider's requests go: (method, path regex).
CREATE = {"meshy": ("POST", r"^/openapi/v1/image-to-3d$"), "rodin": ("POST", r"^/api/v2/rodin$"),
          "claythis": ("POST", r"^/api/3d/generate$"), "image3d": ("POST", r"^/api/generate$"),
          "claid": ("POST", r"^/v1/scene/create$")}
POLL = {"meshy": ("GET", r"^/openapi/v1/image-to-3d/[^/]+$"), "rodin": ("POST", r"^/api/v2/status$"),
        "claythis": ("GET", r"^/api/3d/generate/[^/]+/status$"), "image3d": ("GET", r"^/api/status/")}
# The main result file (not the preview).
ASSET = {"meshy": r"^/assets/[^/]+/model\.glb$", "rodin": r"^/assets/[^/]+/base_basic_pbr\.glb$",
         "claythis": r"^/assets/[^/]+/character\.glb$", "image3d": r"^/assets/[^/]+/model\.glb$",
         "claid": r"^/assets/claid-[^/]+/[^/]+$"}
RESULT_KEY = {"meshy": "model", "rodin": "model", "claythis": "rigged", "image3d": "model", "claid": "image:1"}

FAST = Timing(connect_timeout=2.0, read_timeout=5.0, poll_interval=0.01, max_poll_interval=0.03,
              retry_base=0.01, retry_max=0.04, max_transient_retries=6)
# Stalls and delays: a read gives up after 0.3 s (the faults last longer).
SHORT_READS = Timing(connect_timeout=2.0, read_timeout=0.3, poll_interval=0.01, max_poll_interval=0.03,
                     retry_base=0.01, retry_max=0.04, max_transient_retries=6)
# Refused connections: enough backoff (about 1 s in all) to outlast a 0.15 s outage.
PATIENT = Timing(connect_timeout=2.0, read_timeout=5.0, poll_interval=0.01, max_poll_interval=0.03,
                 retry_base=0.04, retry_max=0.12, max_transient_retries=10)


def make_glb(tag: str) -> bytes:
    doc = json.dumps({"asset": {"version": "2.0", "generator": tag}, "padding": "x" * 4000}).encode()
    doc += b" " * (-len(doc) % 4)
    return struct.pack("<4sII", b"glTF", 2, 20 + len(doc)) + struct.pack("<I4s", len(doc), b"JSON") + doc


def asset_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in ("model", "rigged", "walking", "running", "animation"):
        out[name] = folder / f"{name}.glb"
        out[name].write_bytes(make_glb(name))
    return out


def config(emu: Emulator, provider: str, key: str = KEY, base: str | None = None) -> ProviderConfig:
    url = base or emu.base_url
    return ProviderConfig(base_url=url + ("/api" if provider == "rodin" and base is None else ""), api_key=key)


def make_runner(root: Path, timing: Timing = FAST) -> JobRunner:
    return JobRunner(JobStore(root), all_providers(), timing)


def request(provider: str, **extra: Any) -> GenerationRequest:
    options: dict[str, Any] = {"number_of_images": 1} if provider == "claid" else {}
    options.update(extra.pop("options", {}))
    return GenerationRequest(provider=provider, kind=extra.pop("kind", "image"), name=f"{provider} hero",
                             options=options, **extra)


def submit(runner: JobRunner, emu: Emulator, provider: str, files: list[bytes] | None = None,
           key: str = KEY, **extra: Any) -> Job:
    req = request(provider, **extra)
    data = [PNG] if files is None and req.kind == "image" else (files or [])
    inputs = [InputFile(f"view{i}.png", d) for i, d in enumerate(data)]
    return runner.submit(req, config(emu, provider, key), inputs)


def wait(runner: JobRunner, job_id: str, timeout: float = 20.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = runner.store.get(job_id)
        if not job.state.active and not runner.is_running(job_id):
            return job
        time.sleep(0.005)
    raise AssertionError(f"job {job_id} did not finish: {runner.store.get(job_id).stage}")


def run(runner: JobRunner, emu: Emulator, provider: str, **extra: Any) -> Job:
    return wait(runner, submit(runner, emu, provider, **extra).id)


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.003)
    raise AssertionError(f"timed out waiting for {what}")


PolledState = MeshyState | RodinState | ClaythisState | Image3DState


def polled(emu: Emulator, provider: str) -> PolledState:
    """The emulator's state of a provider whose tasks are polled (all but Claid)."""
    states: dict[str, PolledState] = {"meshy": emu.meshy, "rodin": emu.rodin, "claythis": emu.claythis,
                                      "image3d": emu.image3d}
    return states[provider]


def hold(emu: Emulator, provider: str, held: bool) -> None:
    """Keep the provider's new tasks queued (held) or let them run at once."""
    if provider in POLLING:
        polled(emu, provider).pending_polls = 10**6 if held else 1


def release(emu: Emulator, provider: str) -> None:
    """Let every task the provider holds finish at its next poll."""
    if provider in POLLING:
        running = 0 if provider == "meshy" else 1
        for task in polled(emu, provider).tasks.values():
            task.pending_polls, task.running_polls = 0, running


def created(emu: Emulator, provider: str) -> int:
    """Tasks (paid requests) the provider made."""
    return len(emu.claid.scenes) if provider == "claid" else len(polled(emu, provider).tasks)


def result_ok(job: Job, provider: str) -> bool:
    """The job succeeded and its result file is in its own folder, complete and recognised."""
    asset = job.asset(RESULT_KEY[provider])
    if job.state is not JobState.SUCCEEDED or asset is None or not asset.path:
        return False
    path = Path(asset.path)
    return path.is_file() and path.parent.name == job.id and not path.name.endswith(".part") and asset.size > 0


def lost(job: Job, provider: str, emu: Emulator, paid_for: int = 1) -> int:
    """Paid results not delivered (when the job did not succeed) plus tasks paid for more than once."""
    made = created(emu, provider)
    twice = max(0, made - paid_for)
    undelivered = 0 if result_ok(job, provider) else min(made, paid_for)
    return twice + undelivered


def settle(matrix: Matrix, row: str, provider: str, stage: str, emu: Emulator, job: Job, injected: int = 1) -> None:
    """Record a fault the job had to survive, then assert it did: its result delivered, every injected
    fault used, nothing paid for lost or paid twice."""
    missing = lost(job, provider, emu)
    ok = result_ok(job, provider) and emu.pending_faults() == 0
    matrix.record(row, provider, stage, injected=injected, survived=ok, lost=missing)
    assert ok, (job.state, job.error, emu.pending_faults())
    assert missing == 0 and created(emu, provider) == 1


@pytest.fixture
def assets(tmp_path: Path) -> dict[str, Path]:
    return asset_files(tmp_path / "assets")


@pytest.fixture
def emu(assets: dict[str, Path]) -> Iterator[Emulator]:
    with Emulator(assets=assets, api_key=KEY) as emulator:
        for provider in POLLING:
            state = polled(emulator, provider)
            state.pending_polls = 1
            state.running_polls = 1
        yield emulator
    assert not emulator.errors, emulator.errors[0]


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[JobRunner]:
    job_runner = make_runner(tmp_path / "store")
    yield job_runner
    job_runner.shutdown()
