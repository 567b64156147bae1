"""One Blender process of the many-Blenders tests: `python -m tests.support.many_blenders PLAN.json`.

It points Blender at its own scratch user folder (MARIONETTE_HOME, the jobs and journal, is shared with
the other processes), installs and enables the built extension, writes OUT.ready, waits for the test's go
file (the common start time), then does what the plan says through the scripting API and the same pump
the interface runs:

- "submit": image paths, each submitted as a Meshy job at the start time;
- "cancel_foreign": cancel that many jobs another process submitted, once they show up here;
- "quit_after": seconds after the start when this Blender quits (gracefully: the add-on stops its workers)
  or, with "crash": true, ends at once (os._exit) with its workers mid-request; "quit_after_done": quit
  once that many of its own jobs have ended;
- "until_total": pump until that many jobs are in the journal and none is active (or "timeout").

It writes what it did and saw to the plan's "out" file (JSON).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def main(plan_path: str) -> int:
    plan: dict[str, Any] = json.loads(Path(plan_path).read_text())
    from tests.support import blender_install

    blender_install.prepare_user_dir(Path(plan["user"]))
    blender_install.hide_host_packages(blender_install.BUNDLED_PACKAGES)
    os.environ["MARIONETTE_HOME"] = plan["home"]
    os.environ["MARIONETTE_MESHY_BASE_URL"] = plan["base_url"]
    os.environ["MARIONETTE_POLL_INTERVAL"] = "0.05"
    os.environ["MARIONETTE_RETRY_BASE"] = "0.02"
    import bpy

    module = blender_install.install_and_enable(Path(plan["zip"]))
    api = importlib.import_module(module + ".api")
    timer = importlib.import_module(module + ".blender.timer")
    session = importlib.import_module(module + ".blender.session").get()
    out: dict[str, Any] = {"pid": os.getpid(), "submitted": [], "cancelled": [], "errors": []}
    if plan.get("auto_import") is False:
        bpy.context.preferences.addons[module].preferences.auto_import = False

    def save() -> None:
        out["seen"] = {j.id: j.state.value for j in api.jobs()}
        out["rss_mb"], out["peak_mb"] = _memory()
        Path(plan["out"]).write_text(json.dumps(out))

    out["rss_start_mb"] = _memory()[0]
    _reset_peak()

    Path(plan["out"] + ".ready").touch()  # installed: the test starts every process at one moment
    go = Path(plan["go"])
    while not go.exists():
        time.sleep(0.01)
    start_at = float(go.read_text() or 0)
    while time.time() < start_at:
        time.sleep(0.002)
    start = time.monotonic()
    for image in plan.get("submit", []):
        try:
            out["submitted"].append(api.submit("meshy", image=image, rig=False))
        except Exception as exc:
            out["errors"].append(f"submit: {exc}")
    save()
    to_cancel = int(plan.get("cancel_foreign", 0))
    quit_after = plan.get("quit_after")
    quit_after_done = plan.get("quit_after_done")
    deadline = start + float(plan.get("timeout", 120))
    while time.monotonic() < deadline:
        timer.pump()
        done = sum(1 for j in api.jobs() if j.id in out["submitted"] and not j.state.active) \
            if quit_after_done is not None else 0
        if (quit_after is not None and time.monotonic() - start > float(quit_after)) \
                or (quit_after_done is not None and done >= int(quit_after_done)):
            save()
            if plan.get("crash"):
                os._exit(0)  # no cleanup at all: workers die mid-request, leases freed by the kernel
            session.stop()  # what disabling the add-on or quitting Blender does
            return 0
        if to_cancel:
            for job in api.jobs():
                if to_cancel and job.id not in out["submitted"] and job.state.active \
                        and job.id not in out["cancelled"]:
                    api.cancel(job.id)
                    out["cancelled"].append(job.id)
                    to_cancel -= 1
        jobs = api.jobs()
        if plan.get("until_total") and len(jobs) >= plan["until_total"] \
                and not any(j.state.active for j in jobs) and not to_cancel:
            break
        time.sleep(0.02)
    save()
    session.stop()
    return 0


def _memory() -> tuple[float, float]:
    """(RSS, peak RSS since the last reset) in MB, from /proc (0 where there is none)."""
    values = {"VmRSS:": 0.0, "VmHWM:": 0.0}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key = line.split(None, 1)[0] if line else ""
            if key in values:
                values[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return values["VmRSS:"], values["VmHWM:"]


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak RSS starts again from here


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
