"""Issue 11, "Right against the real services": one test (at least) per documented rule the client broke,
each against the strict emulator over real HTTP. The rule and the seed section it comes from are in
tests/RULES.md, with the test that holds it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from addon.core import catalog
from addon.core.errors import InputError, OfflineError, ProviderError
from addon.core.http import Timing
from addon.core.models import AnimationChoice, GenerationRequest, InputKind, Job, JobState, TaskStatus
from addon.core.providers import all_providers
from addon.core.providers.claid import ASPECT_RATIOS
from addon.core.runner import JobRunner
from addon.core.store import JobStore
from tests.emulator import Emulator
from tests.unit.fault_matrix import KEY, config, wait
from tests.unit.test_providers_core import JPEG, PNG
from tests.unit.test_providers_core import run as _run

IMAGE = "/openapi/v1/image-to-3d"
RIG = "/openapi/v1/rigging"
ANIMS = [{"action_id": 92, "name": "Double_Combo_Attack"}]


def run(runner: JobRunner, emu: Emulator, provider: str, kind: InputKind, files: list[bytes] | None = None,
        **extra: Any) -> Job:
    return _run(runner, emu, provider, kind, files, key=KEY, **extra)


def _files(kind: InputKind) -> list[bytes]:
    return {"image": [PNG], "multi_image": [PNG, JPEG], "text": []}[kind]


def _rig_job(runner: JobRunner, emu: Emulator, kind: InputKind, **options: Any) -> Job:
    return run(runner, emu, "meshy", kind, _files(kind), prompt="a knight" if kind == "text" else None,
               options=options, rig=True, animations=ANIMS)


# -- 1. rigging refuses models over 300,000 faces --------------------------------------------------------


@pytest.mark.parametrize("kind", ["image", "multi_image", "text"])
def test_default_meshy_job_with_rig_is_remeshed_under_the_face_limit(runner: JobRunner, emu: Emulator,
                                                                     kind: InputKind) -> None:
    """With meshy-6 should_remesh defaults to false and the raw mesh (over 300,000 faces here) is refused
    by rigging: the default job with Rig on asks for a remesh to 30,000 faces, and reaches the rig."""
    job = _rig_job(runner, emu, kind)
    assert job.state is JobState.SUCCEEDED, job.error
    model = next(t for t in emu.meshy.tasks.values() if t.kind in ("image-to-3d", "multi-image-to-3d",
                                                                    "text-to-3d-preview"))
    assert model.request["should_remesh"] is True and model.request["target_polycount"] == 30_000
    assert [t.kind for t in emu.meshy.tasks.values()].count("rig") == 1
    assert "remesh" not in [t.kind for t in emu.meshy.tasks.values()]  # no extra step was needed
    provider = all_providers()["meshy"]
    request = GenerationRequest(provider="meshy", kind=kind, name="x", prompt="p", rig=True,
                                options=provider.resolve_options({}, kind))
    [step] = provider.added_steps(request)
    assert "turns on Remesh (30,000 faces)" in step and "300,000" in step
    # Without Rig the artist's choice stands: no remesh asked for.
    assert provider.added_steps(request.model_copy(update={"rig": False})) == []


def test_a_model_still_over_the_limit_is_remeshed_before_rigging(runner: JobRunner, emu: Emulator) -> None:
    """Should rigging refuse the model for its face count all the same, the Remesh API (5 credits) makes
    it riggable: the rig goes to the remesh task, and the job says what it added."""
    emu.inject("POST", rf"^{RIG}$", status=400, times=1,
               body={"message": "Face count exceeded: the input model has more than 300,000 faces."})
    job = _rig_job(runner, emu, "image")
    assert job.state is JobState.SUCCEEDED, job.error
    [model] = [t for t in emu.meshy.tasks.values() if t.kind == "image-to-3d"]
    [remesh] = [t for t in emu.meshy.tasks.values() if t.kind == "remesh"]
    [rig] = [t for t in emu.meshy.tasks.values() if t.kind == "rig"]
    assert remesh.request["input_task_id"] == model.id and rig.request["input_task_id"] == remesh.id
    assert [t.key for t in job.tasks] == ["image", "rig", "remesh", "anim:92"] or \
        {t.key for t in job.tasks} == {"image", "rig", "remesh", "anim:92"}


def test_retry_after_a_remesh_for_rigging_counts_only_what_is_sent_again(runner: JobRunner, emu: Emulator) -> None:
    """The remesh added for rigging is not in the job's estimate: a Retry that reuses it (and the model)
    costs the rig and the animations, not the estimate less the remesh too."""
    emu.inject("POST", rf"^{RIG}$", status=400, times=1,
               body={"message": "Face count exceeded: the input model has more than 300,000 faces."})
    emu.meshy.pose_failures = 1  # the rig of the remeshed model is refused next
    job = _rig_job(runner, emu, "image")
    assert job.state is JobState.FAILED
    assert {t.key for t in job.tasks if t.remote_id} == {"image", "remesh"}
    provider = all_providers()["meshy"]
    rig_and_animations = 5 + 3 * len(ANIMS)
    assert provider.cost(job.request) == 30 + rig_and_animations
    retried = runner.retry(job.id, config(emu, "meshy"))
    assert retried.notice == (f"Retry reuses the model, remesh (already paid); the new tasks cost "
                              f"{rig_and_animations} credits")
    done = wait(runner, job.id, 30)
    assert done.state is JobState.SUCCEEDED, done.error
    assert emu.meshy.created["image-to-3d"] == 1 and emu.meshy.created["remesh"] == 1


# -- 2. DELETE permanently deletes ----------------------------------------------------------------------


@pytest.fixture
def slow_runner(tmp_path: Path) -> Iterator[JobRunner]:
    """Polls once a second: a test can act on the emulator between two polls."""
    timing = Timing(connect_timeout=5.0, read_timeout=10.0, poll_interval=1.0, max_poll_interval=1.0,
                    retry_base=0.01, retry_max=0.05, max_transient_retries=3)
    job_runner = JobRunner(JobStore(tmp_path / "slow"), all_providers(), timing)
    yield job_runner
    job_runner.shutdown()


def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_cancel_never_deletes_a_task_that_succeeded(slow_runner: JobRunner, emu: Emulator) -> None:
    """The model succeeded on Meshy (paid) while the journal still says submitted: Cancel looks first and
    keeps it; Retry reuses it (nothing paid again) and says so."""
    job = slow_runner.submit(GenerationRequest(provider="meshy", kind="image", name="Hero", rig=True),
                             config(emu, "meshy"), [_input(PNG)])
    _until(lambda: bool((t := slow_runner.store.get(job.id).task("image")) and t.remote_id))
    remote = slow_runner.store.get(job.id).task("image").remote_id  # type: ignore[union-attr]
    emu.meshy.advance(str(remote), 10)  # done on Meshy, not yet seen by the job
    slow_runner.cancel(job.id, config(emu, "meshy"))
    cancelled = wait(slow_runner, job.id)
    assert cancelled.state is JobState.CANCELED
    assert emu.count("DELETE") == 0 and remote in emu.meshy.tasks
    assert cancelled.task("image").status is TaskStatus.SUCCEEDED  # type: ignore[union-attr]
    retried = slow_runner.retry(job.id, config(emu, "meshy"))
    assert retried.notice == "Retry reuses the model (already paid); the new tasks cost 5 credits"
    done = wait(slow_runner, job.id, 30)
    assert done.state is JobState.SUCCEEDED, done.error
    assert emu.meshy.created["image-to-3d"] == 1 and emu.meshy.created["rig"] == 1


def test_retry_after_a_cancel_that_deleted_creates_a_new_task(runner: JobRunner, emu: Emulator) -> None:
    """Cancel while the rig is queued: the rig is deleted on Meshy (gone for good: 404), the paid model
    kept. Retry says what it costs, creates a new rig and never polls the deleted one."""
    emu.meshy.pending_polls = 10**6
    job = runner.submit(GenerationRequest(provider="meshy", kind="image", name="Hero", rig=True),
                        config(emu, "meshy"), [_input(PNG)])
    _until(lambda: bool(emu.meshy.tasks) and all(t.kind != "rig" for t in emu.meshy.tasks.values()))
    [model] = emu.meshy.tasks.values()
    model.pending_polls = model.running_polls = 0
    _until(lambda: any(t.kind == "rig" for t in emu.meshy.tasks.values()))
    _until(lambda: bool((t := runner.store.get(job.id).task("rig")) and t.remote_id))
    [old_rig] = [t for t in emu.meshy.tasks.values() if t.kind == "rig"]
    runner.cancel(job.id, config(emu, "meshy"))
    cancelled = wait(runner, job.id)
    assert cancelled.state is JobState.CANCELED and [t.id for t in emu.meshy.deleted] == [old_rig.id]
    assert requests.get(f"{emu.base_url}{RIG}/{old_rig.id}", headers={"Authorization": f"Bearer {KEY}"},
                        timeout=5).status_code == 404
    assert cancelled.task("rig").status is TaskStatus.CANCELED  # type: ignore[union-attr]
    emu.meshy.pending_polls = 0
    polls_of_old = emu.count("GET", rf"^{RIG}/{old_rig.id}$")
    retried = runner.retry(job.id, config(emu, "meshy"))
    assert retried.notice == "Retry reuses the model (already paid); the new tasks cost 5 credits"
    done = wait(runner, job.id, 30)
    assert done.state is JobState.SUCCEEDED, done.error
    assert emu.count("GET", rf"^{RIG}/{old_rig.id}$") == polls_of_old  # the deleted rig is never polled again
    assert done.task("rig").remote_id != old_rig.id and emu.meshy.created["rig"] == 2  # type: ignore[union-attr]
    assert emu.meshy.created["image-to-3d"] == 1


def test_a_task_meshy_no_longer_has_fails_clearly_and_retry_recreates_it(runner: JobRunner, emu: Emulator) -> None:
    """A journal that still polls a deleted task (an older Marionette's Cancel): 404 ends the job saying so
    and what Retry costs; Retry creates the task again instead of polling it."""
    emu.meshy.pending_polls = 10**6
    job = runner.submit(GenerationRequest(provider="meshy", kind="image", name="Hero"), config(emu, "meshy"),
                        [_input(PNG)])
    _until(lambda: bool((t := runner.store.get(job.id).task("image")) and t.remote_id))
    remote = runner.store.get(job.id).task("image").remote_id  # type: ignore[union-attr]
    requests.delete(f"{emu.base_url}{IMAGE}/{remote}", headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
    failed = wait(runner, job.id)
    assert failed.state is JobState.FAILED and "no longer has the model task" in (failed.error or "")
    assert "press Retry to create it again (30 credits)" in (failed.error or "")
    emu.meshy.pending_polls = 0
    assert runner.retry(job.id, config(emu, "meshy")).notice == "Retry sends the whole job again: 30 credits"
    done = wait(runner, job.id, 30)
    assert done.state is JobState.SUCCEEDED and emu.meshy.created["image-to-3d"] == 2


# -- 4. untextured models are never sent to rigging ----------------------------------------------------


@pytest.mark.parametrize("kind", ["image", "multi_image", "text"])
def test_rig_with_texture_off_is_refused_before_anything_is_sent(runner: JobRunner, emu: Emulator,
                                                                 kind: InputKind) -> None:
    with pytest.raises(InputError, match="rigs textured characters only: turn on Texture"):
        _rig_job(runner, emu, kind, should_texture=False)
    assert emu.count("POST") == 0 and runner.store.all() == []


# -- 5. pose estimation failed ---------------------------------------------------------------------------


def test_pose_estimation_failure_says_what_to_do(runner: JobRunner, emu: Emulator) -> None:
    emu.meshy.pose_failures = 1
    job = _rig_job(runner, emu, "image")
    assert job.state is JobState.FAILED and job.error_code == "pose_estimation_failed"
    for words in ("humanoid", "T-pose", "A-pose", "Retry"):
        assert words in (job.error or ""), job.error
    assert "HTTP 422" not in (job.error or "")
    job = runner.retry(job.id, config(emu, "meshy"))
    assert wait(runner, job.id, 30).state is JobState.SUCCEEDED and emu.meshy.created["image-to-3d"] == 1


# -- 6. animation ids checked before paying -----------------------------------------------------------


@pytest.mark.parametrize("action_id", [-1, 10**12])
def test_impossible_animation_ids_are_refused_at_submit(runner: JobRunner, emu: Emulator, action_id: int) -> None:
    with pytest.raises(InputError, match="not a Meshy animation id"):
        run(runner, emu, "meshy", "image", [PNG], rig=True,
            animations=[AnimationChoice(action_id=action_id, name="x")])
    assert emu.count("POST") == 0


@pytest.mark.parametrize("kind", ["image", "armature"])
def test_animation_ids_missing_from_the_catalog_are_refused_before_paying(runner: JobRunner, emu: Emulator,
                                                                          kind: InputKind) -> None:
    options = {"rig_task_id": "some-rig"} if kind == "armature" else {}
    job = run(runner, emu, "meshy", kind, [PNG] if kind == "image" else [], rig=True,
              animations=[{"action_id": 9999, "name": "Nope"}, *ANIMS], options=options)
    assert job.state is JobState.FAILED and "has no animation 9999 (Nope)" in (job.error or "")
    assert "Nothing was sent or paid" in (job.error or "")
    assert emu.count("POST") == 0 and emu.meshy.balance == 1000
    assert emu.count("GET", r"^/web/public/animations/resources$") == 1


# -- 7. Claid's nine aspect ratios ---------------------------------------------------------------------


def test_claid_offers_exactly_the_nine_documented_ratios(runner: JobRunner, emu: Emulator) -> None:
    documented = {"4:7", "7:9", "4:5", "1:1", "9:7", "19:13", "7:4", "16:9", "12:5"}
    assert set(ASPECT_RATIOS) == documented and len(ASPECT_RATIOS) == 9
    [spec] = [s for s in all_providers()["claid"].options if s.name == "aspect_ratio"]
    assert {item[0] for item in spec.items} == documented
    for ratio in ("19:13", "12:5"):
        job = run(runner, emu, "claid", "image", [PNG], options={"aspect_ratio": ratio, "number_of_images": 1})
        assert job.state is JobState.SUCCEEDED, job.error
        assert emu.claid.scenes[-1].request["scene"]["aspect_ratio"] == ratio
    with pytest.raises(InputError, match="aspect_ratio must be one of"):
        run(runner, emu, "claid", "image", [PNG], options={"aspect_ratio": "4:3"})


# -- 8. image3d.io: plain base64 ------------------------------------------------------------------------


def test_image3d_image_is_plain_base64(runner: JobRunner, emu: Emulator) -> None:
    job = run(runner, emu, "image3d", "image", [JPEG])
    assert job.state is JobState.SUCCEEDED, job.error
    [task] = emu.image3d.tasks.values()
    assert task.image_encoding == "raw" and task.image == JPEG
    # the strict emulator refuses what the document does not describe
    r = requests.post(f"{emu.base_url}/api/generate", timeout=5, headers={"Authorization": f"Bearer {KEY}"},
                      json={"mode": "image", "image": "data:image/png;base64,AAAA"})
    assert r.status_code == 400 and r.json() == {"error": "image must be base64-encoded image data"}


# -- 10. Rodin's jobs: an object or an array -----------------------------------------------------------


@pytest.mark.parametrize("shape", ["object", "array"])
def test_rodin_submit_answer_jobs_object_or_array(runner: JobRunner, emu: Emulator, shape: str) -> None:
    emu.rodin.jobs_shape = shape
    job = run(runner, emu, "rodin", "image", [PNG])
    assert job.state is JobState.SUCCEEDED, job.error
    [task] = emu.rodin.tasks.values()
    assert job.tasks[0].result_urls.get("subscription_key") == task.subscription_key
    assert emu.count("POST", r"/status$") >= 1  # polled by its subscription key, as documented


# -- 12. the catalog goes through the HTTP client and network policy ---------------------------------


def test_catalog_follows_no_redirect(emu: Emulator, tmp_path: Path) -> None:
    emu.inject("GET", r"^/web/public/animations/resources$", status=302, body="",
               headers={"Location": f"{emu.base_url}/elsewhere/resources"})
    with pytest.raises(ProviderError, match="redirect"):
        catalog.CatalogCache(tmp_path / "lib.json").fetch(emu.base_url, online_access=False)
    assert emu.count("GET", r"^/elsewhere") == 0 and not (tmp_path / "lib.json").exists()


def test_catalog_size_is_limited(emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "MAX_CATALOG_BYTES", 1000)
    with pytest.raises(ProviderError, match="larger than"):
        catalog.CatalogCache(tmp_path / "lib.json").fetch(emu.base_url, online_access=False)
    monkeypatch.undo()
    fetched = catalog.CatalogCache(tmp_path / "lib.json").fetch(emu.base_url, online_access=False)
    assert fetched.by_id(92) is not None and json.loads((tmp_path / "lib.json").read_text())["entries"]


def test_catalog_respects_online_access(tmp_path: Path) -> None:
    with pytest.raises(OfflineError, match="Online access is off"):
        catalog.CatalogCache(tmp_path / "lib.json").fetch("https://api.meshy.ai", online_access=False)


def _input(data: bytes) -> Any:
    from addon.core.runner import InputFile

    return InputFile("view0.png", data)


# -- 9. image3d.io's ID token expires after an hour ----------------------------------------------------


def test_id_token_expiry_is_read_from_the_jwt(emu: Emulator) -> None:
    from addon.core import idtoken

    token = emu.image3d.issue_token(ttl=1800)
    now = time.time()
    left = idtoken.remaining(token, now)
    assert left is not None and 1790 < left <= 1800
    assert idtoken.describe(token, now) == "The ID token expires in 29 min"
    assert idtoken.submit_warning(token, now) is None
    assert "expires in 4 min" in (idtoken.submit_warning(token, now + 1520) or "")
    assert idtoken.expired(token, now + 1800) and "expired" in idtoken.describe(token, now + 1900)
    assert idtoken.expiry("not-a-jwt") is None and idtoken.expiry("a.b.c") is None
    assert "carries no expiry" in idtoken.describe("abc.def.ghi")


def test_a_job_whose_token_expires_waits_for_a_fresh_one_and_goes_on(runner: JobRunner, emu: Emulator) -> None:
    """The token expires while the job waits for a free slot: the generate is refused (401), the job waits
    ("paste a fresh ID token") instead of failing, and goes on by itself once a fresh token is saved."""
    saved = {"image3d": emu.image3d.issue_token(ttl=2)}
    runner.key_source = lambda provider_id: saved[provider_id]
    emu.image3d.concurrency_limit = 0  # busy: the job waits for a slot, the token runs out meanwhile
    job = runner.submit(GenerationRequest(provider="image3d", kind="image", name="Hero"),
                        config(emu, "image3d", saved["image3d"]), [_input(PNG)])
    time.sleep(2.5)
    emu.image3d.concurrency_limit = None
    _until(lambda: runner.store.get(job.id).stage == "Waiting for a fresh image3d.io ID token")
    waiting = runner.store.get(job.id)
    assert waiting.state is JobState.PENDING and "paste a fresh ID token" in (waiting.notice or "")
    assert waiting.tasks[0].status is TaskStatus.NEW  # refused (401): a restart now would simply send it
    assert not emu.image3d.tasks  # nothing was created with the expired token
    saved["image3d"] = emu.image3d.issue_token(ttl=3600)
    done = wait(runner, job.id, 30)
    assert done.state is JobState.SUCCEEDED, done.error
    assert len(emu.image3d.tasks) == 1


def test_an_expired_token_without_a_way_to_get_a_new_one_fails_clearly(runner: JobRunner, emu: Emulator) -> None:
    token = emu.image3d.issue_token(ttl=-60)
    job = wait(runner, runner.submit(GenerationRequest(provider="image3d", kind="image", name="Hero"),
                                     config(emu, "image3d", token), [_input(PNG)]).id)
    assert job.state is JobState.FAILED and job.error_code == "token_expired" and not emu.image3d.tasks


def test_a_submit_likely_to_outlive_the_token_is_warned(runner: JobRunner, emu: Emulator) -> None:
    token = emu.image3d.issue_token(ttl=300)
    job = runner.submit(GenerationRequest(provider="image3d", kind="image", name="Hero"),
                        config(emu, "image3d", token), [_input(PNG)])
    assert "ID token expires in 4 min" in (job.notice or "") and "may outlive it" in (job.notice or "")
    assert wait(runner, job.id, 30).state is JobState.SUCCEEDED
    fresh = emu.image3d.issue_token(ttl=3600)
    quiet = runner.submit(GenerationRequest(provider="image3d", kind="image", name="Other"),
                          config(emu, "image3d", fresh), [_input(JPEG)])
    assert quiet.notice is None
    wait(runner, quiet.id, 30)
