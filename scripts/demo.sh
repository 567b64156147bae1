#!/usr/bin/env bash
# The main job: sample image -> local Meshy emulator -> rigged, animated character in Blender, saved to
# out/marionette_demo.blend and rendered to out/marionette_demo.png. No key, no network.
# Usage: bash scripts/demo.sh [--blender 4.2|4.5|5.0|5.2|5.3] [demo.py options]
#        (or MARIONETTE_BLENDER=5.3; default 5.0)
set -euo pipefail
cd "$(dirname "$0")/.."
blender=${MARIONETTE_BLENDER:-5.0}
if [ "${1:-}" = "--blender" ]; then
  blender=${2:?--blender needs a version: 4.2, 4.5, 5.0, 5.2 or 5.3}
  shift 2
fi
case "$blender" in
  4.2) target=bpy42 venv=.venv-bpy42 ;;
  4.5) target=bpy45 venv=.venv-bpy45 ;;
  5.0) target=bpy50 venv=.venv ;;
  5.2) target=bpy52 venv=.venv-bpy52 ;;
  5.3) target=bpy53 venv=.venv-bpy53 ;;
  *) echo "unknown Blender $blender: choose 4.2, 4.5, 5.0, 5.2 or 5.3" >&2; exit 2 ;;
esac
bash scripts/setup.sh "$target"
exec "$venv/bin/python" scripts/demo.py "$@"
