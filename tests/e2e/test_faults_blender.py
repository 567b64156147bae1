"""Fault matrix rows that need Blender: Blender quitting while a job polls and while it downloads (the
add-on disabled and enabled again, as at a restart), bad input images (a damaged PNG with a valid
signature, 16-bit and float images converted, a picture over the provider's size limit downscaled and
said so), a prompt over the limit, unknown Claythis motions, bad mesh selections, and the keys of all
five providers searched for in every file the add-on and Blender write."""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import pytest

from tests.emulator import Emulator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODEL = r"^/assets/[^/]+/model\.glb$"


@pytest.fixture(scope="module")
def matrix(_installed: str) -> Iterator[Any]:
    """The fault counts (tests/unit/fault_matrix.py), imported once the extension (and so the pydantic
    its core needs) is enabled; this run's section is written when the module ends."""
    from tests.unit import fault_matrix

    if not os.environ.get("MARIONETTE_FAULT_SUITE"):
        fault_matrix.MATRIX.suite = "blender-" + ".".join(str(v) for v in bpy.app.version)
    yield fault_matrix.MATRIX
    fault_matrix.MATRIX.save()


def _session_module(ext: ModuleType) -> ModuleType:
    return importlib.import_module(ext.__name__ + ".blender.session")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, depth: int, rgba: tuple[int, ...]) -> bytes:
    """A PNG of one colour, 8 or 16 bits per channel, RGBA."""
    size = 2 if depth == 16 else 1
    pixel = b"".join(v.to_bytes(size, "big") for v in rgba)
    raw = b"".join(b"\x00" + pixel * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, depth, 6, 0, 0, 0)
    return PNG_MAGIC + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def _png_info(data: bytes) -> tuple[int, int, int]:
    assert data.startswith(PNG_MAGIC), data[:16]
    width, height, depth = struct.unpack_from(">IIB", data, 16)
    return width, height, depth


def _first_pixel(data: bytes) -> tuple[int, ...]:
    """The first pixel of an 8-bit RGBA PNG (the test images are one colour)."""
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    assert raw[0] in (0, 1, 2, 3, 4)
    return tuple(raw[1:5])  # filter 0 or 1 (Sub) leaves the first pixel as it is


def _sent_image(emu: Emulator) -> bytes:
    task = next(t for t in emu.meshy.tasks.values() if t.kind == "image-to-3d")
    return base64.b64decode(task.request["image_url"].split(",", 1)[1])


# -- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["file", "datablock"])
def test_damaged_png_with_a_valid_signature_is_refused(api: ModuleType, emulator: Emulator, matrix: Any,
                                                       tmp_path: Path, how: str) -> None:
    good = _png(16, 16, 8, (200, 100, 50, 255))
    path = tmp_path / "damaged.png"
    path.write_bytes(good[:41] + bytes([good[41] ^ 0xFF]) + good[42:])  # one flipped bit in the image data
    image: Any = str(path) if how == "file" else bpy.data.images.load(str(path))
    with pytest.raises(Exception, match="damaged") as caught:
        api.submit("meshy", image=image)
    ok = emulator.count() == 0 and api.jobs() == [] and "damaged.png" in str(caught.value)
    matrix.record("bad_png", "meshy", f"submit ({how})", survived=ok)
    assert ok


@pytest.mark.parametrize("content,message", [(b"GIF89a not really", "not an image"), (b"", "empty")])
def test_non_image_and_empty_files_are_refused(api: ModuleType, emulator: Emulator, matrix: Any, tmp_path: Path,
                                               content: bytes, message: str) -> None:
    path = tmp_path / "input.png"
    path.write_bytes(content)
    with pytest.raises(Exception, match=message):
        api.submit("rodin", image=str(path))
    ok = emulator.count() == 0 and api.jobs() == []
    matrix.record("bad_file", "rodin", "submit", survived=ok)
    assert ok


def test_16_bit_png_is_converted(api: ModuleType, emulator: Emulator, matrix: Any, tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    path.write_bytes(_png(8, 4, 16, (0xFFFF, 0x8080, 0x0000, 0xFFFF)))
    info = api.wait(api.submit("meshy", image=str(path)), timeout=60)
    sent = _sent_image(emulator)
    width, height, depth = _png_info(sent)
    pixel = _first_pixel(sent)
    ok = info.state.value == "SUCCEEDED" and (width, height, depth) == (8, 4, 8)
    ok = ok and abs(pixel[0] - 255) <= 2 and abs(pixel[1] - 128) <= 3 and pixel[2] <= 2 and pixel[3] == 255
    matrix.record("image_16bit", "meshy", "submit (16-bit PNG)", survived=ok)
    assert ok, (info.error, width, height, depth, pixel)


def test_float_image_file_is_converted(api: ModuleType, emulator: Emulator, matrix: Any, tmp_path: Path) -> None:
    image = bpy.data.images.new("Plate", 12, 6, float_buffer=True)
    image.generated_color = (0.5, 0.25, 1.0, 1.0)
    path = tmp_path / "plate.exr"
    settings = bpy.context.scene.render.image_settings
    settings.file_format = "OPEN_EXR"  # the scene is thrown away after the test
    image.save_render(str(path), scene=bpy.context.scene)
    bpy.data.images.remove(image)
    assert path.read_bytes()[:4] == b"v/1\x01"  # a real OpenEXR file
    info = api.wait(api.submit("meshy", image=str(path)), timeout=60)
    sent = _sent_image(emulator)
    ok = info.state.value == "SUCCEEDED" and _png_info(sent) == (12, 6, 8)
    matrix.record("image_16bit", "meshy", "submit (float EXR)", survived=ok)
    assert ok, info.error


def test_picture_over_the_size_limit_is_downscaled_and_said_so(api: ModuleType, session: Any, emulator: Emulator,
                                                                matrix: Any, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session.providers["meshy"], "max_image_side", 32, raising=False)
    path = tmp_path / "wide.png"
    path.write_bytes(_png(64, 48, 8, (10, 200, 30, 255)))
    job_id = api.submit("meshy", image=str(path))
    said = api.get(job_id).notice or ""
    info = api.wait(job_id, timeout=60)
    sent = _sent_image(emulator)
    ok = info.state.value == "SUCCEEDED" and _png_info(sent)[:2] == (32, 24)
    ok = ok and "64x48" in said and "32x24" in said and "64x48" in (info.notice or "")
    matrix.record("image_large", "meshy", "submit", survived=ok)
    assert ok, (said, info.notice, _png_info(sent))


def test_prompt_over_the_limit_is_refused(api: ModuleType, emulator: Emulator, matrix: Any) -> None:
    with pytest.raises(Exception, match="600 characters"):
        api.submit("meshy", prompt="a knight in silver armour " * 30)
    ok = emulator.count() == 0 and api.jobs() == []
    matrix.record("long_prompt", "meshy", "submit", survived=ok)
    assert ok


@pytest.mark.parametrize("how", ["animations", "option"])
def test_unknown_claythis_motions_are_refused(api: ModuleType, emulator: Emulator, matrix: Any,
                                              assets: dict[str, Path], how: str) -> None:
    with pytest.raises(Exception, match=r"Idle_Lop") as caught:
        if how == "animations":
            api.submit("claythis", image=str(assets["sample.png"]), rig=True, animations=["Idle_Lop"])
        else:
            api.submit("claythis", image=str(assets["sample.png"]), options={"motions": "Idle_Loop, Idle_Lop"})
    ok = emulator.count() == 0 and api.jobs() == [] and "Idle_Loop_Rig" in str(caught.value)
    matrix.record("bad_motion", "claythis", f"submit ({how})", survived=ok)
    assert ok, str(caught.value)[:300]


@pytest.mark.parametrize("case", ["no_faces", "camera", "library"])
def test_bad_mesh_selections_are_refused(api: ModuleType, emulator: Emulator, matrix: Any, tmp_path: Path,
                                         case: str) -> None:
    if case == "no_faces":
        mesh = bpy.data.meshes.new("Points")
        mesh.from_pydata([(0, 0, 0), (0, 0, 1), (1, 0, 0)], [(0, 1)], [])
        target = bpy.data.objects.new("Points", mesh)
        bpy.context.scene.collection.objects.link(target)
        message = "no faces|textured"
    elif case == "camera":
        target = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
        bpy.context.scene.collection.objects.link(target)
        message = "not a mesh"
    else:
        bpy.ops.mesh.primitive_cube_add()
        bpy.context.active_object.name = "Crate"
        library_file = tmp_path / "library.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(library_file))
        bpy.ops.wm.read_homefile(use_empty=True)
        with bpy.data.libraries.load(str(library_file), link=True) as (_src, dst):  # type: ignore[func-returns-value]
            dst.objects = ["Crate"]
        target = dst.objects[0]
        bpy.context.scene.collection.objects.link(target)
        message = "linked from a library"
    with pytest.raises(Exception, match=message):
        api.submit("meshy", mesh=[target])
    ok = emulator.count() == 0 and api.jobs() == []
    matrix.record("bad_mesh", "meshy", f"submit ({case})", survived=ok)
    assert ok


# -- keys in every file ---------------------------------------------------------------------------------

SECRETS = {"meshy": "msy_FAULT_KEY_0001", "rodin": "rodin_FAULT_KEY_0002", "claythis": "clay_FAULT_KEY_0003",
           "image3d": "eyJhbGciOi.FAULT_TOKEN.0004", "claid": "claid_FAULT_KEY_0005"}


def test_no_key_in_any_file(api: ModuleType, ext: ModuleType, session: Any, emulator: Emulator, matrix: Any,
                            assets: dict[str, Path], tmp_path: Path) -> None:
    prefs = bpy.context.preferences.addons[ext.__name__].preferences
    log_path = tmp_path / "marionette.log"
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    watched = [logging.getLogger(ext.__name__), logging.getLogger("urllib3")]
    levels = [logger.level for logger in watched]
    logging.getLogger().addHandler(handler)
    for logger in watched:
        logger.setLevel(logging.DEBUG)
    try:
        for provider, secret in SECRETS.items():
            getattr(emulator, provider).api_key = secret
            setattr(prefs, f"{provider}_api_key", secret)
        # A provider that echoes the key back: while retrying, and in the message the job fails with.
        echo = {"message": f"bad key {SECRETS['meshy']}"}
        emulator.inject("GET", r"^/openapi/v1/image-to-3d/[^/]+$", status=503, body=echo)
        emulator.inject("GET", r"^/openapi/v1/image-to-3d/[^/]+$", status=401, body=echo)
        failed = api.wait(api.submit("meshy", image=str(assets["sample.png"])), timeout=60)
        assert failed.state.value == "FAILED" and "rejected" in (failed.error or "")
        infos = [api.wait(api.submit(provider, image=str(assets["sample.png"]),
                                     options={"number_of_images": 1} if provider == "claid" else None), timeout=120)
                 for provider in SECRETS]
        assert all(i.state.value == "SUCCEEDED" for i in infos), [(i.provider, i.error) for i in infos]
        blend = tmp_path / "scene.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        bpy.ops.wm.save_userpref()
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        for logger, level in zip(watched, levels, strict=True):
            logger.setLevel(level)
    user_root = Path(bpy.utils.resource_path("USER"))
    files = [blend, log_path, *user_root.rglob("*"), *session.root.rglob("*"), *Path(bpy.app.tempdir).rglob("*")]
    searched = [p for p in dict.fromkeys(files) if p.is_file() and p.name != "keys.json"]
    leaks = [f"{p.name}: {provider}" for p in searched for provider, secret in SECRETS.items()
             if secret.encode() in p.read_bytes()]
    kept = json.loads((session.root / "keys.json").read_text())
    for provider in SECRETS:
        setattr(prefs, f"{provider}_api_key", "")
    ok = not leaks and len(searched) > 10 and log_path.stat().st_size > 0
    matrix.record("key_files", "all", "journal, logs, .blend, userpref, job folders", injected=len(SECRETS),
                  survived=len(SECRETS) if ok else 0)
    assert ok, leaks
    assert all(kept.get(p) == s for p, s in SECRETS.items())  # where keys do belong, and only there


# -- Blender quits (last: they leave a new session behind) ------------------------------------------------


@pytest.mark.parametrize("provider", ["meshy", "rodin"])
def test_quit_while_polling_resumes_at_the_next_start(api: ModuleType, ext: ModuleType, emulator: Emulator,
                                                      matrix: Any, assets: dict[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch, provider: str) -> None:
    state: Any = getattr(emulator, provider)
    monkeypatch.setattr(state, "pending_polls", 10**6)
    job_id = api.submit(provider, image=str(assets["sample.png"]))
    session_mod = _session_module(ext)
    deadline = time.monotonic() + 30
    while not api.get(job_id).task_ids and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # a few polls
    import addon_utils

    addon_utils.disable(ext.__name__, default_set=True)
    journal = json.loads((session_mod.user_folder() / "journal.json").read_text())
    stored = next(j for j in journal["jobs"] if j["id"] == job_id)
    for task in state.tasks.values():  # the provider finishes while Blender is closed
        task.pending_polls, task.running_polls = 0, 1
    addon_utils.enable(ext.__name__, default_set=True)
    info = api.wait(job_id, timeout=120)
    made = len(state.tasks)
    ok = stored["state"] == "RUNNING" and info.state.value == "SUCCEEDED" and not info.imported and made == 1
    if ok:
        info = api.import_result(job_id)
        ok = info.imported and bool(info.objects)
    matrix.record("quit_polling", provider, "poll (Blender)", survived=ok, lost=max(0, made - 1))
    session_mod.get().store.remove(job_id)
    assert ok, (stored["state"], info)


def test_quit_during_a_download_continues_with_range(api: ModuleType, ext: ModuleType, emulator: Emulator,
                                                     matrix: Any, assets: dict[str, Path]) -> None:
    emulator.inject_fault("GET", MODEL, "stall", keep=0.5, seconds=4.0)
    job_id = api.submit("meshy", image=str(assets["sample.png"]))
    session_mod = _session_module(ext)
    job_dir = session_mod.get().store.job_dir(job_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        part = job_dir / "model.glb.part"
        if part.is_file() and part.stat().st_size > 0:
            break
        time.sleep(0.01)
    import addon_utils

    began = time.monotonic()
    addon_utils.disable(ext.__name__, default_set=True)
    quick = time.monotonic() - began < 3.0  # the stalled read was broken off, not waited out
    kept = (job_dir / "model.glb.part").stat().st_size
    addon_utils.enable(ext.__name__, default_set=True)
    info = api.wait(job_id, timeout=120)
    ranges = [r.range for r in emulator.requests if r.path.endswith("/model.glb")]
    ok = (quick and kept > 0 and info.state.value == "SUCCEEDED" and ranges == [None, f"bytes={kept}-"]
          and len(emulator.meshy.tasks) == 1)
    if ok:
        served = Path(emulator.meshy.assets["model"]).read_bytes()
        ok = Path(next(f for f in info.files if f.endswith("model.glb"))).read_bytes() == served
    matrix.record("quit_download", "meshy", "download (Blender)", survived=ok, lost=0 if ok else 1)
    session_mod.get().store.remove(job_id)
    assert ok, (quick, kept, info.state, info.error, ranges)
