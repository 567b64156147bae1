"""Many Blenders, one journal: two and three real Blender (bpy) processes on one Marionette user folder,
submitting, polling, cancelling each other's jobs and quitting (gracefully, or killed mid-request) at once,
against one emulator. Each process is tests/support/many_blenders.py with the built extension installed.

Proven from the shared journal.json and what the emulator received: every job submitted is in the
journal once, with its one paid task; no task was created twice (an identical submit from several windows
at once is one job); every job ended (the jobs of a Blender that quit were taken over by another); a job
cancelled in another window was cancelled (DELETE on Meshy); no result was downloaded twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bpy
import pytest

from tests.emulator import Emulator
from tests.support.served import emulator_assets

ROOT = Path(__file__).resolve().parents[2]
CREATE = r"^/openapi/v1/image-to-3d$"
ASSETS = r"^/assets/.+/model\.glb$"
STARTUP_TIMEOUT = 240


@pytest.fixture
def emu(assets: dict[str, Path]) -> Iterator[Emulator]:
    with Emulator(assets=emulator_assets(assets)) as emulator:
        meshy: Any = emulator.meshy
        meshy.pending_polls, meshy.running_polls = 30, 20  # several seconds of polling per task
        yield emulator


def _pictures(folder: Path, count: int) -> list[str]:
    """Distinct small PNG pictures, made with bpy (distinct content: distinct jobs)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        image = bpy.data.images.new(f"view{index}", 8, 8)
        image.pixels.foreach_set([(index * 37 % 255) / 255.0, 0.5, 1.0 - index / count, 1.0] * 64)
        path = folder / f"view{index}.png"
        image.filepath_raw = str(path)
        image.file_format = "PNG"
        image.save()
        bpy.data.images.remove(image)
        paths.append(str(path))
    return paths


def _run(plans: list[dict[str, Any]], tmp_path: Path, emu: Emulator, zip_path: Path) -> list[dict[str, Any]]:
    home = tmp_path / "home"
    go = tmp_path / "go"
    procs = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLENDER_USER_", "MARIONETTE_"))}
    env["PYTHONPATH"] = str(ROOT)
    for index, plan in enumerate(plans):
        plan.update(home=str(home), user=str(tmp_path / f"user{index}"), zip=str(zip_path), base_url=emu.base_url,
                    out=str(tmp_path / f"out{index}.json"), go=str(go))
        plan_path = tmp_path / f"plan{index}.json"
        plan_path.write_text(json.dumps(plan))
        log = open(tmp_path / f"log{index}.txt", "w")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen([sys.executable, "-m", "tests.support.many_blenders", str(plan_path)],
                                       cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not all(Path(p["out"] + ".ready").exists() for p in plans):
        dead = [i for i, (proc, _) in enumerate(procs) if proc.poll() is not None]
        assert not dead, [(tmp_path / f"log{i}.txt").read_text()[-3000:] for i in dead]
        assert time.monotonic() < deadline, "the Blender processes did not start"
        time.sleep(0.1)
    go.write_text(str(time.time() + 0.3))  # every process submits at this one moment
    results = []
    for index, (proc, log) in enumerate(procs):
        try:
            proc.wait(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        text = (tmp_path / f"log{index}.txt").read_text()
        assert proc.returncode == 0, text[-3000:]
        results.append(json.loads(Path(plans[index]["out"]).read_text()))
    return results


def _journal(tmp_path: Path) -> list[dict[str, Any]]:
    data = json.loads((tmp_path / "home" / "journal.json").read_text())
    return list(data["jobs"])


def _check(tmp_path: Path, emu: Emulator, results: list[dict[str, Any]], expected_jobs: int,
           cancelled: int) -> dict[str, Any]:
    jobs = _journal(tmp_path)
    ids = [j["id"] for j in jobs]
    submitted = {job_id for r in results for job_id in r["submitted"]}
    tasks = [t["remote_id"] for j in jobs for t in j["tasks"] if t.get("remote_id")]
    # Every task the provider created (paid): those it still has and those a cancel deleted.
    made = [*emu.meshy.tasks, *(task.id for task in emu.meshy.deleted)]
    states = Counter(j["state"] for j in jobs)
    downloads = Counter(r.path for r in emu.requests if r.method == "GET" and "/assets/" in r.path
                        and r.path.endswith("model.glb"))
    deletes = emu.count("DELETE", r"^/openapi/v1/image-to-3d/")
    facts = {
        "jobs": len(jobs), "unique ids": len(set(ids)), "submitted": len(submitted), "creates": len(made),
        "tasks in journal": len(tasks), "unique tasks": len(set(tasks)), "states": dict(states),
        "downloaded twice": [p for p, n in downloads.items() if n > 1], "deletes": deletes,
        "errors": [e for r in results for e in r["errors"]],
        "folders": all((tmp_path / "home" / "jobs" / job_id).is_dir() for job_id in ids),
    }
    ok = (len(jobs) == expected_jobs == len(set(ids)) and submitted <= set(ids) and sorted(tasks) == sorted(made)
          and len(made) == expected_jobs and states.get("CANCELED", 0) == cancelled == deletes
          and states.get("SUCCEEDED", 0) == expected_jobs - cancelled and not facts["downloaded twice"]
          and not facts["errors"] and facts["folders"])
    facts["ok"] = ok
    return facts


def _record(matrix_name: str, processes: int, stage: str, facts: dict[str, Any]) -> None:
    from tests.unit import fault_matrix

    if not os.environ.get("MARIONETTE_FAULT_SUITE"):
        fault_matrix.MATRIX.suite = "blender-" + ".".join(str(v) for v in bpy.app.version)
    lost = abs(facts["creates"] - facts["tasks in journal"]) + max(0, facts["creates"] - facts["jobs"])
    fault_matrix.MATRIX.record(matrix_name, f"meshy x{processes} Blenders", stage, injected=facts["jobs"],
                               survived=facts["jobs"] if facts["ok"] else 0, lost=lost)
    fault_matrix.MATRIX.save()


def test_two_blenders_one_crashes(tmp_path: Path, emu: Emulator, extension_zip: Path, _installed: str) -> None:
    pictures = _pictures(tmp_path / "pictures", 6)
    plans: list[dict[str, Any]] = [
        {"submit": pictures[:3], "quit_after": 1.5, "crash": True},
        {"submit": pictures[3:], "cancel_foreign": 1, "until_total": 6, "timeout": 150},
    ]
    results = _run(plans, tmp_path, emu, extension_zip)
    facts = _check(tmp_path, emu, results, expected_jobs=6, cancelled=1)
    _record("many_blenders", 2, "submit, poll, cancel across, crash", facts)
    print(facts)
    assert facts["ok"], facts


def test_three_blenders_double_click_cancel_and_quit(tmp_path: Path, emu: Emulator, extension_zip: Path,
                                                     _installed: str) -> None:
    pictures = _pictures(tmp_path / "pictures", 7)
    same = pictures[6]  # submitted by all three at one moment: one job, one paid task
    plans: list[dict[str, Any]] = [
        {"submit": [same, *pictures[0:2]], "cancel_foreign": 1, "until_total": 7, "timeout": 150},
        {"submit": [same, *pictures[2:4]], "until_total": 7, "timeout": 150},
        {"submit": [same, *pictures[4:6]], "quit_after": 1.5},
    ]
    results = _run(plans, tmp_path, emu, extension_zip)
    facts = _check(tmp_path, emu, results, expected_jobs=7, cancelled=1)
    _record("many_blenders", 3, "double click across, cancel across, quit", facts)
    print(facts)
    assert facts["ok"], facts
