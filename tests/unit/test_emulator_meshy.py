"""The Meshy emulator, exercised over real HTTP on 127.0.0.1 with ``requests``."""

from __future__ import annotations

import base64
import json
import os
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.emulator import Emulator, assets_from_dir

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "/openapi/v1/image-to-3d"
MULTI = "/openapi/v1/multi-image-to-3d"
TEXT = "/openapi/v2/text-to-3d"
REMESH = "/openapi/v1/remesh"
RIG = "/openapi/v1/rigging"
ANIM = "/openapi/v1/animations"


def make_glb(tag: str) -> bytes:
    """A minimal valid GLB: header and one JSON chunk (the generator field tells files apart)."""
    doc = json.dumps({"asset": {"version": "2.0", "generator": tag}}).encode()
    doc += b" " * (-len(doc) % 4)
    return struct.pack("<4sII", b"glTF", 2, 20 + len(doc)) + struct.pack("<I4s", len(doc), b"JSON") + doc


def make_png() -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


PNG_URI = data_uri("image/png", make_png())


@pytest.fixture
def asset_dir(tmp_path: Path) -> Path:
    for name in ("model", "rigged", "walking", "running", "animation", "anim_92"):
        (tmp_path / f"{name}.glb").write_bytes(make_glb(name))
    return tmp_path


@pytest.fixture
def emu(asset_dir: Path) -> Iterator[Emulator]:
    with Emulator(assets=assets_from_dir(asset_dir)) as emulator:
        yield emulator
    assert not emulator.errors, emulator.errors[0]


def post(emu: Emulator, path: str, body: Any, **kw: Any) -> requests.Response:
    return requests.post(emu.base_url + path, json=body, timeout=10, **kw)


def get(emu: Emulator, path: str, **kw: Any) -> requests.Response:
    return requests.get(emu.base_url + path, timeout=10, **kw)


def create(emu: Emulator, path: str, body: dict[str, Any]) -> str:
    response = post(emu, path, body)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["result"]
    return task_id


def poll_done(emu: Emulator, path: str, task_id: str) -> dict[str, Any]:
    for _ in range(20):
        task: dict[str, Any] = get(emu, f"{path}/{task_id}").json()
        if task["status"] in ("SUCCEEDED", "FAILED", "CANCELED"):
            return task
    raise AssertionError("task never finished")


def model_task(emu: Emulator) -> str:
    """A textured image-to-3D model that rigging takes: remeshed under the 300,000-face limit."""
    task_id = create(emu, IMAGE, {"image_url": PNG_URI, "should_remesh": True, "target_polycount": 30000})
    assert poll_done(emu, IMAGE, task_id)["status"] == "SUCCEEDED"
    return task_id


def rig_task(emu: Emulator) -> str:
    task_id = create(emu, RIG, {"input_task_id": model_task(emu), "height_meters": 1.8})
    assert poll_done(emu, RIG, task_id)["status"] == "SUCCEEDED"
    return task_id


# -- progression ---------------------------------------------------------------------------------


def test_progression_and_preceding_tasks(emu: Emulator) -> None:
    response = post(emu, IMAGE, {"image_url": PNG_URI, "should_texture": True, "enable_pbr": True})
    assert response.status_code == 202
    assert response.headers["x-api-version"]
    task_id = response.json()["result"]
    seen = []
    for _ in range(5):
        r = get(emu, f"{IMAGE}/{task_id}")
        assert r.status_code == 200 and r.headers["x-api-version"]
        task = r.json()
        seen.append((task["status"], task["preceding_tasks"], task["progress"]))
        if task["status"] == "PENDING":
            assert task["started_at"] == 0 and task["finished_at"] == 0 and task["model_urls"] == {}
        if task["status"] != "SUCCEEDED":
            assert task["finished_at"] == 0 and task["task_error"] == {"message": ""}
    assert seen == [("PENDING", 2, 0), ("PENDING", 1, 0), ("IN_PROGRESS", 0, 33), ("IN_PROGRESS", 0, 66),
                    ("SUCCEEDED", 0, 100)]
    assert task["type"] == "image-to-3d"
    assert task["created_at"] <= task["started_at"] <= task["finished_at"] < task["expires_at"]
    assert sorted(task["model_urls"]) == ["fbx", "glb", "obj", "stl", "usdz"]
    assert set(task["texture_urls"][0]) == {"base_color", "metallic", "normal", "roughness", "emission"}
    assert task["consumed_credits"] == 30 and task["task_error"] == {"message": ""}
    # terminal tasks stay put
    assert get(emu, f"{IMAGE}/{task_id}").json()["status"] == "SUCCEEDED"
    assert emu.meshy.tasks[task_id].request["enable_pbr"] is True


def test_custom_poll_counts_and_target_formats(emu: Emulator) -> None:
    emu.meshy.pending_polls = 0
    emu.meshy.running_polls = 1
    task_id = create(emu, IMAGE, {"image_url": PNG_URI, "target_formats": ["glb", "3mf"], "should_texture": False,
                                  "ai_model": "meshy-5"})
    first = get(emu, f"{IMAGE}/{task_id}").json()
    assert (first["status"], first["progress"]) == ("IN_PROGRESS", 50)
    done = get(emu, f"{IMAGE}/{task_id}").json()
    assert done["status"] == "SUCCEEDED"
    assert sorted(done["model_urls"]) == ["3mf", "glb"]
    assert done["texture_urls"] == [] and done["consumed_credits"] == 5


def test_unknown_task_and_wrong_endpoint_are_404(emu: Emulator) -> None:
    r = get(emu, f"{IMAGE}/nope")
    assert r.status_code == 404 and r.json() == {"message": "Task not found"}
    task_id = create(emu, IMAGE, {"image_url": PNG_URI})
    assert get(emu, f"{RIG}/{task_id}").status_code == 404
    assert requests.delete(f"{emu.base_url}{ANIM}/nope", timeout=5).status_code == 404


def test_delete_deletes_permanently(emu: Emulator) -> None:
    """Seed 002, DELETE /openapi/v1/image-to-3d/:id: "permanently deletes ... This action is
    irreversible": afterwards the task is unknown (404), even in the list, and its files are gone."""
    task_id = create(emu, IMAGE, {"image_url": PNG_URI})
    done = poll_done(emu, IMAGE, task_id)
    r = requests.delete(f"{emu.base_url}{IMAGE}/{task_id}", timeout=5)
    assert r.status_code == 200 and r.json() == {}
    r = get(emu, f"{IMAGE}/{task_id}")
    assert r.status_code == 404 and r.json() == {"message": "Task not found"}
    assert task_id not in [t["id"] for t in get(emu, IMAGE).json()]
    assert requests.get(done["model_urls"]["glb"], timeout=5).status_code == 404
    assert requests.delete(f"{emu.base_url}{IMAGE}/{task_id}", timeout=5).status_code == 404
    assert [t.id for t in emu.meshy.deleted] == [task_id] and emu.meshy.balance == 1000 - 30  # no refund


def test_list_pages_and_sorts(emu: Emulator) -> None:
    ids = [create(emu, IMAGE, {"image_url": PNG_URI}) for _ in range(3)]
    create(emu, TEXT, {"mode": "preview", "prompt": "a knight"})
    newest = get(emu, IMAGE, params={"page_size": 2}).json()
    assert isinstance(newest, list) and [t["id"] for t in newest] == ids[::-1][:2]
    oldest = get(emu, IMAGE, params={"page_num": 2, "page_size": 2, "sort_by": "+created_at"}).json()
    assert [t["id"] for t in oldest] == ids[2:]
    assert get(emu, IMAGE, params={"page_size": 51}).status_code == 400
    assert len(get(emu, TEXT).json()) == 1


# -- validation ----------------------------------------------------------------------------------

BAD_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    (IMAGE, {}, "image_url"),
    (IMAGE, {"image_url": "ftp://example.com/a.png"}, "image_url"),
    (IMAGE, {"image_url": "data:image/png;base64,@@not-base64@@"}, "Malformed"),
    (IMAGE, {"image_url": data_uri("image/png", b"definitely not a png")}, "Malformed"),
    (IMAGE, {"image_url": data_uri("image/png", JPEG)}, "Malformed"),
    (IMAGE, {"image_url": data_uri("image/gif", b"GIF89a....")}, "Unsupported"),
    (IMAGE, {"image_url": "http://127.0.0.1:9/a.png"}, "Unreachable"),
    (IMAGE, {"image_url": PNG_URI, "should_texture": False, "enable_pbr": True}, "enable_pbr"),
    (IMAGE, {"image_url": PNG_URI, "ai_model": "meshy-4"}, "ai_model"),
    (IMAGE, {"image_url": PNG_URI, "topology": "ngon"}, "topology"),
    (IMAGE, {"image_url": PNG_URI, "target_polycount": 99}, "target_polycount"),
    (IMAGE, {"image_url": PNG_URI, "target_polycount": 300_001}, "target_polycount"),
    (IMAGE, {"image_url": PNG_URI, "pose_mode": "x-pose"}, "pose_mode"),
    (IMAGE, {"image_url": PNG_URI, "target_formats": ["glb", "dae"]}, "target_formats"),
    (IMAGE, {"image_url": PNG_URI, "should_texture": "yes"}, "should_texture"),
    (MULTI, {"image_urls": []}, "between 1 and 4"),
    (MULTI, {"image_urls": [PNG_URI] * 5}, "between 1 and 4"),
    (TEXT, {"mode": "preview", "prompt": "x" * 601}, "prompt"),
    (TEXT, {"mode": "preview"}, "prompt"),
    (TEXT, {"mode": "draft", "prompt": "a cat"}, "mode"),
    (RIG, {}, "model_url"),
    (RIG, {"model_url": data_uri("application/octet-stream", b"not a glb at all")}, "GLB"),
    (RIG, {"model_url": "https://example.com/character.fbx"}, "extension"),
    (RIG, {"model_url": data_uri("model/gltf-binary", make_glb("x")), "height_meters": 0}, "height_meters"),
    (ANIM, {"action_id": 92}, "rig_task_id"),
]


@pytest.mark.parametrize(("path", "body", "fragment"), BAD_REQUESTS)
def test_validation_errors(emu: Emulator, path: str, body: dict[str, Any], fragment: str) -> None:
    r = post(emu, path, body)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["message"]
    assert emu.meshy.tasks == {} and emu.meshy.balance == 1000


def test_valid_inputs_accepted(emu: Emulator) -> None:
    create(emu, IMAGE, {"image_url": data_uri("image/jpeg", JPEG), "pose_mode": "t-pose", "topology": "quad",
                        "target_polycount": 100, "should_remesh": True})
    create(emu, IMAGE, {"image_url": "https://example.com/photo.png"})
    create(emu, MULTI, {"image_urls": [PNG_URI, data_uri("image/jpeg", JPEG)]})
    create(emu, RIG, {"model_url": data_uri("application/octet-stream", make_glb("mine"))})
    create(emu, RIG, {"model_url": "https://example.com/hero.glb", "height_meters": 2})
    assert emu.meshy.created == {"image-to-3d": 2, "multi-image-to-3d": 1, "rig": 2}
    assert post(emu, IMAGE, "not an object").status_code == 400
    bad_json = requests.post(emu.base_url + IMAGE, data=b"{nope", timeout=5)
    assert bad_json.status_code == 400 and bad_json.json() == {"message": "Invalid JSON body"}


def test_references_to_other_tasks(emu: Emulator) -> None:
    assert post(emu, RIG, {"input_task_id": "missing"}).status_code == 404
    pending = create(emu, IMAGE, {"image_url": PNG_URI, "should_remesh": True})
    r = post(emu, RIG, {"input_task_id": pending})
    assert r.status_code == 400 and "not succeeded" in r.json()["message"]
    assert post(emu, TEXT, {"mode": "refine", "preview_task_id": "missing"}).status_code == 404
    preview = create(emu, TEXT, {"mode": "preview", "prompt": "a knight"})
    assert post(emu, TEXT, {"mode": "refine", "preview_task_id": preview}).status_code == 400
    assert post(emu, ANIM, {"rig_task_id": "missing", "action_id": 92}).status_code == 404
    rig = rig_task(emu)
    for body in ({"rig_task_id": rig, "action_id": 9999}, {"rig_task_id": rig, "action_id": "92"},
                 {"rig_task_id": rig, "action_id": 92, "post_process": {"operation_type": "explode"}},
                 {"rig_task_id": rig, "action_id": 92, "post_process": {"operation_type": "change_fps", "fps": 20}},
                 {"rig_task_id": pending, "action_id": 92}):
        r = post(emu, ANIM, body)
        assert r.status_code == 400, (body, r.text)
    # a model task is not a rig task, a rig task is not a model
    assert post(emu, RIG, {"input_task_id": rig}).status_code == 400


# -- auth ----------------------------------------------------------------------------------------


def test_auth_strict_mode(emu: Emulator) -> None:
    emu.meshy.api_key = "msy_secret_key_123"
    unauthorized = [get(emu, "/openapi/v1/balance"),
                    get(emu, "/openapi/v1/balance", headers={"Authorization": "Bearer wrong"}),
                    get(emu, "/openapi/v1/balance", headers={"Authorization": "msy_secret_key_123"}),
                    post(emu, IMAGE, {"image_url": PNG_URI})]
    for r in unauthorized:
        assert r.status_code == 401 and r.json() == {"message": "Invalid API key"}
    ok = get(emu, "/openapi/v1/balance", headers={"Authorization": "Bearer msy_secret_key_123"})
    assert ok.status_code == 200 and ok.json() == {"balance": 1000}
    assert get(emu, "/web/public/animations/resources").status_code == 200  # catalog needs no key
    assert [r.had_auth for r in emu.requests] == [False, True, True, False, True, False]
    assert "msy_secret_key_123" not in repr(emu.requests)


def test_auth_open_mode(emu: Emulator) -> None:
    assert emu.meshy.api_key is None
    assert get(emu, "/openapi/v1/balance").status_code == 200
    assert get(emu, "/openapi/v1/balance", headers={"Authorization": "Bearer anything"}).status_code == 200


# -- chain, assets ---------------------------------------------------------------------------------


def test_image_rig_animation_chain(emu: Emulator, asset_dir: Path) -> None:
    image_id = model_task(emu)
    model = get(emu, f"{IMAGE}/{image_id}").json()
    glb = requests.get(model["model_urls"]["glb"], timeout=5)
    assert glb.status_code == 200 and glb.headers["Content-Type"] == "model/gltf-binary"
    assert glb.content == (asset_dir / "model.glb").read_bytes()
    assert int(glb.headers["Content-Length"]) == len(glb.content)
    thumb = requests.get(model["thumbnail_url"], timeout=5)
    assert thumb.content.startswith(b"\x89PNG")

    rig_id = create(emu, RIG, {"input_task_id": image_id, "height_meters": 1.8})
    assert get(emu, f"{RIG}/{rig_id}").json()["result"] is None
    rig = poll_done(emu, RIG, rig_id)
    assert rig["type"] == "rig" and rig["status"] == "SUCCEEDED" and rig["consumed_credits"] == 5
    result = rig["result"]
    expected = {
        result["rigged_character_glb_url"]: "rigged.glb",
        result["rigged_character_fbx_url"]: "rigged.glb",  # no rigged_fbx asset: the configured file
        result["basic_animations"]["walking_glb_url"]: "walking.glb",
        result["basic_animations"]["running_glb_url"]: "running.glb",
    }
    for url, name in expected.items():
        assert requests.get(url, timeout=5).content == (asset_dir / name).read_bytes(), url
    assert emu.meshy.tasks[rig_id].request == {"input_task_id": image_id, "height_meters": 1.8}

    anims = {}
    for action in (92, 0):
        anim_id = create(emu, ANIM, {"rig_task_id": rig_id, "action_id": action,
                                     "post_process": {"operation_type": "change_fps", "fps": 24}})
        anims[action] = poll_done(emu, ANIM, anim_id)
    assert anims[92]["type"] == "animate" and anims[92]["consumed_credits"] == 3
    assert "Double_Combo_Attack" in anims[92]["result"]["animation_glb_url"]
    assert "processed_animation_fps_fbx_url" in anims[92]["result"]
    got_92 = requests.get(anims[92]["result"]["animation_glb_url"], timeout=5).content
    got_0 = requests.get(anims[0]["result"]["animation_glb_url"], timeout=5).content
    assert got_92 == (asset_dir / "anim_92.glb").read_bytes()
    assert got_0 == (asset_dir / "animation.glb").read_bytes()
    assert emu.meshy.balance == 1000 - 30 - 5 - 3 - 3


def test_text_preview_refine_and_remesh(emu: Emulator, asset_dir: Path) -> None:
    preview_id = create(emu, TEXT, {"mode": "preview", "prompt": "a knight", "ai_model": "meshy-5"})
    preview = poll_done(emu, TEXT, preview_id)
    assert preview["type"] == "text-to-3d-preview" and preview["texture_urls"] == []
    refine_id = create(emu, TEXT, {"mode": "refine", "preview_task_id": preview_id, "enable_pbr": True})
    refine = poll_done(emu, TEXT, refine_id)
    assert refine["type"] == "text-to-3d-refine" and refine["prompt"] == "a knight"
    assert refine["texture_urls"][0]["base_color"]
    remesh_id = create(emu, REMESH, {"input_task_id": refine_id, "topology": "quad", "target_polycount": 5000})
    remesh = poll_done(emu, REMESH, remesh_id)
    assert remesh["type"] == "remesh" and list(remesh["model_urls"]) == ["glb"]
    assert requests.get(remesh["model_urls"]["glb"], timeout=5).content == (asset_dir / "model.glb").read_bytes()
    rig_id = create(emu, RIG, {"input_task_id": remesh_id})
    assert poll_done(emu, RIG, rig_id)["status"] == "SUCCEEDED"
    # an emulator asset URL is a valid rigging model_url; its bytes are checked locally
    assert post(emu, RIG, {"model_url": remesh["model_urls"]["glb"]}).status_code == 202
    assert emu.meshy.balance == 1000 - 5 - 10 - 5 - 5 - 5


def test_range_and_head(emu: Emulator, asset_dir: Path) -> None:
    url = get(emu, f"{IMAGE}/{model_task(emu)}").json()["model_urls"]["glb"]
    data = (asset_dir / "model.glb").read_bytes()
    part = requests.get(url, headers={"Range": "bytes=5-"}, timeout=5)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 5-{len(data) - 1}/{len(data)}"
    assert part.content == data[5:] and int(part.headers["Content-Length"]) == len(data) - 5
    head = requests.head(url, timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == len(data)
    assert requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=5).status_code == 416


def test_expired_url_is_403_and_refetch_resigns(emu: Emulator, asset_dir: Path) -> None:
    task_id = model_task(emu)
    emu.meshy.asset_ttl = -10
    stale = get(emu, f"{IMAGE}/{task_id}").json()["model_urls"]["glb"]
    r = requests.get(stale, timeout=5)
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content
    assert r.headers["Content-Type"] == "application/xml"
    emu.meshy.asset_ttl = 3600
    fresh = get(emu, f"{IMAGE}/{task_id}").json()["model_urls"]["glb"]
    assert requests.get(fresh, timeout=5).content == (asset_dir / "model.glb").read_bytes()
    emu.advance_clock(7200)
    assert requests.get(fresh, timeout=5).status_code == 403
    assert requests.get(fresh.split("?")[0], timeout=5).status_code == 403  # unsigned


# -- failure --------------------------------------------------------------------------------------


def test_rig_failure_is_rendered(emu: Emulator) -> None:
    image_id = model_task(emu)
    emu.meshy.fail_next("rig", type="server_error", message="boom")
    rig_id = create(emu, RIG, {"input_task_id": image_id})
    final = poll_done(emu, RIG, rig_id)
    assert final["status"] == "FAILED" and final["task_error"] == {"type": "server_error", "message": "boom"}
    assert final["result"] is None


# -- faults ---------------------------------------------------------------------------------------


def test_inject_and_reset(emu: Emulator) -> None:
    emu.inject("POST", rf"^{IMAGE}$", status=429, body={"message": "RateLimitExceeded"}, times=2)
    for _ in range(2):
        r = post(emu, IMAGE, {"image_url": PNG_URI})
        assert r.status_code == 429 and r.json() == {"message": "RateLimitExceeded"}
        assert r.headers["x-api-version"]
    assert post(emu, IMAGE, {"image_url": PNG_URI}).status_code == 202
    emu.inject("GET", r"/balance$", status=503, body="upstream down", headers={"Retry-After": "1"})
    r = get(emu, "/openapi/v1/balance")
    assert (r.status_code, r.text, r.headers["Retry-After"]) == (503, "upstream down", "1")
    emu.inject_reset("GET", r"/balance$")
    with pytest.raises(requests.ConnectionError):
        get(emu, "/openapi/v1/balance")
    assert get(emu, "/openapi/v1/balance").status_code == 200
    assert [r.status for r in emu.requests if r.path.endswith("/balance")] == [503, 0, 200]


def test_queue_limit(emu: Emulator) -> None:
    emu.meshy.queue_limit = 2
    first = create(emu, IMAGE, {"image_url": PNG_URI})
    create(emu, IMAGE, {"image_url": PNG_URI})
    r = post(emu, IMAGE, {"image_url": PNG_URI})
    assert r.status_code == 429 and r.json() == {"message": "NoMoreConcurrentTasks"}
    assert emu.meshy.balance == 1000 - 60
    poll_done(emu, IMAGE, first)
    assert post(emu, IMAGE, {"image_url": PNG_URI}).status_code == 202


def test_balance_and_402(emu: Emulator) -> None:
    emu.meshy.balance = 35
    create(emu, IMAGE, {"image_url": PNG_URI})  # 30 credits
    assert get(emu, "/openapi/v1/balance").json() == {"balance": 5}
    r = post(emu, IMAGE, {"image_url": PNG_URI})
    assert r.status_code == 402 and r.json() == {"message": "Insufficient credits"}
    assert post(emu, IMAGE, {"image_url": PNG_URI, "ai_model": "meshy-5", "should_texture": False}).status_code == 202
    assert get(emu, "/openapi/v1/balance").json() == {"balance": 0}


def test_fail_next(emu: Emulator) -> None:
    emu.meshy.fail_next("image-to-3d", code="image_too_complex", message="Too complex")
    failed_id = create(emu, IMAGE, {"image_url": PNG_URI})
    assert emu.meshy.balance == 970
    statuses = [get(emu, f"{IMAGE}/{failed_id}").json()["status"] for _ in range(5)]
    assert statuses == ["PENDING", "PENDING", "IN_PROGRESS", "IN_PROGRESS", "FAILED"]
    task = get(emu, f"{IMAGE}/{failed_id}").json()
    assert task["task_error"] == {"type": "invalid_input", "code": "image_too_complex", "message": "Too complex",
                                  "doc_url": "https://docs.meshy.ai/en/api/errors#image-too-complex"}
    assert task["consumed_credits"] == 0 and task["model_urls"] == {} and task["finished_at"] > 0
    assert emu.meshy.balance == 1000
    # only the next one fails
    assert poll_done(emu, IMAGE, create(emu, IMAGE, {"image_url": PNG_URI}))["status"] == "SUCCEEDED"
    with pytest.raises(ValueError):
        emu.meshy.fail_next("image")


def test_request_counting(emu: Emulator) -> None:
    task_id = model_task(emu)
    assert emu.count("POST", rf"^{IMAGE}$") == 1
    assert emu.count("GET", rf"^{IMAGE}/{task_id}$") == 5
    assert emu.count() == 6 and emu.count(path_regex="image-to-3d") == 6
    record = emu.requests[0]
    assert (record.method, record.path, record.status, record.had_auth) == ("POST", IMAGE, 202, False)
    assert record.body_size > len(PNG_URI) and record.query == {}
    get(emu, IMAGE, params={"page_size": "3"})
    assert emu.requests[-1].query == {"page_size": "3"}
    emu.clear_log()
    assert emu.requests == [] and emu.count() == 0


def test_catalog(emu: Emulator) -> None:
    body = get(emu, "/web/public/animations/resources").json()
    entries = {e["id"]: e for e in body["result"]["list"]}
    assert len(entries) >= 30
    assert entries[92]["name"] == "Double_Combo_Attack" and entries[92]["category"] == "Fighting"
    assert entries[0]["subCategory"] == "Idle" and entries[0]["previewUrl"].endswith("/Idle.gif")
    emu.meshy.catalog = [{"id": 7, "name": "Only", "category": "C", "subCategory": "S", "previewUrl": ""}]
    assert [e["id"] for e in get(emu, "/web/public/animations/resources").json()["result"]["list"]] == [7]


def test_command_line_server(asset_dir: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tests.emulator", "--port", "0", "--assets-dir", str(asset_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        prefix, base_url = line.split(" ")
        assert prefix == "MARIONETTE_EMULATOR" and base_url.startswith("http://127.0.0.1:")
        task_id = requests.post(base_url + IMAGE, json={"image_url": PNG_URI}, timeout=5).json()["result"]
        for _ in range(5):
            task = requests.get(f"{base_url}{IMAGE}/{task_id}", timeout=5).json()
        assert requests.get(task["model_urls"]["glb"], timeout=5).content == make_glb("model")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


# -- the documents' rules for rigging (seed 002, Rigging API) -------------------------------------------


def glb_with(triangles: int, *, textured: bool) -> bytes:
    """A GLB whose JSON declares one triangle primitive of `triangles` faces (no buffer needed: the
    emulator counts faces from the accessors, as Meshy counts them from the mesh)."""
    doc: dict[str, Any] = {"asset": {"version": "2.0"},
                           "accessors": [{"count": triangles * 3, "componentType": 5125, "type": "SCALAR"}],
                           "meshes": [{"primitives": [{"attributes": {}, "indices": 0}]}]}
    if textured:
        doc["images"] = [{"uri": "x.png"}]
    raw = json.dumps(doc).encode()
    raw += b" " * (-len(raw) % 4)
    return struct.pack("<4sII", b"glTF", 2, 20 + len(raw)) + struct.pack("<I4s", len(raw), b"JSON") + raw


@pytest.mark.parametrize("body, faces", [
    ({"ai_model": "latest"}, 500_000),  # should_remesh defaults to false on meshy-6: the raw mesh
    ({"ai_model": "meshy-6", "should_remesh": False}, 500_000),
    ({"ai_model": "meshy-5"}, 30_000),  # ... and to true on other models, target 30,000
    ({"should_remesh": True, "target_polycount": 120_000}, 120_000),
])
def test_rigging_refuses_models_over_300000_faces(emu: Emulator, body: dict[str, Any], faces: int) -> None:
    task_id = create(emu, IMAGE, {"image_url": PNG_URI, **body})
    poll_done(emu, IMAGE, task_id)
    assert emu.meshy.tasks[task_id].extra["faces"] == faces
    r = post(emu, RIG, {"input_task_id": task_id})
    if faces > 300_000:
        assert r.status_code == 400 and r.json()["message"].startswith("Face count exceeded")
        assert "Remesh API" in r.json()["message"]
    else:
        assert r.status_code == 202, r.text
    # remeshing the raw model (5 credits) makes it riggable
    remesh = create(emu, REMESH, {"input_task_id": task_id, "target_polycount": 20_000})
    poll_done(emu, REMESH, remesh)
    assert post(emu, RIG, {"input_task_id": remesh}).status_code == 202


def test_rigging_counts_faces_of_a_model_url(emu: Emulator) -> None:
    big = data_uri("application/octet-stream", glb_with(300_001, textured=True))
    r = post(emu, RIG, {"model_url": big})
    assert r.status_code == 400 and "Face count exceeded" in r.json()["message"]
    assert post(emu, RIG, {"model_url": data_uri("application/octet-stream",
                                                 glb_with(300_000, textured=True))}).status_code == 202


def test_rigging_texture_must_be_png(emu: Emulator) -> None:
    glb = data_uri("application/octet-stream", glb_with(1000, textured=False))
    r = post(emu, RIG, {"model_url": glb, "texture_image_url": data_uri("image/jpeg", JPEG)})
    assert r.status_code == 400 and "texture_image_url" in r.json()["message"]
    assert post(emu, RIG, {"model_url": glb, "texture_image_url": PNG_URI}).status_code == 202


@pytest.mark.parametrize("source", ["untextured image-to-3d", "text preview", "untextured glb"])
def test_rigging_an_untextured_model_fails(emu: Emulator, source: str) -> None:
    """"auto-rigging is not suitable for ... Untextured meshes": the rig task fails (refunded)."""
    if source == "untextured glb":
        body: dict[str, Any] = {"model_url": data_uri("application/octet-stream", glb_with(1000, textured=False))}
    else:
        path, create_body = ((IMAGE, {"image_url": PNG_URI, "should_texture": False, "should_remesh": True})
                             if source.startswith("untextured") else
                             (TEXT, {"mode": "preview", "prompt": "a knight", "should_remesh": True}))
        model = create(emu, path, create_body)
        poll_done(emu, path, model)
        body = {"input_task_id": model}
    before = emu.meshy.balance
    rig = create(emu, RIG, body)
    final = poll_done(emu, RIG, rig)
    assert final["status"] == "FAILED" and "untextured" in final["task_error"]["message"]
    assert final["task_error"]["type"] == "invalid_input" and emu.meshy.balance == before


def test_rigging_pose_failure_is_422(emu: Emulator) -> None:
    emu.meshy.pose_failures = 1
    r = post(emu, RIG, {"input_task_id": model_task(emu)})
    assert r.status_code == 422 and r.json()["message"].startswith("Pose estimation failed")


def test_remesh_takes_only_the_documented_input_tasks(emu: Emulator) -> None:
    multi = create(emu, MULTI, {"image_urls": [PNG_URI]})
    poll_done(emu, MULTI, multi)
    r = post(emu, REMESH, {"input_task_id": multi})
    assert r.status_code == 400 and "Invalid input task" in r.json()["message"]


def test_refine_model_must_match_the_preview(emu: Emulator) -> None:
    """Seed 002, refine Failure Modes: "Model mismatch"."""
    preview = create(emu, TEXT, {"mode": "preview", "prompt": "a knight", "ai_model": "meshy-5"})
    poll_done(emu, TEXT, preview)
    r = post(emu, TEXT, {"mode": "refine", "preview_task_id": preview, "ai_model": "latest"})
    assert r.status_code == 400 and r.json()["message"].startswith("Model mismatch")
    assert post(emu, TEXT, {"mode": "refine", "preview_task_id": preview, "ai_model": "meshy-5"}).status_code == 202
