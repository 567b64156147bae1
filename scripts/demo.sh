#!/usr/bin/env bash
# The main job: sample image -> local Meshy emulator -> rigged, animated character in Blender 5.0,
# saved to out/marionette_demo.blend and rendered to out/marionette_demo.png. No key, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh bpy50
exec .venv/bin/python scripts/demo.py "$@"
