#!/usr/bin/env bash
# Everything CI runs: lint, types, unit tests, and the end-to-end tests in real Blender 5.0.1 and 4.2 LTS.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

status=0
step() {  # name command...
  echo "=== $1"
  shift
  "$@"
  local rc=$?
  if [ $rc -eq 5 ]; then
    # pytest's "no tests collected": not a failure of the code, but said loudly so it is not missed.
    echo "!!! $1: pytest collected no tests (exit 5)"
    rc=0
  fi
  [ $rc -eq 0 ] || status=1
}

step "ruff" .venv-lint/bin/ruff check .
step "mypy" .venv-lint/bin/mypy
step "unit tests (no Blender UI; core, emulator)" .venv/bin/python -m pytest tests/unit -q -p no:cacheprovider
step "end-to-end, Blender 4.2 LTS" .venv-bpy42/bin/python -m pytest tests/e2e -q -p no:cacheprovider
step "end-to-end, Blender 5.0.1" .venv/bin/python -m pytest tests/e2e -q -p no:cacheprovider
[ $status -eq 0 ] && echo "ALL CHECKS PASSED" || echo "SOME CHECKS FAILED"
exit $status
