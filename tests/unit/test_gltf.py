"""core/gltf.py without Blender: GLBs built here with struct and json, read and written back."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from addon.core import gltf
from addon.core.formats import sniff_bytes, sniff_file

DOC: dict[str, Any] = {"asset": {"version": "2.0"}, "buffers": [{"byteLength": 6}], "nodes": [{"name": "hips"}]}


def _glb(doc: dict[str, Any], binary: bytes | None = None, *, version: int = 2) -> bytes:
    """A GLB the way the glTF 2.0 spec lays it out: header, a padded JSON chunk, a padded BIN chunk."""
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text
    if binary is not None:
        padded = binary + b"\x00" * (-len(binary) % 4)
        body += struct.pack("<I4s", len(padded), b"BIN\x00") + padded
    return struct.pack("<4sII", b"glTF", version, 12 + len(body)) + body


def test_header_and_version() -> None:
    data = _glb(DOC)
    assert gltf.glb_header(data) == (2, len(data))
    assert gltf.is_glb(data) and sniff_bytes(data[:32]) == "glb"
    old = _glb(DOC, version=1)
    assert gltf.glb_header(old) == (1, len(old)) and not gltf.is_glb(old) and sniff_bytes(old[:32]) is None
    assert gltf.glb_header(b"glTF\x02\x00") is None and gltf.glb_header(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x00") is None


def test_chunks_are_read_where_the_header_says() -> None:
    data = _glb(DOC, b"\x01\x02\x03\x04\x05\x06")
    first = gltf.first_chunk(data)
    assert first is not None and first[1] == b"JSON" and first[0] % 4 == 0
    second = gltf.chunk_header(data, 20 + first[0])
    assert second == (8, b"BIN\x00")
    assert gltf.chunk_header(data, len(data) - 4) is None and gltf.first_chunk(data[:19]) is None


def test_parse_gives_the_document_and_the_binary_chunk() -> None:
    document, binary = gltf.parse_glb(_glb(DOC, b"\x01\x02\x03\x04\x05\x06"))
    assert document == DOC and binary == b"\x01\x02\x03\x04\x05\x06\x00\x00"
    document, binary = gltf.parse_glb(_glb(DOC))
    assert document == DOC and binary is None


@pytest.mark.parametrize(("data", "reason"), [
    (b"glTF\x02\x00\x00\x00\x20\x00\x00\x00", "truncated GLB"),
    (struct.pack("<4sII", b"glTF", 2, 28) + struct.pack("<I4s", 8, b"BIN\x00") + b"\x00" * 8,
     "GLB without a JSON chunk first"),
    (b"PK\x03\x04" + b"\x00" * 30, "not a GLB"),
])
def test_parse_refuses_what_is_no_glb(data: bytes, reason: str) -> None:
    with pytest.raises(gltf.GlbError, match=reason):
        gltf.parse_glb(data)


def test_parse_refuses_a_document_that_is_not_an_object() -> None:
    text = b"[1, 2]  "
    data = struct.pack("<4sII", b"glTF", 2, 20 + len(text)) + struct.pack("<I4s", len(text), b"JSON") + text
    with pytest.raises(gltf.GlbError, match="not a glTF document"):
        gltf.parse_glb(data)


def test_build_matches_the_spec_layout_and_round_trips(tmp_path: Path) -> None:
    binary = b"\x01\x02\x03\x04\x05\x06"
    built = gltf.build_glb(DOC, binary)
    assert len(built) % 4 == 0 and gltf.glb_header(built) == (2, len(built))
    assert gltf.parse_glb(built) == (DOC, binary + b"\x00\x00")
    text = json.dumps(DOC, separators=(",", ":")).encode()
    json_length = len(text) + (-len(text) % 4)
    assert built[12:20] == struct.pack("<I4s", json_length, b"JSON")
    assert built[20 + json_length:28 + json_length] == struct.pack("<I4s", 8, b"BIN\x00")
    path = tmp_path / "slim.glb"
    gltf.write_glb(path, DOC)
    assert sniff_file(path) == "glb" and gltf.read_gltf(path) == (DOC, None)


def test_read_glb_json_reads_only_the_json_chunk(tmp_path: Path) -> None:
    path = tmp_path / "model.glb"
    path.write_bytes(_glb(DOC, b"\xff" * 1000))
    assert gltf.read_glb_json(path) == DOC
    assert gltf.read_json_chunk(path).rstrip() == json.dumps(DOC).encode()


@pytest.mark.parametrize(("data", "reason"), [
    (b"glTF\x02\x00\x00\x00", "the GLB is cut short"),
    (_glb(DOC)[:30], "the GLB is cut short"),
    (struct.pack("<4sII", b"glTF", 2, 28) + struct.pack("<I4s", 8, b"BIN\x00") + b"\x00" * 8,
     "the GLB has no readable JSON chunk"),
    (struct.pack("<4sII", b"glTF", 2, 28) + struct.pack("<I4s", gltf.MAX_JSON_BYTES + 4, b"JSON") + b"{}      ",
     "the GLB has no readable JSON chunk"),
    (struct.pack("<4sII", b"glTF", 2, 28) + struct.pack("<I4s", 8, b"JSON") + b"[1, 2]  ",
     "its glTF JSON is not an object"),
    (struct.pack("<4sII", b"glTF", 2, 28) + struct.pack("<I4s", 8, b"JSON") + b"{\"a\": \xff}",
     "its glTF JSON is not UTF-8"),
    (struct.pack("<4sII", b"glTF", 2, 28) + struct.pack("<I4s", 8, b"JSON") + b"{oops}  ",
     "Expecting property name"),
])
def test_read_glb_json_says_what_is_wrong(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "bad.glb"
    path.write_bytes(data)
    with pytest.raises(gltf.GlbError, match=reason):
        gltf.read_glb_json(path)


def test_read_gltf_reads_a_json_gltf_file_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.gltf"
    path.write_text(json.dumps(DOC))
    assert gltf.read_gltf(path) == (DOC, None)
    path.write_text("[]")
    with pytest.raises(gltf.GlbError, match="not a glTF document"):
        gltf.read_gltf(path)
    assert gltf.json_document(json.dumps(DOC).encode()) == DOC
    monkeypatch.setattr(gltf, "MAX_JSON_BYTES", 64)  # the real bound is 256 MiB
    with pytest.raises(gltf.GlbError, match="implausibly large"):
        gltf.json_document(b" " * 65)


def test_animation_names_in_file_order(tmp_path: Path) -> None:
    """What the importer orders and names actions by: the checked file's names, the unnamed ones as
    Blender's importer names them; the document is the one the result check read (one parse)."""
    from addon.core.resultcheck import check_model

    doc = {**DOC, "animations": [{"name": "Walk"}, {}, {"name": "Run"}, "damaged"]}
    path = tmp_path / "anims.glb"
    path.write_bytes(_glb(doc, b"\x00" * 6))
    document = check_model(path)
    assert document is not None
    assert gltf.animation_names(document) == ["Walk", "Animation_1", "Run"]
    assert gltf.animation_names(DOC) == [] and gltf.animation_names({"animations": {"name": "x"}}) == []
