#!/usr/bin/env bash
# Creates the project's virtual environments, one per tested Blender (PyPI `bpy`) plus one for lint:
#   .venv        Blender 5.0.1 + test tools (unit tests, the demo's default)      Python 3.11
#   .venv-bpy42  Blender 4.2 LTS (the oldest supported)                          Python 3.11
#   .venv-bpy45  Blender 4.5 LTS                                                  Python 3.11
#   .venv-bpy52  Blender 5.2 LTS                                                  Python 3.13
#   .venv-bpy53  Blender 5.3 (the current release)                                Python 3.13
#   .venv-lint   ruff, mypy and fake-bpy-module (stubs only; never beside a real bpy)
# Each venv is built once per requirements content and Python in $MARIONETTE_CACHE (default
# ~/.cache/marionette/venvs) and linked into the checkout, so a fresh clone (CI) reuses it.
# Python 3.13 is found or made by scripts/python313.sh.
# Usage: bash scripts/setup.sh [bpy42|bpy45|bpy50|bpy52|bpy53|lint ...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${MARIONETTE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/marionette}
export MARIONETTE_CACHE="$CACHE"
PY311=${PYTHON:-python3.11}
command -v "$PY311" >/dev/null 2>&1 || PY311=python3

python_for() {  # target -> interpreter path
  case "$1" in
    bpy52|bpy53) bash scripts/python313.sh ;;
    *) command -v "$PY311" ;;
  esac
}

make_venv() {  # link-name requirements-file python
  local link=$1 req=$2 py=$3 key dir
  # The key covers the requirement files (with what they include) and the interpreter.
  key=$( (cat "$req" requirements/test-tools.txt; "$py" -c 'import sys; print(sys.version, sys.prefix)') \
    | sha256sum | cut -c1-16)
  dir="$CACHE/venvs/$(basename "$req" .txt)-$key"
  if [ ! -f "$dir/.complete" ]; then
    echo "setting up $link from $req with $py ..."
    rm -rf "$dir"
    mkdir -p "$CACHE/venvs"
    "$py" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    touch "$dir/.complete"
  fi
  if [ "$(readlink "$link" 2>/dev/null)" != "$dir" ]; then
    rm -rf "$link"
    ln -s "$dir" "$link"
  fi
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bpy50 bpy42 bpy45 bpy52 bpy53 lint)
for target in "${targets[@]}"; do
  case "$target" in
    bpy50) make_venv .venv requirements/bpy50.txt "$(python_for bpy50)" ;;
    bpy42|bpy45|bpy52|bpy53) make_venv ".venv-$target" "requirements/$target.txt" "$(python_for "$target")" ;;
    lint) make_venv .venv-lint requirements/lint.txt "$(python_for lint)" ;;
    *) echo "unknown target $target (bpy42 bpy45 bpy50 bpy52 bpy53 lint)" >&2; exit 2 ;;
  esac
done
