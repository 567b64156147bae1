"""The main job, headless: a sample image goes to the built-in default provider (a local Meshy
emulator on 127.0.0.1, no key, no network), and a rigged, animated character comes back into the
scene. Writes out/marionette_demo.blend and out/marionette_demo.png (a rendered frame).

Run with a Python that has the PyPI `bpy` module: `python scripts/demo.py [--out out]`
(`bash scripts/demo.sh` sets that up first). It installs the extension zip exactly as a user would,
into a scratch user folder under the output folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.build import build, host_platform  # noqa: E402
from tests.assets.cache import ensure_assets  # noqa: E402
from tests.emulator import Emulator  # noqa: E402
from tests.support import blender_install  # noqa: E402
from tests.support.served import emulator_assets  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    parser.add_argument("--animations", default="Idle,Attack", help="comma-separated Meshy animation names")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    user_dir = Path(tempfile.mkdtemp(prefix="marionette-user-", dir=out))
    blender_install.prepare_user_dir(user_dir)  # before `import bpy`

    started = time.monotonic()
    print("building test assets (a humanoid made with bpy) ...", flush=True)
    assets = ensure_assets()
    print("building the extension zip ...", flush=True)
    zip_path = build(platforms=[host_platform()])[0]

    with Emulator(assets=emulator_assets(assets)) as emu:
        os.environ["MARIONETTE_MESHY_BASE_URL"] = emu.base_url
        os.environ.setdefault("MARIONETTE_POLL_INTERVAL", "0.05")
        import bpy

        module_name = blender_install.install_and_enable(zip_path)
        api = __import__(module_name + ".api", fromlist=["api"])
        bpy.ops.wm.read_homefile(use_empty=True)
        bpy.context.scene.cursor.location = (1.0, 0.5, 0.0)
        wanted = [name for name in args.animations.split(",") if name]
        print(f"submitting {assets['sample.png'].name} to Meshy at {emu.base_url} (rig, {wanted}) ...", flush=True)
        job_id = api.submit("meshy", image=str(assets["sample.png"]), rig=True, animations=wanted, name="Hero")
        info = api.wait(job_id, timeout=300, on_change=lambda i: print(
            f"  {i.state.value:<9} {i.progress:4.0%}  {i.stage}", flush=True))
        if info.state.value != "SUCCEEDED" or not info.imported:
            print(f"the job did not finish: {info.state.value} {info.error}", file=sys.stderr)
            return 1
        print(f"imported: collection {info.collection!r}, armature {info.armature!r}, "
              f"actions {info.actions}", flush=True)
        blend = out / "marionette_demo.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        png = render(bpy, out / "marionette_demo.png", info.armature)
        print(f"wrote {blend}\nwrote {png}\n{emu.count()} HTTP requests to the emulator, "
              f"{time.monotonic() - started:.1f} s in all", flush=True)
        blender_install.uninstall(module_name)
    shutil.rmtree(user_dir, ignore_errors=True)
    return 0


def render(bpy, path: Path, armature_name: str | None) -> Path:  # type: ignore[no-untyped-def]
    """A small Cycles CPU render of the character mid-animation (no GPU needed)."""
    scene = bpy.context.scene
    scene.frame_set((scene.frame_start + scene.frame_end) // 2)
    cam_data = bpy.data.cameras.new("DemoCamera")
    cam = bpy.data.objects.new("DemoCamera", cam_data)
    scene.collection.objects.link(cam)
    target = bpy.data.objects[armature_name].location if armature_name else (0, 0, 0)
    cam.location = (target[0] + 0.6, target[1] - 4.5, target[2] + 1.2)
    cam.rotation_euler = (1.45, 0.0, 0.13)
    scene.camera = cam
    light = bpy.data.objects.new("DemoSun", bpy.data.lights.new("DemoSun", "SUN"))
    light.rotation_euler = (0.6, 0.2, 0.4)
    scene.collection.objects.link(light)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 16
    scene.render.resolution_x, scene.render.resolution_y = 480, 480
    scene.render.filepath = str(path)
    scene.render.image_settings.file_format = "PNG"
    bpy.ops.render.render(write_still=True)
    return path


if __name__ == "__main__":
    status = main()
    # bpy as a module can crash (4.2) or hang (4.5) in its own exit-time cleanup: everything is written
    # by now, so leave without it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
