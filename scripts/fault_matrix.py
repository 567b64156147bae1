"""Run the fault tests and print the README's fault matrix from what they measured.

    python scripts/fault_matrix.py                    # core fault tests (tests/unit/test_faults_*.py)
    python scripts/fault_matrix.py --e2e PYTHON ...   # also tests/e2e/test_faults_blender.py with each bpy venv
    python scripts/fault_matrix.py --no-run           # only print the table of the last run

Every fault test records how many times it injected its fault, how many of those the job survived and
how many paid results were lost; the `matrix` fixture (tests/unit/fault_matrix.py) writes the counts to
.cache/fault_matrix.json, one section per test run, and this script adds the sections up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / ".cache" / "fault_matrix.json"
UNIT = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "unit").glob("test_faults_*.py"))
# Blender fault tests: Blender quitting, bad input; hostile result files and input; many Blender processes
# on one user folder and the 200-job soak (tests/e2e/test_soak.py, MARIONETTE_SOAK_JOBS scales it).
E2E = ["tests/e2e/test_faults_blender.py", "tests/e2e/test_hostile_results.py", "tests/e2e/test_hostile_input.py",
       "tests/e2e/test_many_blenders.py", "tests/e2e/test_soak.py"]


def run(python: str, files: list[str], suite: str) -> int:
    env = dict(os.environ, MARIONETTE_FAULT_SUITE=suite)
    command = [python, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider"]
    print(f"$ MARIONETTE_FAULT_SUITE={suite} {' '.join(command)}", flush=True)
    return subprocess.call(command, cwd=ROOT, env=env)


def table(data: dict[str, Any]) -> str:
    labels: dict[str, str] = data.get("labels", {})
    totals: dict[str, dict[str, Any]] = {}
    for suite in data.get("suites", {}).values():
        for row, cell in suite.get("rows", {}).items():
            total = totals.setdefault(row, {"injected": 0, "survived": 0, "lost": 0, "providers": set(),
                                            "stages": set()})
            for key in ("injected", "survived", "lost"):
                total[key] += int(cell.get(key, 0))
            total["providers"].update(cell.get("providers", []))
            total["stages"].update(stage.split(" (", 1)[0] for stage in cell.get("stages", []))
    order = [row for row in labels if row in totals] + sorted(set(totals) - set(labels))
    lines = ["| Fault or bad input | Providers | Where | Injected | Survived | Results lost |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    for row in order:
        total = totals[row]
        providers = ", ".join(sorted(total["providers"])) if "all" not in total["providers"] else "all"
        lines.append(f"| {labels.get(row, row)} | {providers} | {', '.join(sorted(total['stages']))} | "
                     f"{total['injected']} | {total['survived']} | {total['lost']} |")
    runs = ", ".join(f"{name} ({suite.get('written', '?')})" for name, suite in data.get("suites", {}).items())
    lines.append("")
    lines.append(f"Measured by the test suite: {runs}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="Python for the core fault tests")
    parser.add_argument("--e2e", nargs="*", default=None, metavar="PYTHON",
                        help="also run the Blender fault tests with each of these Pythons (bpy venvs); "
                             "without a value: .venv and .venv-bpy42")
    parser.add_argument("--no-run", action="store_true", help="print the table of the last run only")
    args = parser.parse_args(argv)
    status = 0
    if not args.no_run:
        OUTPUT.unlink(missing_ok=True)  # a fresh measurement
        status |= run(args.python, UNIT, "unit")
        if args.e2e is not None:
            pythons = args.e2e or [str(ROOT / v / "bin" / "python") for v in (".venv", ".venv-bpy42")]
            for python in pythons:
                version = subprocess.run([python, "-c", "import bpy; print(bpy.app.version_string)"],
                                         capture_output=True, text=True, cwd=ROOT).stdout.strip().split()
                status |= run(python, E2E, f"blender-{version[0] if version else Path(python).parent.parent.name}")
    try:
        data = json.loads(OUTPUT.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        print(f"No measurements in {OUTPUT.relative_to(ROOT)}: run the tests first", file=sys.stderr)
        return 1
    print()
    print(table(data))
    return status


if __name__ == "__main__":
    sys.exit(main())
