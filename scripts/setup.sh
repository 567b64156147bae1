#!/usr/bin/env bash
# Creates the project's virtual environments (idempotent; reruns only when a requirements file changed):
#   .venv        Blender 5.0.1 as a Python module + test tools   (also runs the demo)
#   .venv-bpy42  Blender 4.2 LTS as a Python module + test tools (the oldest supported Blender)
#   .venv-lint   ruff, mypy and fake-bpy-module (stubs only; never beside a real bpy)
# Usage: bash scripts/setup.sh [bpy50|bpy42|lint ...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

make_venv() {  # name requirements-file
  local dir=$1 req=$2 stamp
  stamp="$dir/.requirements.$(sha256sum "$req" | cut -c1-16)"
  if [ -f "$stamp" ]; then return 0; fi
  echo "setting up $dir from $req ..."
  [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  rm -f "$dir"/.requirements.* && touch "$stamp"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bpy50 bpy42 lint)
for target in "${targets[@]}"; do
  case "$target" in
    bpy50) make_venv .venv requirements/bpy50.txt ;;
    bpy42) make_venv .venv-bpy42 requirements/bpy42.txt ;;
    lint)  make_venv .venv-lint requirements/lint.txt ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
done
