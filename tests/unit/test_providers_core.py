"""Every provider's core pipeline, end to end without Blender: a real job through JobRunner and JobStore
against the local emulator over real HTTP (no mocks). Each test checks the journal (tasks, assets,
files), what the emulator received, and how the provider's errors reach the artist."""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests

from addon.core import png
from addon.core.errors import AuthError, InputError, ProviderError, QuotaError, RateLimited
from addon.core.formats import sniff_bytes, sniff_file
from addon.core.http import ApiClient, ProviderConfig, Timing
from addon.core.models import GenerationRequest, InputKind, Job, JobState, TaskStatus
from addon.core.providers import all_providers
from addon.core.providers.base import OptionSpec
from addon.core.providers.claid import ClaidProvider, call
from addon.core.providers.claythis import ClaythisProvider, canonical_motion, known_motion
from addon.core.providers.claythis import snapshot as claythis_snapshot
from addon.core.providers.rodin import RodinProvider, aggregate, check_body, pick_model
from addon.core.runner import InputFile, JobRunner
from addon.core.store import JobStore
from tests.emulator import Emulator
from tests.unit.fault_matrix import wait

KEY = "test-key-123"
JOB_TIMEOUT = 30.0  # seconds a job may take here (wait's default suits the fault tests' faster timings)
TIMING = Timing(connect_timeout=5.0, read_timeout=10.0, poll_interval=0.01, max_poll_interval=0.05,
                retry_base=0.01, retry_max=0.05, max_transient_retries=3)
PNG = png.encode_rgba8(2, 2, bytes([255, 0, 0, 255, 0, 255, 0, 255]) * 2)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
FBX = b"Kaydara FBX Binary  \x00\x1a\x00" + struct.pack("<I", 7400) + b"\x00" * 64


def make_glb(tag: str) -> bytes:
    doc = json.dumps({"asset": {"version": "2.0", "generator": tag}}).encode()
    doc += b" " * (-len(doc) % 4)
    return struct.pack("<4sII", b"glTF", 2, 20 + len(doc)) + struct.pack("<I4s", len(doc), b"JSON") + doc


@pytest.fixture
def assets(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "assets"
    folder.mkdir()
    out = {}
    for name in ("model", "rigged", "walking", "running", "animation"):
        out[name] = folder / f"{name}.glb"
        out[name].write_bytes(make_glb(name))
    out["model_fbx"] = folder / "model.fbx"
    out["model_fbx"].write_bytes(FBX)
    return out


@pytest.fixture
def emu(assets: dict[str, Path]) -> Iterator[Emulator]:
    with Emulator(assets=assets, api_key=KEY) as emulator:
        yield emulator
    assert not emulator.errors, emulator.errors[0]


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[JobRunner]:
    job_runner = JobRunner(JobStore(tmp_path / "store"), all_providers(), TIMING)
    yield job_runner
    job_runner.shutdown()


def config(emu: Emulator, provider: str, key: str = KEY) -> ProviderConfig:
    return ProviderConfig(base_url=emu.base_url + ("/api" if provider == "rodin" else ""), api_key=key)


def client(emu: Emulator, provider: str, key: str = KEY) -> ApiClient:
    prov = all_providers()[provider]
    return ApiClient(config(emu, provider, key), auth_header=prov.auth_header, online_access=lambda: False,
                     timing=TIMING)


def run(runner: JobRunner, emu: Emulator, provider: str, kind: InputKind, files: list[bytes] | None = None, *,
        prompt: str | None = None, options: dict[str, Any] | None = None, key: str = KEY,
        **extra: Any) -> Job:
    request = GenerationRequest(provider=provider, kind=kind, name="Hero", prompt=prompt, options=options or {},
                                **extra)
    inputs = [InputFile(f"view{i}.{sniff_bytes(d[:32]) or 'bin'}", d) for i, d in enumerate(files or [])]
    job = runner.submit(request, config(emu, provider, key), inputs)
    return wait(runner, job.id, JOB_TIMEOUT)


def only_asset(job: Job, key: str) -> Path:
    asset = job.asset(key)
    assert asset is not None and asset.path, job.assets
    path = Path(asset.path)
    assert path.is_file() and path.parent.name == job.id
    return path


# -- declarations ---------------------------------------------------------------------------------


def test_registry_order_and_declarations() -> None:
    providers = all_providers()
    assert list(providers) == ["meshy", "rodin", "claythis", "image3d", "claid"]
    assert providers["rodin"].outputs == {"model"} and providers["claythis"].outputs == {"character"}
    assert providers["claid"].outputs == {"images"} and providers["image3d"].key_label == "ID Token"
    assert providers["meshy"].inputs >= {"image", "multi_image", "text", "mesh", "armature"}
    assert providers["rodin"].max_images == 5 and providers["meshy"].max_images == 4
    for provider in providers.values():
        for kind in provider.inputs:
            resolved = provider.resolve_options({}, kind)  # every default passes its own check
            assert set(resolved) <= {spec.name for spec in provider.options}
        # the panel turns specs into Blender properties: list kinds must default to text
        for spec in provider.options:
            if spec.kind in ("ints", "names"):
                assert spec.default == ""
            if spec.kind == "enum":
                assert spec.default in [item[0] for item in spec.items]


def test_list_options_parse_text_and_lists() -> None:
    bbox = OptionSpec("bbox", "Box", "ints", "", min=1, length=3)
    assert bbox.check("") is None and bbox.check(None) is None
    assert bbox.check("100, 200,150") == [100, 200, 150] == bbox.check("[100, 200, 150]") == bbox.check((100, 200, 150))
    assert bbox.check([1.0, 2, 3]) == [1, 2, 3]
    for bad in ("1,2", [0, 1, 2], "a,b,c", [1.5, 2, 3], "[1,2", {"x": 1}, [True, 2, 3]):
        with pytest.raises(InputError):
            bbox.check(bad)
    names = OptionSpec("motions", "Motions", "names", "")
    assert names.check("") == [] and names.check("A, B\nC;A") == ["A", "B", "C"]
    assert names.check('["A", "B"]') == ["A", "B"] and names.check(["A", " B "]) == ["A", "B"]
    with pytest.raises(InputError):
        names.check([1, 2])


def test_check_files_counts_and_formats() -> None:
    rodin = RodinProvider()
    rodin.check_files("multi_image", [PNG, JPEG, PNG, PNG, PNG])
    with pytest.raises(InputError, match="1 to 5 images, not 6"):
        rodin.check_files("multi_image", [PNG] * 6)
    with pytest.raises(InputError, match="PNG or JPEG"):
        rodin.check_files("image", [b"GIF89a......"])
    with pytest.raises(InputError, match="takes 1 image"):
        rodin.check_files("image", [PNG, PNG])


# -- Meshy: multi-image and text ----------------------------------------------------------------------


def test_meshy_multi_image(runner: JobRunner, emu: Emulator, assets: dict[str, Path]) -> None:
    job = run(runner, emu, "meshy", "multi_image", [PNG, JPEG], options={"should_remesh": True,
                                                                        "target_polycount": 8000})
    assert job.state is JobState.SUCCEEDED, job.error
    assert only_asset(job, "model").read_bytes() == assets["model"].read_bytes()
    assert [t.key for t in job.tasks] == ["multi"] and job.asset("model").source_task == "multi"  # type: ignore[union-attr]
    (task,) = emu.meshy.tasks.values()
    assert task.kind == "multi-image-to-3d"
    sent = task.request
    assert [u.split(";")[0] for u in sent["image_urls"]] == ["data:image/png", "data:image/jpeg"]
    assert base64.b64decode(sent["image_urls"][1].split(",", 1)[1]) == JPEG
    assert sent["target_polycount"] == 8000 and sent["topology"] == "triangle" and "model_type" not in sent
    assert emu.count("POST", r"/multi-image-to-3d$") == 1


def test_meshy_multi_image_refuses_five_before_sending(runner: JobRunner, emu: Emulator) -> None:
    with pytest.raises(InputError, match="1 to 4 images, not 5"):
        run(runner, emu, "meshy", "multi_image", [PNG] * 5)
    assert emu.count("POST") == 0 and runner.store.all() == []


def test_meshy_text_preview_then_refine(runner: JobRunner, emu: Emulator) -> None:
    job = run(runner, emu, "meshy", "text", prompt="a knight in silver armour", options={"enable_pbr": True})
    assert job.state is JobState.SUCCEEDED, job.error
    assert [t.key for t in job.tasks] == ["preview", "refine"]
    assert job.asset("model").source_task == "refine"  # type: ignore[union-attr]
    kinds = {t.kind: t for t in emu.meshy.tasks.values()}
    preview, refine = kinds["text-to-3d-preview"], kinds["text-to-3d-refine"]
    assert preview.request["prompt"] == "a knight in silver armour" and preview.request["mode"] == "preview"
    assert refine.request == {"mode": "refine", "preview_task_id": preview.id, "ai_model": "latest",
                              "enable_pbr": True, "target_formats": ["glb"]}
    assert job.tasks[1].remote_id == refine.id
    assert emu.meshy.balance == 1000 - 20 - 10
    provider = all_providers()["meshy"]
    assert provider.cost(GenerationRequest(provider="meshy", kind="text", name="x", prompt="p",
                                           options=provider.resolve_options({}, "text"))) == 30


def test_meshy_text_untextured_rigged_is_refused_before_sending(runner: JobRunner, emu: Emulator) -> None:
    """Rigging "is not suitable for ... Untextured meshes" (seed 002): Rig with Texture off never sends
    the untextured preview to rigging; it is refused before anything is paid."""
    with pytest.raises(InputError, match="textured characters only: turn on Texture"):
        run(runner, emu, "meshy", "text", prompt="a robot", options={"should_texture": False}, rig=True,
            animations=[{"action_id": 92, "name": "Double_Combo_Attack"}])
    assert emu.count("POST") == 0 and runner.store.all() == []


def test_meshy_prompt_limit_and_image_pipeline_unchanged(runner: JobRunner, emu: Emulator) -> None:
    with pytest.raises(InputError, match="up to 600 characters"):
        run(runner, emu, "meshy", "text", prompt="x" * 601)
    with pytest.raises(InputError, match="needs a prompt"):
        run(runner, emu, "meshy", "text", prompt="  ")
    job = run(runner, emu, "meshy", "image", [PNG])
    assert job.state is JobState.SUCCEEDED and [t.key for t in job.tasks] == ["image"]
    (task,) = emu.meshy.tasks.values()
    assert task.kind == "image-to-3d" and task.request["image_url"].startswith("data:image/png;base64,")


def test_meshy_balance(emu: Emulator) -> None:
    with closing(client(emu, "meshy")) as api:
        assert all_providers()["meshy"].balance(api) == 1000.0


# -- Rodin ------------------------------------------------------------------------------------------


def test_rodin_image_job(runner: JobRunner, emu: Emulator, assets: dict[str, Path]) -> None:
    job = run(runner, emu, "rodin", "image", [PNG], prompt="a brave knight",
              options={"bbox_condition": [100, 180, 60], "seed": 42, "high_pack": True, "mesh_mode": "Quad"})
    assert job.state is JobState.SUCCEEDED, job.error
    path = only_asset(job, "model")
    assert path.suffix == ".glb" and path.read_bytes() == assets["model"].read_bytes()
    (task,) = emu.rodin.tasks.values()
    assert [(i.name, i.filename, i.content_type) for i in task.images] == [("images", "0000.png", "image/png")]
    assert task.images[0].value == PNG
    assert task.fields == {"prompt": ["a brave knight"], "tier": ["Gen-2"], "quality": ["medium"],
                           "geometry_file_format": ["glb"], "material": ["PBR"], "TAPose": ["true"],
                           "mesh_mode": ["Quad"], "seed": ["42"], "bbox_condition": ["[100, 180, 60]"],
                           "addons": ['["HighPack"]']}
    assert task.bbox == [100, 180, 60] and task.addons == ["HighPack"] and task.addons_encoding == "json"
    assert emu.rodin.balance == 100.0 - 1.5
    # the journal: one task under the task uuid, the subscription key kept with it
    (remote,) = job.tasks
    assert remote.remote_id == task.uuid and remote.status is TaskStatus.SUCCEEDED
    assert remote.result_urls == {"subscription_key": task.subscription_key}
    assert emu.count("POST", r"^/api/v2/rodin$") == 1 and emu.rodin.download_calls == 1
    assert all(r.had_auth for r in emu.requests if r.path.startswith("/api/"))
    assert not any(r.had_auth for r in emu.requests if r.path.startswith("/assets/"))
    provider = all_providers()["rodin"]
    assert provider.cost(job.request) == 1.5


def test_rodin_multi_image_fbx(runner: JobRunner, emu: Emulator) -> None:
    job = run(runner, emu, "rodin", "multi_image", [PNG, JPEG, PNG],
              options={"geometry_file_format": "fbx", "TAPose": False, "tier": "Gen-2.5-Extreme-High"})
    assert job.state is JobState.SUCCEEDED, job.error
    path = only_asset(job, "model")
    assert path.suffix == ".fbx" and sniff_file(path) == "fbx" and path.read_bytes() == FBX
    (task,) = emu.rodin.tasks.values()
    assert [i.filename for i in task.images] == ["0000.png", "0001.jpg", "0002.png"]
    assert task.fields["TAPose"] == ["false"] and "prompt" not in task.fields and "seed" not in task.fields
    assert "bbox_condition" not in task.fields and "addons" not in task.fields
    assert emu.rodin.balance == 100.0 - 1.0


def test_rodin_text_job_is_multipart(runner: JobRunner, emu: Emulator) -> None:
    job = run(runner, emu, "rodin", "text", prompt="a wooden chair", options={"bbox_condition": "50, 90, 50"})
    assert job.state is JobState.SUCCEEDED, job.error
    (task,) = emu.rodin.tasks.values()
    assert task.images == [] and task.fields["prompt"] == ["a wooden chair"] and task.bbox == [50, 90, 50]


def test_rodin_waits_through_queue_and_parallel_limit(runner: JobRunner, emu: Emulator) -> None:
    emu.rodin.pending_polls = 3
    emu.rodin.refuse_next("API_PARALLELISM_LIMIT_REACHED", "Too many tasks")
    job = run(runner, emu, "rodin", "image", [PNG])
    assert job.state is JobState.SUCCEEDED, job.error
    assert emu.count("POST", r"^/api/v2/rodin$") == 2 and len(emu.rodin.tasks) == 1  # refused, then sent again
    assert emu.rodin.status_calls == 3 + 2 + 1  # queued 3 times, then each of the 2 jobs runs, then done


@pytest.mark.parametrize(("code", "error_type", "fragment"), [
    ("INSUFFICIENT_FUND", QuotaError, "Not enough Rodin credits"),
    ("API_INSUFFICIENT_FUNDS", QuotaError, "API_INSUFFICIENT_FUNDS"),
    ("SUBSCRIPTION_PLAN_TOO_LOW", AuthError, "Business subscription"),
    ("PERMISSION_DENIED", AuthError, "may not"),
    ("INVALID_REQUEST", ProviderError, "INVALID_REQUEST"),
    ("NO_SUCH_TASK", ProviderError, "does not know this task"),
])
def test_rodin_application_errors_in_201_bodies(runner: JobRunner, emu: Emulator, code: str,
                                               error_type: type[ProviderError], fragment: str) -> None:
    with pytest.raises(error_type, match=fragment) as caught:
        check_body({"error": code, "message": "details"}, "generation request")
    assert type(caught.value) is error_type and caught.value.code == code
    emu.rodin.refuse_next(code, "details")
    job = run(runner, emu, "rodin", "image", [PNG])
    assert job.state is JobState.FAILED and job.error_code == code
    assert fragment in (job.error or "") and "details" in (job.error or "")
    assert emu.rodin.tasks == {} and job.tasks[0].status is TaskStatus.NEW  # refused: nothing exists remotely
    with pytest.raises(RateLimited):
        check_body({"error": "API_PARALLELISM_LIMIT_REACHED"}, "generation request")
    assert check_body({"error": "OK", "jobs": []}, "status") == {"error": "OK", "jobs": []}
    assert check_body({"error": None, "uuid": "u"}, "x")["uuid"] == "u"


def test_rodin_real_balance_shortage_and_failed_job(runner: JobRunner, emu: Emulator) -> None:
    emu.rodin.balance = 0.25
    job = run(runner, emu, "rodin", "image", [PNG])
    assert job.state is JobState.FAILED and job.error_code == "INSUFFICIENT_FUND"
    emu.rodin.balance = 10
    emu.rodin.fail_next()
    job = run(runner, emu, "rodin", "image", [PNG])
    assert job.state is JobState.FAILED and "1 of 2 Rodin jobs failed" in (job.error or "")
    assert job.tasks[0].status is TaskStatus.FAILED


def test_rodin_expired_link_gets_a_fresh_list(runner: JobRunner, emu: Emulator, assets: dict[str, Path]) -> None:
    emu.rodin.expired_lists = 1
    job = run(runner, emu, "rodin", "image", [PNG])
    assert job.state is JobState.SUCCEEDED, job.error
    assert emu.rodin.download_calls == 2
    assert only_asset(job, "model").read_bytes() == assets["model"].read_bytes()
    assert emu.count("GET", r"^/assets/") == 2  # the stale link (403), then the fresh one


def test_rodin_job_resumes_without_submitting_again(tmp_path: Path, emu: Emulator) -> None:
    emu.rodin.pending_polls = 10_000
    store_dir = tmp_path / "resume"
    first = JobRunner(JobStore(store_dir), all_providers(), TIMING)
    request = GenerationRequest(provider="rodin", kind="image", name="Hero")
    job = first.submit(request, config(emu, "rodin"), [InputFile("a.png", PNG)])
    deadline = time.monotonic() + 10
    while not (first.store.get(job.id).tasks and first.store.get(job.id).tasks[0].remote_id):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    first.shutdown()
    (task,) = emu.rodin.tasks.values()
    task.pending_polls = 0
    second = JobRunner(JobStore(store_dir), all_providers(), TIMING)
    try:
        assert second.resume(job.id, config(emu, "rodin"))
        done = wait(second, job.id, JOB_TIMEOUT)
    finally:
        second.shutdown()
    assert done.state is JobState.SUCCEEDED, done.error
    assert emu.count("POST", r"^/api/v2/rodin$") == 1 and done.tasks[0].remote_id == task.uuid


def test_rodin_wire_details(emu: Emulator) -> None:
    base = emu.base_url + "/api/v2"
    headers = {"Authorization": f"Bearer {KEY}"}
    created = requests.post(f"{base}/rodin", headers=headers, timeout=5,
                            files=[("images", ("a.png", PNG, "image/png")), ("addons", (None, "HighPack")),
                                   ("addons", (None, "HighPack"))]).json()
    assert created["error"] is None and created["message"] == "Submitted."
    task = emu.rodin.tasks[created["uuid"]]
    assert task.addons_encoding == "repeated"
    comma = requests.post(f"{base}/rodin", headers=headers, timeout=5,
                          files=[("prompt", (None, "cup")), ("addons", (None, "HighPack,HighPack"))]).json()
    assert emu.rodin.tasks[comma["uuid"]].addons_encoding == "comma"
    # status by form as well as JSON; a task uuid there, or a subscription key in download, is NO_SUCH_TASK
    key = created["jobs"]["subscription_key"]
    by_form = requests.post(f"{base}/status", headers=headers, data={"subscription_key": key}, timeout=5)
    assert by_form.status_code == 201 and by_form.json()["error"] == "OK"
    wrong = requests.post(f"{base}/status", headers=headers, json={"subscription_key": created["uuid"]}, timeout=5)
    assert wrong.status_code == 201 and wrong.json()["error"] == "NO_SUCH_TASK"
    wrong = requests.post(f"{base}/download", headers=headers, json={"task_uuid": key}, timeout=5)
    assert wrong.json()["error"] == "NO_SUCH_TASK"
    not_form = requests.post(f"{base}/rodin", headers=headers, json={"prompt": "x"}, timeout=5)
    assert not_form.status_code == 201 and not_form.json()["error"] == "INVALID_REQUEST"
    assert requests.get(f"{base}/check_balance", timeout=5).status_code == 401
    balance = requests.get(f"{base}/check_balance", headers=headers, timeout=5)
    assert balance.status_code == 201 and balance.json() == {"balance": 100.0 - 1.5 - 1.5}
    with closing(client(emu, "rodin")) as api:
        assert RodinProvider().balance(api) == 97.0


def test_rodin_wrong_key(runner: JobRunner, emu: Emulator) -> None:
    job = run(runner, emu, "rodin", "image", [PNG], key="wrong")
    assert job.state is JobState.FAILED and "rejected" in (job.error or "") and "wrong" not in (job.error or "")


def test_rodin_status_aggregation_and_file_choice() -> None:
    assert aggregate([]).state is JobState.PENDING
    waiting = aggregate([{"uuid": "a", "status": "Waiting", "queue_length": 4}, {"uuid": "b", "status": "Waiting"}])
    assert waiting.state is JobState.PENDING and waiting.queue_position == 4
    running = aggregate([{"status": "Done"}, {"status": "Waiting"}])
    assert running.state is JobState.RUNNING and running.progress == 50
    assert aggregate([{"status": "Done"}, {"status": "Generating"}]).state is JobState.RUNNING
    assert aggregate([{"status": "Done"}, {"status": "Done"}]).state is JobState.SUCCEEDED
    assert aggregate([{"status": "Failed"}, {"status": "Generating"}]).state is JobState.FAILED
    assert aggregate([{"status": "Canceled"}, {"status": "Done"}]).state is JobState.CANCELED
    with pytest.raises(ProviderError, match="unknown job status"):
        aggregate([{"status": "Exploded"}])
    files = [{"url": "u1", "name": "preview.webp"}, {"url": "u2", "name": "base_basic_shaded.glb"},
             {"url": "u3", "name": "base_basic_pbr.glb"}, {"url": "u4", "name": "texture_diffuse.png"}]
    assert pick_model(files, "glb") == ("base_basic_pbr.glb", "u3")
    assert pick_model(files, "fbx") is None


# -- Claythis ---------------------------------------------------------------------------------------


def test_claythis_image_file_all_motions(runner: JobRunner, emu: Emulator, assets: dict[str, Path]) -> None:
    job = run(runner, emu, "claythis", "image", [PNG])
    assert job.state is JobState.SUCCEEDED, job.error
    path = only_asset(job, "rigged")
    assert path.read_bytes() == assets["rigged"].read_bytes()
    assert [(a.key, a.role) for a in job.assets] == [("rigged", "rigged")]  # one GLB with every animation
    (task,) = emu.claythis.tasks.values()
    assert task.image == PNG and task.image_content_type == "image/png" and task.image_url is None
    assert task.motions is None  # omitted: all 127
    assert job.tasks[0].remote_id == task.id
    assert all(r.had_auth for r in emu.requests if r.path.startswith("/api/3d/"))


def test_claythis_image_url_and_motions(runner: JobRunner, emu: Emulator) -> None:
    job = run(runner, emu, "claythis", "image", options={"image_url": "https://example.com/hero.png",
                                                          "motions": "Idle_Loop, walk_loop_rig\nMy_Custom_Rig"},
              rig=True, animations=[{"action_id": 0, "name": "Jog_Fwd_Loop_Rig"}])
    assert job.state is JobState.SUCCEEDED, job.error
    (task,) = emu.claythis.tasks.values()
    assert task.image is None and task.image_url == "https://example.com/hero.png"
    assert task.motions == ["Idle_Loop_Rig", "Walk_Loop_Rig", "My_Custom_Rig", "Jog_Fwd_Loop_Rig"]


@pytest.mark.parametrize("shape", ["documented", "flat", "nested", "bare"])
def test_claythis_status_shapes(runner: JobRunner, emu: Emulator, shape: str) -> None:
    emu.claythis.status_shape = shape
    emu.claythis.words = {"pending": "waiting", "running": "rigging", "done": "finished", "failed": "error"}
    job = run(runner, emu, "claythis", "image", [JPEG])
    assert job.state is JobState.SUCCEEDED, job.error
    assert emu.claythis.status_calls == 4


def test_claythis_unknown_step_names_keep_waiting(runner: JobRunner, emu: Emulator) -> None:
    emu.claythis.words = {"pending": "in queue", "running": "texturing", "done": "all-good", "failed": "failed"}
    job = run(runner, emu, "claythis", "image", [PNG])
    assert job.state is JobState.SUCCEEDED, job.error


def test_claythis_failed_and_unexpected_answers(runner: JobRunner, emu: Emulator) -> None:
    emu.claythis.fail_next("No humanoid found in the picture")
    job = run(runner, emu, "claythis", "image", [PNG])
    assert job.state is JobState.FAILED and "No humanoid found in the picture" in (job.error or "")
    assert job.error_code == "failed"

    emu.claythis.render = lambda task, phase, progress, link: {"weird": True, "phase_number": 7}
    job = run(runner, emu, "claythis", "image", [PNG])
    assert job.state is JobState.FAILED
    assert "without a status, progress or download link" in (job.error or "") and "phase_number" in (job.error or "")

    emu.claythis.render = None
    emu.inject("GET", r"/status$", status=200, body="<html>maintenance</html>")
    job = run(runner, emu, "claythis", "image", [PNG])
    assert job.state is JobState.FAILED and "not JSON" in (job.error or "") and "maintenance" in (job.error or "")


def test_claythis_expired_download_url_is_refreshed(runner: JobRunner, emu: Emulator) -> None:
    emu.claythis.expired_links = 1
    job = run(runner, emu, "claythis", "image", [PNG])
    assert job.state is JobState.SUCCEEDED, job.error
    assert emu.claythis.status_calls == 5 and emu.count("GET", r"^/assets/") == 2


def test_claythis_motion_names(runner: JobRunner, emu: Emulator) -> None:
    provider = ClaythisProvider()
    assert len(provider.motion_names) >= 80 and set(provider.documented_motions) <= set(provider.motion_names)
    assert known_motion("idle_loop_rig") and known_motion("Walk_Loop_Rig") and not known_motion("Moonwalk_Rig")
    assert canonical_motion("idle_loop") == "Idle_Loop_Rig" and canonical_motion("Moonwalk_Rig") == "Moonwalk_Rig"
    for garbage in ('"; drop', "Idle Loop", "-x"):
        with pytest.raises(InputError, match="not a motion name"):
            run(runner, emu, "claythis", "image", [PNG], options={"motions": [garbage]})
    emu.claythis.known_motions = {"Idle_Loop_Rig"}
    job = run(runner, emu, "claythis", "image", [PNG], options={"motions": ["Idle_Loop_Rig", "Moonwalk_Rig"]})
    assert job.state is JobState.FAILED and "Unknown motions: Moonwalk_Rig" in (job.error or "")
    assert emu.claythis.tasks == {}


def test_claythis_wrong_key_and_snapshot_words(runner: JobRunner, emu: Emulator) -> None:
    job = run(runner, emu, "claythis", "image", [PNG], key="nope")
    assert job.state is JobState.FAILED and "rejected (401)" in (job.error or "")
    assert claythis_snapshot({"status": "Queued"}).state is JobState.PENDING
    assert claythis_snapshot({"data": {"state": "done", "result": {"url": "https://h/x.glb"}}}).result_urls == {
        "glb": "https://h/x.glb"}
    assert claythis_snapshot({"progress": 0.5}).progress == 50
    assert claythis_snapshot({"data": {"status": "cancelled"}}).state is JobState.CANCELED
    with pytest.raises(ProviderError, match="ready but gave no download link"):
        claythis_snapshot({"status": "completed", "progress": 100})
    with pytest.raises(ProviderError, match="unexpected"):
        claythis_snapshot(["not", "an", "object"])


# -- image3d.io -------------------------------------------------------------------------------------


def test_image3d_image_job(runner: JobRunner, emu: Emulator, assets: dict[str, Path]) -> None:
    job = run(runner, emu, "image3d", "image", [PNG])
    assert job.state is JobState.SUCCEEDED, job.error
    assert only_asset(job, "model").read_bytes() == assets["model"].read_bytes()
    (task,) = emu.image3d.tasks.values()
    assert (task.mode, task.quality, task.image, task.image_encoding) == ("image", "pro", PNG, "raw")
    assert job.tasks[0].remote_id == task.id and emu.image3d.balance == 580 - 2


def test_image3d_text_job_and_balance(runner: JobRunner, emu: Emulator) -> None:
    job = run(runner, emu, "image3d", "text", prompt="a red sports car", options={"quality": "ultra"})
    assert job.state is JobState.SUCCEEDED, job.error
    (task,) = emu.image3d.tasks.values()
    assert (task.mode, task.quality, task.prompt, task.image) == ("text", "ultra", "a red sports car", None)
    with closing(client(emu, "image3d")) as api:
        assert all_providers()["image3d"].balance(api) == 580 - 4


def test_image3d_expired_token_says_how_to_get_a_new_one(runner: JobRunner, emu: Emulator) -> None:
    emu.image3d.token_expired = True
    job = run(runner, emu, "image3d", "image", [PNG])
    assert job.state is JobState.FAILED and job.error_code == "token_expired"
    for fragment in ("expired", "one hour", "Sign in at https://image3d.io", "image3d.io ID Token"):
        assert fragment in (job.error or "")
    assert emu.image3d.tasks == {}
    with closing(client(emu, "image3d")) as api, pytest.raises(AuthError, match="fresh ID token"):
        all_providers()["image3d"].balance(api)
    # a token that expires while the job is polling: the status call needs none (seed 003's Quick Start
    # polls it without one), so the job goes on
    emu.image3d.token_expired = False
    emu.image3d.pending_polls = 10_000
    request = GenerationRequest(provider="image3d", kind="image", name="Hero")
    started = runner.submit(request, config(emu, "image3d"), [InputFile("a.png", PNG)])
    deadline = time.monotonic() + 10
    while not emu.image3d.tasks:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    emu.image3d.token_expired = True
    for task in emu.image3d.tasks.values():
        task.pending_polls = 0
    job = wait(runner, started.id, JOB_TIMEOUT)
    assert job.state is JobState.SUCCEEDED, job.error


def test_image3d_credits_rate_limit_and_failure(runner: JobRunner, emu: Emulator) -> None:
    emu.image3d.balance = 1
    job = run(runner, emu, "image3d", "image", [PNG])
    assert job.state is JobState.FAILED and "buy credits at https://image3d.io/pricing/" in (job.error or "")
    assert job.error_code == "insufficient_credits"
    emu.image3d.balance = 100
    emu.clear_log()
    emu.inject("POST", r"^/api/generate$", status=429, body={"error": "Too many requests"}, times=2)
    job = run(runner, emu, "image3d", "image", [PNG], options={"quality": "fast"})
    assert job.state is JobState.SUCCEEDED, job.error
    assert emu.count("POST", r"^/api/generate$") == 3 and len(emu.image3d.tasks) == 1
    emu.image3d.fail_next("The mesh could not be generated")
    job = run(runner, emu, "image3d", "text", prompt="a cat")
    assert job.state is JobState.FAILED and "The mesh could not be generated" in (job.error or "")
    assert emu.image3d.balance == 100 - 1  # the failed one was refunded


# -- Claid ------------------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_claid_scene_images(runner: JobRunner, emu: Emulator) -> None:
    options = {"prompt": "on a marble counter, soft daylight", "negative_prompt": "text, watermark",
               "aspect_ratio": "16:9", "number_of_images": 3, "preference": "best"}
    job = run(runner, emu, "claid", "image", [PNG], options=options)
    assert job.state is JobState.SUCCEEDED, job.error
    assert [(a.key, a.role) for a in job.assets] == [("image:1", "image"), ("image:2", "image"), ("image:3", "image")]
    paths = [only_asset(job, a.key) for a in job.assets]
    assert all(sniff_file(p) == "png" and _png_size(p) == (96, 54) for p in paths)
    assert len({p.read_bytes() for p in paths}) == 3
    (upload,) = emu.claid.uploads
    assert upload.filename == "marionette_object" and upload.content_type == "image/png"
    assert upload.data == {"operations": {"background": {"remove": True}}, "output": {"format": "png"}}
    (scene,) = emu.claid.scenes
    assert scene.request == {
        "object": {"image_url": upload.tmp_url, "placement_type": "absolute", "scale": 0.6,
                   "position": {"x": 0.5, "y": 0.5}},
        "scene": {"model": "v1", "prompt": "on a marble counter, soft daylight", "aspect_ratio": "16:9",
                  "preference": "best", "negative_prompt": "text, watermark"},
        "output": {"number_of_images": 3, "format": "png"},
    }
    upload_task, scene_task = job.tasks
    assert upload_task.remote_id == upload.tmp_url and upload_task.status is TaskStatus.SUCCEEDED
    assert list(scene_task.result_urls.values()) == scene.urls and scene_task.status is TaskStatus.SUCCEEDED
    assert emu.count("POST", r"/scene/create$") == 1 and emu.claid.credits == 100 - 1 - 3


def test_claid_defaults_let_claid_write_the_prompt(runner: JobRunner, emu: Emulator) -> None:
    job = run(runner, emu, "claid", "image", [JPEG], options={"remove_background": False,
                                                              "output_format": "jpeg", "number_of_images": 1})
    assert job.state is JobState.SUCCEEDED, job.error
    (scene,) = emu.claid.scenes
    assert scene.request["scene"]["prompt"] == {"generate": True} and "negative_prompt" not in scene.request["scene"]
    assert scene.request["output"] == {"number_of_images": 1, "format": "jpeg"}
    assert emu.claid.uploads[0].data["operations"] == {} and emu.claid.uploads[0].content_type == "image/jpeg"
    assert sniff_file(only_asset(job, "image:1")) == "jpeg"


def test_claid_schema_is_strict(emu: Emulator) -> None:
    with closing(client(emu, "claid")) as api:
        good = {"object": {"image_url": "https://example.com/p.png"}, "scene": {"prompt": "on a table"}}
        assert len(call(api, "POST", "/v1/scene/create", json=good)["data"]["output"]) == 4
        bad = {"object": {"image_url": "https://example.com/p.png"},
               "scene": {"prompt": "on a table", "view": "front"}}
        with pytest.raises(ProviderError) as caught:
            call(api, "POST", "/v1/scene/create", json=bad)
        text = str(caught.value)
        assert caught.value.status == 422 and caught.value.code == "9000"
        assert "scene.view: Extra inputs are not permitted" in text and "validation" in text
        for body in ({"object": {"image_url": "https://e.com/p.png", "scale": 2}, "scene": {"prompt": "on a table"}},
                     {"object": {"image_url": "https://e.com/p.png"}, "scene": {"prompt": "ab"}},
                     {"object": {"image_url": "https://e.com/p.png"}, "scene": {"prompt": "a table",
                                                                             "aspect_ratio": "21:9"}},
                     {"object": {"image_url": "https://e.com/p.png"}, "scene": {"prompt": {"generate": True,
                                                                                         "text": "xyz"}}},
                     {"object": {"image_url": "https://e.com/p.png"}, "scene": {"template_url": "https://e.com/t"}},
                     {"object": {"image_url": "https://e.com/p.png"}, "scene": {"prompt": "on a table"},
                      "output": {"number_of_images": 5}},
                     {"object": {"image_url": "https://e.com/p.png"}, "scene": {"prompt": "x y z"}, "extra": 1}):
            with pytest.raises(ProviderError) as caught:
                call(api, "POST", "/v1/scene/create", json=body)
            assert caught.value.status == 422, body
        expired = emu.files.url("claid-x", "gone.png", -10)
        with pytest.raises(ProviderError, match="can't be retrieved"):
            call(api, "POST", "/v1/scene/create", json={"object": {"image_url": expired},
                                                         "scene": {"prompt": "on a table"}})


def test_claid_errors_reach_the_artist(runner: JobRunner, emu: Emulator) -> None:
    job = run(runner, emu, "claid", "image", [PNG], key="bad")
    assert job.state is JobState.FAILED and job.error_code == "111"
    assert "Claid rejected the API key: Authorization is required." in (job.error or "")
    emu.claid.credits = 2
    job = run(runner, emu, "claid", "image", [PNG])  # the upload fits, four images do not
    assert job.state is JobState.FAILED and "no API calls left" in (job.error or "")
    assert "billing" in (job.error or "")
    emu.claid.credits = 100
    emu.inject("POST", r"/scene/create$", status=422,
               body={"error_code": "9000", "error_type": "validation", "error_message": "Validation error",
                     "error_details": [{"loc": ["body", "scene", "prompt"], "msg": "too long"}]})
    job = run(runner, emu, "claid", "image", [PNG], options={"prompt": "on grass"})
    assert job.state is JobState.FAILED and job.error_code == "9000"
    assert "Validation error (scene.prompt: too long)" in (job.error or "")


def test_claid_rate_limit_is_retried(runner: JobRunner, emu: Emulator) -> None:
    emu.inject("POST", r"/scene/create$", status=429, times=1, headers={"RateLimit-Reset": "0"},
               body={"detail": {"error_code": "2001", "error_type": "general",
                                "error_message": "Too Many Requests. Rate limit exceeded."}})
    job = run(runner, emu, "claid", "image", [PNG], options={"number_of_images": 2})
    assert job.state is JobState.SUCCEEDED, job.error
    assert emu.count("POST", r"/scene/create$") == 2 and len(emu.claid.scenes) == 1
    assert emu.count("POST", r"/image/edit/upload$") == 1


def test_claid_refuses_bad_prompt_lengths(runner: JobRunner, emu: Emulator) -> None:
    with pytest.raises(InputError, match="3 to 2048"):
        run(runner, emu, "claid", "image", [PNG], options={"prompt": "ab"})
    assert ClaidProvider().cost(GenerationRequest(provider="claid", kind="image", name="x")) is None
