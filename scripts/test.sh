#!/usr/bin/env bash
# Everything CI runs: lint, types and unit tests once, then the end-to-end tests in real Blender on every
# tested version (the PyPI `bpy` module): 4.2 LTS, 4.5 LTS, 5.0 (Python 3.11), 5.2 LTS and 5.3 (Python 3.13).
# Usage: bash scripts/test.sh [bpy42 bpy45 bpy50 bpy52 bpy53]   (default: all five Blenders)
set -uo pipefail
cd "$(dirname "$0")/.."
blenders=("$@")
[ ${#blenders[@]} -gt 0 ] || blenders=(bpy42 bpy45 bpy50 bpy52 bpy53)
bash scripts/setup.sh lint "${blenders[@]}" bpy50 || exit 1

status=0
step() {  # name command...
  local name=$1
  echo "=== $name"
  shift
  local started=$SECONDS
  "$@"
  local rc=$?
  if [ $rc -eq 5 ]; then
    # pytest's "no tests collected": not a failure of the code, but said loudly so it is not missed.
    echo "!!! $name: pytest collected no tests (exit 5)"
    rc=0
  fi
  echo "--- $name: exit $rc in $((SECONDS - started)) s"
  [ $rc -eq 0 ] || status=1
}

venv_of() { [ "$1" = bpy50 ] && echo .venv || echo ".venv-$1"; }

step "ruff" .venv-lint/bin/ruff check .
step "mypy" .venv-lint/bin/mypy
step "unit tests (no Blender UI; core, emulator)" .venv/bin/python -m pytest tests/unit -q -p no:cacheprovider
for blender in "${blenders[@]}"; do
  venv=$(venv_of "$blender")
  version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("bpy"))')
  step "end-to-end, Blender $version" "$venv/bin/python" -m pytest tests/e2e -q -p no:cacheprovider
done
[ $status -eq 0 ] && echo "ALL CHECKS PASSED" || echo "SOME CHECKS FAILED"
exit $status
