"""Soak: 200 Meshy jobs from two real Blender processes on one user folder at once, through the emulator
with faults on (create 429s and 5xx, poll resets, 429s and 5xx, cut and expired downloads, download
resets); the second Blender quits while jobs of its own still run, and the first takes them over. Every
job ends, every paid task is in the journal once, no create is sent twice, every injected fault is used,
and each process's memory stays bounded (peak RSS growth after the add-on is enabled)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import bpy

from tests.e2e.test_many_blenders import _journal, _pictures, _run
from tests.emulator import Emulator
from tests.support.served import emulator_assets

JOBS = int(os.environ.get("MARIONETTE_SOAK_JOBS", "200"))
CREATE = r"^/openapi/v1/image-to-3d$"
POLL = r"^/openapi/v1/image-to-3d/[^/]+$"
ASSET = r"^/assets/[^/]+/model\.glb$"
MEMORY_BOUND_MB = 256
# The second Blender quits once this many of its jobs have ended, with the others still running: the first
# takes them over.
QUIT_AFTER_DONE = max(1, JOBS // 40)


def test_soak_two_blenders_with_faults(tmp_path: Path, assets: dict[str, Path], extension_zip: Path,
                                       _installed: str) -> None:
    pictures = _pictures(tmp_path / "pictures", JOBS)
    with Emulator(assets=emulator_assets(assets)) as emu:
        meshy: Any = emu.meshy
        meshy.pending_polls, meshy.running_polls = 2, 2
        meshy.balance = 10**9  # 200 paid tasks
        faults = {"create 429": 15, "create 503": 15, "poll reset": 20, "poll 429": 20, "poll 502": 20,
                  "download cut short": 15, "download link expired": 10, "download reset": 10}
        emu.inject("POST", CREATE, status=429, body={"message": "Too many requests"}, times=15)
        emu.inject("POST", CREATE, status=503, body={"message": "busy"}, times=15)
        emu.inject_reset("GET", POLL, times=20)
        emu.inject("GET", POLL, status=429, body={"message": "slow down"}, times=20)
        emu.inject("GET", POLL, status=502, body={"message": "bad gateway"}, times=20)
        emu.inject_fault("GET", ASSET, "truncate", times=15)
        emu.inject("GET", ASSET, status=403, body="expired", times=10)
        emu.inject_reset("GET", ASSET, times=10)
        half = JOBS // 2
        plans: list[dict[str, Any]] = [
            {"submit": pictures[:half], "until_total": JOBS, "timeout": 600, "auto_import": False},
            {"submit": pictures[half:], "until_total": JOBS, "timeout": 600, "auto_import": False,
             "quit_after_done": QUIT_AFTER_DONE},
        ]
        results = _run(plans, tmp_path, emu, extension_zip)
        jobs = _journal(tmp_path)
        tasks = [t["remote_id"] for j in jobs for t in j["tasks"] if t.get("remote_id")]
        made = list(meshy.tasks)
        states = Counter(j["state"] for j in jobs)
        unused = emu.pending_faults()
        creates = emu.count("POST", CREATE)
    growth = [r["peak_mb"] - r["rss_start_mb"] for r in results]
    quitter = results[1]
    left = [job_id for job_id in quitter["submitted"] if quitter["seen"].get(job_id) in ("PENDING", "RUNNING")]
    facts = {"jobs": len(jobs), "states": dict(states), "paid tasks": len(made), "tasks in journal": len(tasks),
             "unique": len(set(tasks)), "create requests": creates, "faults unused": unused,
             "peak RSS growth MB": [round(g, 1) for g in growth], "taken over": len(left),
             "errors": [e for r in results for e in r["errors"]]}
    print(facts)
    ended = states.get("SUCCEEDED", 0) + states.get("FAILED", 0) + states.get("CANCELED", 0) == JOBS
    ok = (len(jobs) == JOBS and ended and sorted(tasks) == sorted(made) and len(made) == JOBS
          and unused == 0 and not facts["errors"] and max(growth) < MEMORY_BOUND_MB and left)
    from tests.unit import fault_matrix

    if not os.environ.get("MARIONETTE_FAULT_SUITE"):
        fault_matrix.MATRIX.suite = "blender-" + ".".join(str(v) for v in bpy.app.version)
    survived = states.get("SUCCEEDED", 0) if ok else 0
    lost = abs(len(made) - len(set(tasks))) + max(0, len(made) - JOBS)
    fault_matrix.MATRIX.record("soak", "meshy x2 Blenders", f"{JOBS} jobs, {sum(faults.values())} faults",
                               injected=JOBS, survived=survived, lost=lost)
    fault_matrix.MATRIX.save()
    assert ok, facts
    assert states.get("SUCCEEDED", 0) == JOBS, facts
