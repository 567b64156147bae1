"""What enabling Marionette adds to Blender's start, as a ratio to a bare ``import bpy`` in the same process.

For each Blender (a venv Python with the PyPI ``bpy``): one process installs the extension zip into a
scratch user folder (wheels unpacked, as after a first install); then, in each of several fresh processes,
``import bpy`` is timed, and then ``addon_utils.enable`` of Marionette, which is what Blender does for an
enabled extension at every start. The best of the runs is kept for both (other load only adds time).
Used by ``scripts/bench.py``; runs alone too::

    python scripts/bench_startup.py .venv-bpy45/bin/python .venv-bpy53/bin/python
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = "bl_ext.user_default.marionette"
MARKER = "MARIONETTE_BENCH_STARTUP "
GOAL = 0.1

_CHILD = r"""
import json, sys, time
from pathlib import Path
from tests.support import blender_install as bi
step, user, zip_path, module, marker = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
bi.prepare_user_dir(user)
started = time.perf_counter()
import bpy
bpy_seconds = time.perf_counter() - started
if step == "install":
    bi.install_and_enable(Path(zip_path))
    facts = {"version": bpy.app.version_string}
else:
    import addon_utils
    started = time.perf_counter()
    addon_utils.enable(module, default_set=True)
    facts = {"bpy": bpy_seconds, "enable": time.perf_counter() - started,
             "enabled": module in bi.enabled_addons()}
print(marker + json.dumps(facts), flush=True)
"""


@dataclass
class Startup:
    blender: str
    bpy_seconds: float
    enable_seconds: float

    @property
    def ratio(self) -> float:
        return self.enable_seconds / self.bpy_seconds


def _run(python: str, step: str, user: Path, zip_path: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([python, "-c", _CHILD, step, str(user), str(zip_path), MODULE, MARKER], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{python} {step} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    facts: dict[str, object] = json.loads(lines[-1].removeprefix(MARKER))
    return facts


def measure(python: str, zip_path: Path, runs: int = 5) -> Startup:
    with tempfile.TemporaryDirectory(prefix="marionette-startup-") as work:
        user = Path(work) / "user"
        version = str(_run(python, "install", user, zip_path)["version"])
        samples = [_run(python, "start", user, zip_path) for _ in range(runs)]
    if not all(sample["enabled"] for sample in samples):
        raise RuntimeError(f"Marionette did not enable in Blender {version}")
    return Startup(version, min(float(str(s["bpy"])) for s in samples),
                   min(float(str(s["enable"])) for s in samples))


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from scripts.build import build, host_platform

    pythons = argv or [sys.executable]
    zip_path = build(platforms=[host_platform()])[0]
    for python in pythons:
        result = measure(python, zip_path)
        verdict = "met" if result.ratio <= GOAL else "NOT met"
        print(f"Blender {result.blender}: enable {result.enable_seconds * 1000:.0f} ms / import bpy "
              f"{result.bpy_seconds * 1000:.0f} ms = {result.ratio:.3f} (goal <= {GOAL}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
