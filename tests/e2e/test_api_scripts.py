"""The public API scripts drive several jobs with (scripts/batch.py uses nothing else): api.pump,
api.find_jobs, api.providers, api.stalled and the error classes."""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.emulator import Emulator


def test_find_jobs_by_name_provider_and_time(api: ModuleType, emulator: Emulator, assets: dict[str, Path]) -> None:
    assert "meshy" in api.providers() and "rodin" in api.providers()
    first = api.wait(api.submit("meshy", image=str(assets["sample.png"]), name="Script A"), timeout=60)
    time.sleep(0.05)
    since = time.time()
    second = api.wait(api.submit("meshy", image=str(assets["sample.jpg"]), name="Script B"), timeout=60)
    assert [j.id for j in api.find_jobs("Script A")] == [first.id]
    assert [j.id for j in api.find_jobs(["Script B", "Script A"])] == [first.id, second.id]  # oldest first
    assert [j.id for j in api.find_jobs(["Script A", "Script B"], since=since)] == [second.id]
    assert api.find_jobs("Script A", provider="rodin") == []
    assert [j.id for j in api.find_jobs(provider="meshy")] == [first.id, second.id]
    assert api.find_jobs("Nobody") == []


def test_pump_and_stalled(api: ModuleType, emulator: Emulator, session: Any, assets: dict[str, Path],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    interval = api.pump()
    assert isinstance(interval, float) and interval > 0
    monkeypatch.setattr(emulator.meshy, "pending_polls", 10**6)  # the job waits in Meshy's queue (this test only)
    job_id = api.submit("meshy", image=str(assets["sample.png"]), name="Queued")
    deadline = time.monotonic() + 30
    while not api.get(job_id).task_ids.get("image"):
        assert time.monotonic() < deadline, "the job never reached Meshy"
        api.pump()
        time.sleep(0.02)
    assert api.stalled(job_id) is None  # running here
    api.cancel(job_id)
    deadline = time.monotonic() + 30
    while session.runner.is_running(job_id):
        assert time.monotonic() < deadline
        api.pump()
        time.sleep(0.02)
    assert api.stalled(job_id) is None  # ended
    # An unfinished job nobody works on, whose provider cannot be used (no key for the real Meshy).
    job = session.store.get(job_id).model_copy(update={"id": "stalled-job", "state": api.JobState.RUNNING})
    session.store.add(job)
    monkeypatch.setenv("MARIONETTE_MESHY_BASE_URL", "https://api.meshy.ai")
    reason = api.stalled("stalled-job")
    assert reason is not None and reason.startswith("job stalled-job cannot continue: ") and "API Key" in reason
    monkeypatch.setenv("MARIONETTE_MESHY_BASE_URL", emulator.base_url)
    assert api.stalled("stalled-job") == "job stalled-job is RUNNING but Marionette is not working on it"
    session.store.remove("stalled-job")
    with pytest.raises(KeyError):
        api.stalled("no-such-job")


def test_errors_are_part_of_the_api(api: ModuleType) -> None:
    assert issubclass(api.ConfigError, api.MarionetteError) and issubclass(api.InputError, api.MarionetteError)
    with pytest.raises(api.InputError, match="Unknown provider"):
        api.submit("nobody", prompt="x")
