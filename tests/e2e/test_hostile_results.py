"""Result files that name files outside their job's folder (real Blender): glTF/GLB image and buffer URIs
and FBX texture paths are checked before import. Hostile files are made with bpy at test time: the test
character is exported, then its glTF JSON is rewritten, or an FBX is exported with its texture outside.

What is proven: the import is refused with a message naming the reference, the file stays in the job's
folder, nothing new is in bpy.data, and no image in the file holds (packed) or points at the outside
file. Each hostile file is also shown to be harmful without the check (the bare Blender importer packs
or references the outside file), so the test cannot pass by accident."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import pytest

from addon.blender import importer
from addon.core.resultcheck import ResultRefused, check_model
from tests.assets.cache import ensure_assets
from tests.emulator import Emulator

MARKER = b"MARIONETTE-SECRET-0123456789"
CURSOR = (0.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return ensure_assets()


@pytest.fixture(scope="module")
def matrix(_installed: str) -> Iterator[Any]:
    """The fault counts (tests/unit/fault_matrix.py), imported once the extension (and the pydantic it
    bundles) is enabled; written when the module ends."""
    from tests.unit import fault_matrix

    if not os.environ.get("MARIONETTE_FAULT_SUITE"):
        fault_matrix.MATRIX.suite = "blender-" + ".".join(str(v) for v in bpy.app.version)
    yield fault_matrix.MATRIX
    fault_matrix.MATRIX.save()


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """user/jobs/j1 (the job's folder) and, outside it, user/keys.json and /outside/secret.png: both real
    PNG pictures carrying MARKER, so an importer that follows a reference loads and packs them."""
    job = tmp_path / "user" / "jobs" / "j1"
    job.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    picture = _png(outside / "secret.png")
    keys = tmp_path / "user" / "keys.json"
    shutil.copyfile(picture, keys)
    return {"job": job, "outside": outside, "secret": picture, "keys": keys}


def _png(path: Path) -> Path:
    image = bpy.data.images.new("secret", 4, 4)
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    with open(path, "ab") as fh:
        fh.write(MARKER)  # after IEND: readers ignore it, a packed copy keeps it
    return path


def _glb_parts(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    json_len = struct.unpack_from("<I", data, 12)[0]
    document = json.loads(data[20:20 + json_len])
    rest = data[20 + json_len:]
    binary = rest[8:8 + struct.unpack_from("<I", rest, 0)[0]] if len(rest) >= 8 else b""
    return document, binary


def _write_glb(path: Path, document: dict[str, Any], binary: bytes) -> Path:
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body)
    return path


def _glb_with_image_uri(files: dict[str, Path], dest: Path, uri: str) -> Path:
    document, binary = _glb_parts(files["model.glb"])
    assert document.get("images"), "the test model has a texture"
    document["images"][0] = {"uri": uri, "mimeType": "image/png"}
    return _write_glb(dest, document, binary)


def _gltf_with_buffer_outside(files: dict[str, Path], job: Path, outside: Path) -> Path:
    """A .gltf whose .bin sits outside the job's folder (its buffer URI climbs out to it)."""
    document, binary = _glb_parts(files["model.glb"])
    (outside / "model.bin").write_bytes(binary + MARKER)
    document["buffers"] = [{"byteLength": len(binary), "uri": "../../../outside/model.bin"}]
    path = job / "model.gltf"
    path.write_text(json.dumps(document))
    return path


def _fbx_with_texture_outside(files: dict[str, Path], dest: Path, secret: Path, path_mode: str) -> Path:
    """The textured test model exported to FBX with its texture file outside the job's folder."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(files["model.glb"]))
    image = next(img for img in bpy.data.images if img.has_data or img.packed_file is not None)
    if image.packed_file is not None:
        image.unpack(method="REMOVE")
    image.filepath = str(secret)
    image.reload()
    export: Any = bpy.ops.export_scene.fbx
    export(filepath=str(dest), check_existing=False, object_types={"MESH"}, path_mode=path_mode,
           embed_textures=False)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return dest


def _leaks(job: Path) -> list[str]:
    """Images in this Blender file that hold the outside file packed, or point outside the job's folder."""
    found = []
    for image in bpy.data.images:
        packed = image.packed_file
        if packed is not None and MARKER in bytes(packed.data):
            found.append(f"{image.name}: packed")
        if image.filepath and image.source == "FILE" and not image.packed_file:
            where = Path(bpy.path.abspath(image.filepath)).resolve()
            if job.resolve() not in where.parents and where.exists():
                found.append(f"{image.name}: {where}")
    return found


def _bare_import(path: Path) -> None:
    """Blender's own importer, as Marionette calls it, without the check."""
    if path.suffix == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path), use_image_search=True)
    else:
        bpy.ops.import_scene.gltf(filepath=str(path), import_pack_images=True)


CASES: dict[str, Callable[[dict[str, Path], dict[str, Path]], Path]] = {
    "glb image ../../keys.json": lambda f, w: _glb_with_image_uri(f, w["job"] / "model.glb", "../../keys.json"),
    "glb image absolute path": lambda f, w: _glb_with_image_uri(f, w["job"] / "model.glb", str(w["secret"])),
    "glb image %2e%2e escaped": lambda f, w: _glb_with_image_uri(f, w["job"] / "model.glb",
                                                                  "%2e%2e/%2e%2e/keys.json"),
    "glb image file:// URL": lambda f, w: _glb_with_image_uri(f, w["job"] / "model.glb",
                                                               w["secret"].as_uri()),
    "gltf buffer ../ outside": lambda f, w: _gltf_with_buffer_outside(f, w["job"], w["outside"]),
    "fbx texture relative path": lambda f, w: _fbx_with_texture_outside(f, w["job"] / "model.fbx", w["secret"],
                                                                        "RELATIVE"),
    "fbx texture absolute path": lambda f, w: _fbx_with_texture_outside(f, w["job"] / "model.fbx", w["secret"],
                                                                        "ABSOLUTE"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_result_naming_outside_files_is_refused(scene: bpy.types.Scene, files: dict[str, Path],
                                                  world: dict[str, Path], case: str, matrix: Any) -> None:
    path = CASES[case](files, world)
    before = {name: len(getattr(bpy.data, name)) for name in ("objects", "images", "meshes", "materials")}
    with pytest.raises(ResultRefused) as refused:
        importer.import_character(path, collection_name="Hostile", location=CURSOR)
    message = str(refused.value)
    after = {name: len(getattr(bpy.data, name)) for name in before}
    leaks = _leaks(world["job"])
    ok = (path.name in message and "job's folder" in message and path.is_file() and after == before
          and not leaks)
    matrix.record("result_refs", "all", case.split()[0], survived=ok)
    assert ok, (message, after, before, leaks)


@pytest.mark.parametrize("case", ["glb image ../../keys.json", "gltf buffer ../ outside",
                                  "fbx texture relative path"])
def test_the_hostile_files_are_harmful_without_the_check(scene: bpy.types.Scene, files: dict[str, Path],
                                                         world: dict[str, Path], case: str) -> None:
    """The control: Blender's importer alone reads (packs or references) the outside file."""
    path = CASES[case](files, world)
    if case.startswith("gltf"):
        bpy.ops.import_scene.gltf(filepath=str(path))
        assert len(bpy.data.meshes) >= 1  # the mesh was built from the outside buffer
        return
    _bare_import(path)
    assert _leaks(world["job"]), "the hostile file did not reach outside on its own"


def test_references_inside_the_job_folder_still_import(scene: bpy.types.Scene, files: dict[str, Path],
                                                      world: dict[str, Path]) -> None:
    job = world["job"]
    document, binary = _glb_parts(files["model.glb"])
    (job / "tex").mkdir()
    shutil.copyfile(world["secret"], job / "tex" / "skin.png")
    (job / "model.bin").write_bytes(binary)
    document["buffers"] = [{"byteLength": len(binary), "uri": "model.bin"}]
    document["images"][0] = {"uri": "tex/skin%2Epng", "mimeType": "image/png"}
    gltf = job / "model.gltf"
    gltf.write_text(json.dumps(document))
    check_model(gltf)
    result = importer.import_character(gltf, collection_name="Inside", location=CURSOR)
    assert result.objects
    check_model(files["rigged.fbx"])  # an FBX with its texture embedded (and an absolute FileName beside it)
    check_model(files["rigged.glb"])


def test_a_hostile_result_fails_the_job_and_is_kept(api: ModuleType, session: Any, emulator: Emulator,
                                                    assets: dict[str, Path], tmp_path: Path, matrix: Any) -> None:
    """Through the add-on: Meshy's model names the key file next to the jobs folder; the job says why it
    was not imported, its files stay, and no image anywhere holds the key file."""
    hostile = _glb_with_image_uri(assets, tmp_path / "hostile.glb", "../../keys.json")
    meshy: Any = emulator.meshy
    saved = dict(meshy.assets)
    meshy.assets["model"] = meshy.assets["model:glb"] = hostile
    keys = session.root / "keys.json"
    planted = not keys.exists()
    if planted:
        keys.write_bytes(_png(tmp_path / "secret.png").read_bytes())
    try:
        job_id = api.submit("meshy", image=str(assets["sample.png"]), rig=False)
        info = api.wait(job_id, timeout=60)
    finally:
        meshy.assets.clear()
        meshy.assets.update(saved)
        if planted:
            keys.unlink()
    folder = session.store.job_dir(job_id)
    kept = [p.name for p in folder.iterdir() if p.suffix == ".glb"]
    packed = [img.name for img in bpy.data.images if img.packed_file is not None
              and MARKER in bytes(img.packed_file.data)]
    ok = (info.state.value == "SUCCEEDED" and not info.imported and "keys.json" in (info.error or "")
          and "job's folder" in (info.error or "") and kept and not packed)
    matrix.record("result_refs", "meshy", "job", survived=ok)
    assert ok, (info.state, info.error, kept, packed)
    errors = importlib.import_module(api.__name__.rsplit(".", 1)[0] + ".core.errors")
    with pytest.raises(errors.ImportFailed):
        api.import_result(job_id)  # Import again: refused again, the same way
