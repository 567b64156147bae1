"""Contract tests: the providers' own JSON examples (tests/contract_data/, extracted from the seeds by
scripts/contract_data.py, each file named after the seed section it comes from) fed to the client's
parsers, and the error examples served by the emulator to the client over real HTTP."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from addon.core.errors import ProviderError
from addon.core.http import ApiClient, ProviderConfig, Timing
from addon.core.models import JobState
from addon.core.providers import all_providers, claythis, image3d, meshy_api, rodin
from addon.core.providers.claid import scene_urls
from tests.emulator import Emulator

DATA = Path(__file__).resolve().parents[1] / "contract_data"
TIMING = Timing(connect_timeout=5.0, read_timeout=10.0, retry_base=0.01, retry_max=0.05, max_transient_retries=1)


def example(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _client(emu: Emulator, provider: str) -> ApiClient:
    prov = all_providers()[provider]
    return ApiClient(ProviderConfig(base_url=emu.base_url, api_key="fault-test-key-0123456789"),
                     auth_header=prov.auth_header, online_access=lambda: False, timing=TIMING)


def test_every_example_file_is_listed_with_its_source() -> None:
    index = example("index.json")
    files = {p.name for p in DATA.glob("*.json")} - {"index.json"}
    assert files == set(index) and len(files) >= 20
    for name, source in index.items():
        assert name.split("_", 1)[0] == source["seed"].split("_", 1)[0]


# -- Meshy (seed 002) ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["002_image_to_3d_create_response.json", "002_rigging_create_response.json",
                                  "002_animation_create_response.json"])
def test_meshy_create_answers(name: str) -> None:
    assert meshy_api.parse_created(example(name)) == example(name)["result"]


@pytest.mark.parametrize("name", ["002_image_to_3d_task_object.json", "002_image_to_3d_retrieve_response.json",
                                  "002_multi_image_to_3d_task_object.json", "002_text_to_3d_task_object.json",
                                  "002_remesh_task_object.json"])
def test_meshy_model_task_objects(name: str) -> None:
    data = example(name)
    snap = meshy_api.explained(data)
    assert snap.state is JobState.SUCCEEDED and snap.progress == 100 and snap.error is None
    assert snap.result_urls["glb"] == data["model_urls"]["glb"]
    assert snap.result_urls.get("thumbnail_url") == data.get("thumbnail_url")  # the remesh example has none


def test_meshy_list_answer_is_a_list_of_task_objects() -> None:
    listed = example("002_image_to_3d_list_response.json")
    assert isinstance(listed, list) and listed
    for item in listed:
        assert meshy_api.snapshot(item).state is JobState.SUCCEEDED
        assert isinstance(item["created_at"], int) and item["type"] == meshy_api.LISTED_TYPES["image"][1]


def test_meshy_rigging_task_object() -> None:
    data = example("002_rigging_task_object.json")
    snap = meshy_api.explained(data)
    assert snap.state is JobState.SUCCEEDED
    basic = data["result"]["basic_animations"]
    assert snap.result_urls["rigged_character_glb_url"] == data["result"]["rigged_character_glb_url"]
    assert snap.result_urls["walking_glb_url"] == basic["walking_glb_url"]
    assert snap.result_urls["running_glb_url"] == basic["running_glb_url"]


def test_meshy_animation_task_object() -> None:
    data = example("002_animation_task_object.json")
    snap = meshy_api.explained(data)
    assert snap.state is JobState.SUCCEEDED
    for key in ("animation_glb_url", "animation_fbx_url", "processed_animation_fps_fbx_url"):
        assert snap.result_urls[key] == data["result"][key]


@pytest.mark.parametrize(("name", "code", "hint"), [
    ("002_errors_task_error_with_details.json", "image_too_complex", "Change the input"),
    ("002_errors_task_error_without_details.json", "server_error", "press Retry"),
])
def test_meshy_task_errors(name: str, code: str, hint: str) -> None:
    data = example(name)
    snap = meshy_api.explained(data)
    assert snap.state is JobState.FAILED and snap.error_code == code
    assert (snap.error or "").startswith(data["task_error"]["message"].rstrip(". ")) and hint in (snap.error or "")


def test_meshy_request_error_body_reaches_the_artist(emu: Emulator) -> None:
    body = example("002_errors_400_bad_request.json")
    emu.inject("POST", r"^/openapi/v1/rigging$", status=400, body=body)
    with closing(_client(emu, "meshy")) as client, pytest.raises(ProviderError) as caught:
        client.request("POST", "/openapi/v1/rigging", json={"model_url": "https://example.com/x.3dm"})
    assert caught.value.status == 400 and body["message"] in str(caught.value)


def test_meshy_balance_answer(emu: Emulator) -> None:
    emu.inject("GET", r"^/openapi/v1/balance$", status=200, body=example("002_balance_response.json"))
    with closing(_client(emu, "meshy")) as client:
        assert all_providers()["meshy"].balance(client) == 1000.0


# -- Hyper3D Rodin (seed 004) ---------------------------------------------------------------------------


def test_rodin_submit_answer() -> None:
    data = rodin.check_body(example("004_rodin_submit_response.json"), "generation request")
    assert data["uuid"] == "example-task-uuid" and rodin.subscription_key(data["jobs"]) == "example-subscription-key"
    # the same jobs described as "An array of job objects"
    assert rodin.subscription_key([data["jobs"]]) == "example-subscription-key"


def test_rodin_download_answer() -> None:
    files = rodin.check_body(example("004_rodin_download_response.json"), "download request")["list"]
    assert files == [{"url": "https://example.com/", "name": "test-file"}]
    # the example's one file has no model extension: it is not taken for the model
    assert rodin.pick_model(files, "glb") is None
    assert rodin.pick_model([*files, {"url": "https://example.com/m.glb", "name": "base.glb"}], "glb") == \
        ("base.glb", "https://example.com/m.glb")


# -- Claythis (seed 000) --------------------------------------------------------------------------------


def test_claythis_create_answer() -> None:
    assert claythis.task_id(example("000_claythis_create_response.json")) == "<your_task_id>"


# -- image3d.io (seed 003) ------------------------------------------------------------------------------


def test_image3d_answers(emu: Emulator) -> None:
    assert image3d.task_id_of(example("003_image3d_generate_response.json")) == "abc123-def456"
    running = image3d.snapshot(example("003_image3d_status_in_progress.json"))
    assert running.state is JobState.RUNNING and running.progress == 45
    done = image3d.snapshot(example("003_image3d_status_completed.json"))
    assert done.state is JobState.SUCCEEDED and done.result_urls == {"glb": "https://cdn.example.com/model.glb"}
    emu.inject("GET", r"^/api/balance$", status=200, body=example("003_image3d_balance_response.json"))
    with closing(_client(emu, "image3d")) as client:
        assert all_providers()["image3d"].balance(client) == 580.0


# -- Claid (seed 001) -----------------------------------------------------------------------------------


def test_claid_scene_answers() -> None:
    body = example("001_claid_scene_create_response_body.json")
    assert list(scene_urls(body).values()) == [o["tmp_url"] for o in body["data"]["output"]]
    schema = example("001_claid_scene_create_response_schema.json")
    assert scene_urls(schema) == {"1": "text"}  # the schema's placeholder values parse the same way


def test_the_rules_table_names_tests_that_exist() -> None:
    """tests/RULES.md names, for each documented rule, the test that holds it: each named test exists."""
    import re

    tests = Path(__file__).resolve().parents[1]
    text = (tests / "RULES.md").read_text(encoding="utf-8")
    named = re.findall(r"(?:(U|E): )?(test_\w+\.py)?::(test_\w+)", text)
    assert len(named) >= 30
    last_file = ""
    for suite, file, name in named:
        last_file = file or last_file
        folder = {"U": "unit", "E": "e2e"}.get(suite) or ("e2e" if (tests / "e2e" / last_file).exists() and not
                                                           (tests / "unit" / last_file).exists() else "unit")
        source = (tests / folder / last_file).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, re.M), f"{folder}/{last_file}::{name} is not a test"
