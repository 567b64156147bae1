"""scripts/batch.py end to end: run in a subprocess with this interpreter's PyPI bpy, in its own scratch
Blender user folder, against an emulator started here. Asserts on the files written, the summary and
what the emulator received (never on time)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bpy
import pytest

from tests.emulator import Emulator
from tests.support.served import emulator_assets

ROOT = Path(__file__).resolve().parents[2]
BATCH = ROOT / "scripts" / "batch.py"
IMAGE_POST = r"^/openapi/v1/image-to-3d$"
IMAGE_GET = r"^/openapi/v1/image-to-3d/[^/]+$"
EXR_MAGIC = b"\x76\x2f\x31\x01"
RUN_TIMEOUT = 300


@pytest.fixture
def emu(assets: dict[str, Path]) -> Iterator[Emulator]:
    with Emulator(assets=emulator_assets(assets)) as emulator:
        yield emulator


def scratch_env(user_dir: Path, emu: Emulator | None = None) -> dict[str, str]:
    """The environment of a batch subprocess: its own Blender user folder, fast polling, the emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLENDER_USER_", "MARIONETTE_"))}
    env.update(BLENDER_USER_RESOURCES=str(user_dir), MARIONETTE_POLL_INTERVAL="0.01",
               MARIONETTE_RETRY_BASE="0.01", PYTHONUNBUFFERED="1")
    if emu is not None:
        env["MARIONETTE_MESHY_BASE_URL"] = emu.base_url
    return env


def write_exr(source: Path, target: Path, user_dir: Path) -> Path:
    """An OpenEXR copy of a picture, written by bpy in a subprocess (this process's Blender stays as it is)."""
    code = textwrap.dedent(f"""
        import os, bpy, numpy
        source = bpy.data.images.load({str(source)!r}, check_existing=False)
        width, height = source.size
        pixels = numpy.empty(width * height * 4, dtype=numpy.float32)
        source.pixels.foreach_get(pixels)
        image = bpy.data.images.new("plate", width, height, alpha=True, float_buffer=True)
        image.pixels.foreach_set(pixels)
        image.filepath_raw = {str(target)!r}
        image.file_format = "OPEN_EXR"
        image.save()
        os._exit(0)
    """)
    done = subprocess.run([sys.executable, "-c", code], env=scratch_env(user_dir), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert target.read_bytes()[:4] == EXR_MAGIC
    return target


@pytest.fixture
def images(tmp_path: Path, assets: dict[str, Path]) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(assets["sample.png"], folder / "hero.png")
    shutil.copy(assets["sample.jpg"], folder / "knight.jpg")
    write_exr(assets["sample.png"], folder / "plate.exr", tmp_path / "exr-user")
    (folder / "notes.txt").write_text("not an input: wrong extension\n")
    return folder


def batch_command(images: Path, out: Path, extension_zip: Path, *extra: str) -> list[str]:
    return [sys.executable, str(BATCH), "--provider", "meshy", "--images", str(images), "--out", str(out),
            "--extension-zip", str(extension_zip), *extra]


def run_batch(env: dict[str, str], images: Path, out: Path, extension_zip: Path,
              *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(batch_command(images, out, extension_zip, *extra), env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)


def output_of(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-6000:]}\n--- stderr\n{done.stderr[-6000:]}"


def summary_of(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "batch_summary.json").read_text(encoding="utf-8"))
    return data


def sent_images(emu: Emulator) -> Counter[str]:
    """SHA-256 of every image the emulator received in an image-to-3d POST, with how often."""
    hashes: Counter[str] = Counter()
    for task in emu.meshy.tasks.values():
        if task.kind == "image-to-3d":
            data = base64.b64decode(task.request["image_url"].split(",", 1)[1])
            hashes[hashlib.sha256(data).hexdigest()] += 1
    return hashes


def max_jobs_at_once(emu: Emulator) -> int:
    """Jobs in flight at once, seen from the emulator: image task created -> last download of its rig."""
    last_get: dict[str, float] = {}
    for record in emu.requests:
        if record.path.startswith("/assets/"):
            task_id = record.path.split("/")[2]
            last_get[task_id] = max(last_get.get(task_id, 0.0), record.time)
    spans = []
    for rig in (t for t in emu.meshy.tasks.values() if t.kind == "rig"):
        image = emu.meshy.tasks[rig.request["input_task_id"]]
        spans.append((image.created_at / 1000.0, last_get[rig.id]))
    return max(sum(1 for s, e in spans if s <= start <= e) for start, _ in spans)


def actions_in(blend: Path) -> list[str]:
    libraries: Any = bpy.data.libraries  # the stubs do not know load() is a context manager
    with libraries.load(str(blend)) as (source, _target):
        return list(source.actions)


def test_three_images_two_at_a_time(emu: Emulator, images: Path, tmp_path: Path, extension_zip: Path) -> None:
    out = tmp_path / "out"
    env = scratch_env(tmp_path / "user", emu)
    done = run_batch(env, images, out, extension_zip, "--rig", "--animations", "Walking,Running",
                     "--concurrency", "2")
    assert done.returncode == 0, output_of(done)
    assert sorted(p.name for p in out.glob("*.blend")) == ["hero.blend", "knight.blend", "plate.blend"]
    summary = summary_of(out)
    assert summary["counts"]["succeeded"] == 3 and summary["counts"]["failed"] == 0, summary
    assert {Path(s["input"]).name for s in summary["succeeded"]} == {"hero.png", "knight.jpg", "plate.exr"}
    assert emu.count("POST", IMAGE_POST) == 3
    assert len(sent_images(emu)) == 3
    assert emu.count("POST", r"^/openapi/v1/animations$") == 0  # Walking and Running come with every rig
    assert max_jobs_at_once(emu) <= 2
    for blend in out.glob("*.blend"):
        assert {"Walking", "Running"} <= set(actions_in(blend)), blend.name
    assert "3/3 done" in done.stdout  # the plain-text progress bar (stdout is not a terminal here)

    # A second run finds every output done: nothing is sent at all.
    emu.clear_log()
    again = run_batch(env, images, out, extension_zip, "--rig", "--animations", "Walking,Running")
    assert again.returncode == 0, output_of(again)
    assert emu.count() == 0
    assert summary_of(out)["counts"]["done_in_an_earlier_run"] == 3


def test_killed_run_picks_up_without_paying_twice(emu: Emulator, images: Path, tmp_path: Path,
                                                  extension_zip: Path) -> None:
    out = tmp_path / "out"
    env = scratch_env(tmp_path / "user", emu)
    emu.meshy.pending_polls = 40  # the first job waits in the queue long enough to be killed there
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen(batch_command(images, out, extension_zip, "--concurrency", "1"), env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    state_file = out / "batch_state.json"
    killed_job = None
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            if state_file.exists():
                entries = json.loads(state_file.read_text(encoding="utf-8"))["inputs"]
                jobs = [e["job_id"] for e in entries.values() if e.get("job_id")]
                # Submitted: the job id is noted and Meshy is being polled for its task.
                if jobs and emu.count("GET", IMAGE_GET) >= 1:
                    killed_job = jobs[0]
                    break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        log.close()
    assert killed_job is not None, (tmp_path / "killed.log").read_text()[-4000:]
    assert emu.count("POST", IMAGE_POST) == 1
    assert not list(out.glob("*.blend"))

    emu.meshy.pending_polls = 2
    done = run_batch(env, images, out, extension_zip, "--concurrency", "2")
    assert done.returncode == 0, output_of(done)
    assert f"waiting for job {killed_job}" in done.stdout
    summary = summary_of(out)
    assert summary["counts"]["succeeded"] == 3 and summary["counts"]["failed"] == 0, summary
    assert killed_job in {s["job_id"] for s in summary["succeeded"]}
    assert sorted(p.name for p in out.glob("*.blend")) == ["hero.blend", "knight.blend", "plate.blend"]
    sent = sent_images(emu)
    assert len(sent) == 3 and set(sent.values()) == {1}, sent  # one image-to-3d POST per input, ever
    assert emu.count("POST", IMAGE_POST) == 3


def test_bad_input_is_reported_and_the_others_succeed(emu: Emulator, images: Path, tmp_path: Path,
                                                      extension_zip: Path) -> None:
    (images / "plate.exr").unlink()
    (images / "broken.png").write_bytes(b"this is not an image")
    out = tmp_path / "out"
    done = run_batch(scratch_env(tmp_path / "user", emu), images, out, extension_zip, "--format", "glb")
    assert done.returncode == 1, output_of(done)
    summary = summary_of(out)
    assert summary["counts"]["succeeded"] == 2 and summary["counts"]["failed"] == 1, summary
    [failed] = summary["failed"]
    assert Path(failed["input"]).name == "broken.png"
    assert "not an image" in failed["error"]
    assert "broken.png" in done.stdout and "not an image" in done.stdout
    assert sorted(p.name for p in out.glob("*.glb")) == ["hero.glb", "knight.glb"]
    assert all(p.read_bytes()[:4] == b"glTF" for p in out.glob("*.glb"))
    assert emu.count("POST", IMAGE_POST) == 2  # the bad file never left the machine


def test_a_remote_failure_is_not_paid_again_unless_asked(emu: Emulator, tmp_path: Path, assets: dict[str, Path],
                                                         extension_zip: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(assets["sample.png"], images / "hero.png")
    out = tmp_path / "out"
    env = scratch_env(tmp_path / "user", emu)
    emu.meshy.fail_next("image-to-3d", code="invalid_image", message="The image has no recognisable subject.")
    done = run_batch(env, images, out, extension_zip)
    assert done.returncode == 1, output_of(done)
    [failed] = summary_of(out)["failed"]
    assert "no recognisable subject" in failed["error"] and failed["error_code"] == "invalid_image", failed

    again = run_batch(env, images, out, extension_zip)  # the failure stands: nothing is sent again
    assert again.returncode == 1, output_of(again)
    assert emu.count("POST", IMAGE_POST) == 1

    retried = run_batch(env, images, out, extension_zip, "--retry-failed")
    assert retried.returncode == 0, output_of(retried)
    assert emu.count("POST", IMAGE_POST) == 2
    assert (out / "hero.blend").is_file()
