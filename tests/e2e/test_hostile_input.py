"""Careless or hostile input through the scripting API and the preferences (real Blender, installed zip):
each gives a clear InputError (or a refusal under the key field) before anything is sent."""

from __future__ import annotations

import importlib
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import pytest

from tests.emulator import Emulator


@pytest.fixture(scope="module")
def matrix(_installed: str) -> Iterator[Any]:
    from tests.unit import fault_matrix

    if not os.environ.get("MARIONETTE_FAULT_SUITE"):
        fault_matrix.MATRIX.suite = "blender-" + ".".join(str(v) for v in bpy.app.version)
    yield fault_matrix.MATRIX
    fault_matrix.MATRIX.save()


def _errors(api: ModuleType) -> ModuleType:
    return importlib.import_module(api.__name__.rsplit(".", 1)[0] + ".core.errors")


def _claims_huge(tmp_path: Path) -> Path:
    """A PNG saved by Blender whose header then claims 20000x20000 pixels (its CRC made right)."""
    image = bpy.data.images.new("small", 8, 8)
    path = tmp_path / "huge.png"
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    struct.pack_into(">II", data, 16, 20000, 20000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_bad_scripting_input_gives_clear_input_errors(api: ModuleType, emulator: Emulator, matrix: Any,
                                                      assets: dict[str, Path], tmp_path: Path) -> None:
    errors = _errors(api)
    sample = str(assets["sample.png"])
    cases: dict[str, tuple[Any, str]] = {}

    def attempt(name: str, call: Any, expected: str) -> None:
        try:
            call()
        except errors.InputError as exc:
            cases[name] = (exc, expected)
        except Exception as exc:  # the bug: a raw Blender or Python error
            cases[name] = (exc, expected)
        else:
            cases[name] = (None, expected)

    attempt("huge PNG header", lambda: api.submit("meshy", image=str(_claims_huge(tmp_path))), "20000x20000")
    attempt("nan option", lambda: api.submit("meshy", image=sample,
                                              options={"should_remesh": True, "target_polycount": float("nan")}),
            "finite")
    attempt("animations as a string", lambda: api.submit("meshy", image=sample, rig=True, animations="Idle"),
            "list")
    mesh = bpy.data.meshes.new("gone")
    obj = bpy.data.objects.new("gone", mesh)
    bpy.context.scene.collection.objects.link(obj)
    bpy.data.objects.remove(obj)
    attempt("deleted mesh object", lambda: api.submit("meshy", mesh=obj, rig=True), "deleted")
    attempt("task id as a path", lambda: api.recover("meshy", "../../etc/passwd"), "not a task id")
    bad = {name: f"{type(exc).__name__}: {exc}" for name, (exc, expected) in cases.items()
           if not isinstance(exc, errors.InputError) or expected not in str(exc)}
    nothing_sent = emulator.count() == 0 and api.jobs() == []
    for name in cases:
        matrix.record("bad_api_input", "meshy", name, survived=name not in bad and nothing_sent)
    assert not bad, bad
    assert nothing_sent


BAD_KEYS = {"line break": "msy_0123456789\nabcdef", "not plain ASCII": "msy_0123456789abcdef\u200b",
            "space": "msy_0123 456789abcdef"}


@pytest.mark.parametrize("problem", list(BAD_KEYS))
def test_the_preferences_refuse_a_bad_key(ext: ModuleType, session: Any, matrix: Any, problem: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    prefs = bpy.context.preferences.addons[ext.__name__].preferences
    key = BAD_KEYS[problem]
    before = session.keys.get("rodin")
    prefs.rodin_api_key = key
    stored = session.keys.get("rodin")
    said = session.key_problems.get("rodin", "")
    keyfile = session.keys.path.read_text() if session.keys.path.exists() else ""
    core = key.strip()[:10]
    ok = stored == before and problem in said and core not in said and core not in caplog.text \
        and core not in keyfile
    session.key_problems.pop("rodin", None)
    matrix.record("bad_key", "rodin", "preferences", survived=ok)
    assert ok, (stored, said)
    prefs.rodin_api_key = "rodin_key_0123456789"  # a good key is taken
    assert session.keys.get("rodin") == "rodin_key_0123456789" and "rodin" not in session.key_problems
    prefs.rodin_api_key = ""
