"""Fault matrix, a hostile or broken world (core, real HTTP against the emulator): URLs that parsers read
differently, keys that are not keys, API answers too large or bombs, answers of the wrong shape, bad
task ids and a journal nested too deeply.

A socket audit hook records every connection this process opens and refuses any to a non-loopback
address, so the URL tests prove that nothing even tried to reach 192.0.2.1 (and nothing could)."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from addon.core import config as core_config
from addon.core import netpolicy, redaction
from addon.core.errors import ConfigError, InputError
from addon.core.http import ProviderConfig, redact
from addon.core.models import JobState, TaskStatus
from addon.core.providers import all_providers
from addon.core.runner import JobRunner
from addon.core.store import JobStore
from tests.emulator import Emulator
from tests.unit.fault_matrix import (
    ASSET,
    KEY,
    POLL,
    POLLING,
    Matrix,
    config,
    created,
    request,
    result_ok,
    run,
    wait,
)

# -- every connection this process opens ---------------------------------------------------------------

_CONNECTS: list[str] = []
_HOOKED = threading.Lock()
_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect":
        return
    address = args[1]
    host = str(address[0]) if isinstance(address, tuple) and address else str(address)
    _CONNECTS.append(host)
    if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("/"):
        raise PermissionError(f"test guard: no connection to {host}")


@pytest.fixture
def connects() -> Iterator[list[str]]:
    """Hosts connected to during the test (a non-loopback one is refused by the hook, and recorded)."""
    global _installed
    with _HOOKED:
        if not _installed:
            sys.addaudithook(_audit)
            _installed = True
    _CONNECTS.clear()
    yield _CONNECTS


def _confusing(emu: Emulator) -> str:
    """urlsplit reads this as 127.0.0.1, urllib3 (and so requests) as 192.0.2.1."""
    return f"http://192.0.2.1:{emu.port}\\@127.0.0.1:{emu.port}"


# -- one URL parser --------------------------------------------------------------------------------------


def test_one_parser_refuses_what_parsers_read_differently() -> None:
    for url in ("http://192.0.2.1:80\\@127.0.0.1:80/x", "https://attacker.example\\@api.meshy.ai",
                "http://user:pw@127.0.0.1/", "http://127.0.0.1:9@192.0.2.1/", "ftp://127.0.0.1/",
                "file:///etc/hostname", "http://127.0.0.1/a\nb", "javascript:alert(1)", ""):
        with pytest.raises(ConfigError):
            netpolicy.parse(url)
    target = netpolicy.parse("HTTP://LocalHost:8080/a b?x=1")
    assert (target.scheme, target.host, target.port) == ("http", "localhost", 8080)
    assert netpolicy.parse("http://[::1]:5/x").host == "::1" and netpolicy.is_loopback_url("http://[::1]:5/x")
    assert netpolicy.parse("https://api.meshy.ai/x").port == 443
    assert not netpolicy.same_origin("https://attacker.example\\@api.meshy.ai/v1", "https://api.meshy.ai")
    with pytest.raises(ConfigError):
        ProviderConfig("https://attacker.example\\@api.meshy.ai", KEY)


def test_confusing_base_url_never_connects(emu: Emulator, runner: JobRunner, matrix: Matrix,
                                           connects: list[str]) -> None:
    runner.online_access = False
    base = _confusing(emu)
    refused = False
    try:
        cfg = ProviderConfig(base, KEY)
        job = runner.submit(request("meshy"), cfg, [])
        wait(runner, job.id)
    except ConfigError as exc:
        refused = "backslash" in str(exc)
    ok = refused and "192.0.2.1" not in connects
    matrix.record("url_confusion", "meshy", "base URL", survived=ok)
    assert "192.0.2.1" not in connects
    assert refused


@pytest.mark.parametrize("provider", POLLING)
def test_confusing_result_link_never_connects(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str,
                                              connects: list[str]) -> None:
    runner.online_access = False
    emu.asset_base_url = _confusing(emu)
    job = run(runner, emu, provider)
    emu.asset_base_url = None
    ok = job.state is JobState.FAILED and "backslash" in (job.error or "") and "192.0.2.1" not in connects
    # The paid task is kept in the journal (recoverable by its id), and was made once.
    ok = ok and any(t.remote_id for t in job.tasks) and created(emu, provider) == 1
    matrix.record("url_confusion", provider, "result link", survived=ok)
    assert "192.0.2.1" not in connects
    assert ok, job.error
    # The provider hands out good links again: Retry asks for one (the refused link stored in the journal is
    # not reused) and gets the result without paying again.
    again = wait(runner, runner.retry(job.id, config(emu, provider)).id)
    assert again.state is JobState.SUCCEEDED, again.error
    assert created(emu, provider) == 1


@pytest.mark.parametrize("provider", POLLING)
def test_confusing_redirect_never_connects(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str,
                                           connects: list[str]) -> None:
    runner.online_access = False
    emu.inject("GET", ASSET[provider], status=302, times=1000,
               headers={"Location": _confusing(emu) + "/assets/elsewhere/model.glb"})
    job = run(runner, emu, provider)
    emu.clear_injections()
    ok = job.state is JobState.FAILED and "backslash" in (job.error or "") and "192.0.2.1" not in connects
    ok = ok and any(t.remote_id for t in job.tasks) and created(emu, provider) == 1
    matrix.record("url_confusion", provider, "redirect", survived=ok)
    assert "192.0.2.1" not in connects
    assert ok, job.error
    # A link that redirected that way once is asked for again: a redirect that has stopped costs nothing.
    emu.inject("GET", ASSET[provider], status=302, times=1,
               headers={"Location": _confusing(emu) + "/assets/elsewhere/model.glb"})
    again = wait(runner, runner.retry(job.id, config(emu, provider)).id)
    assert again.state is JobState.SUCCEEDED, again.error
    assert "192.0.2.1" not in connects and created(emu, provider) == 1


# -- keys that are not keys ----------------------------------------------------------------------------


BAD_KEYS = {
    "line break": "msy_live_0123456789\nabcdef",
    "control character": "msy_live_0123456789\x07abcdef",
    "not plain ASCII": "msy_live_0123456789abcdef\u200b",
    "space": "msy_live_01234 56789abcdef",
}


@pytest.mark.parametrize("problem", list(BAD_KEYS))
def test_a_bad_key_is_refused_where_it_enters(matrix: Matrix, problem: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = BAD_KEYS[problem]
    meshy = all_providers()["meshy"]
    messages = []
    for environ, pref in (({"MARIONETTE_MESHY_API_KEY": key}, ""), ({}, key)):
        with pytest.raises(ConfigError) as caught:
            core_config.resolve(meshy, pref, "", environ)
        messages.append(str(caught.value))
    with pytest.raises(ConfigError) as direct:
        ProviderConfig("http://127.0.0.1:9", key)
    messages.append(str(direct.value))
    words = problem.split()[-1]
    core = key.replace("\n", "").replace("\x07", "").replace("\u200b", "").replace(" ", "")
    leaked = [m for m in messages if core[:12] in m or key in m or repr(key)[1:-1] in m]
    ok = not leaked and all(words in m for m in messages) and "MARIONETTE_MESHY_API_KEY" in messages[0] \
        and "Preferences" in messages[1]
    matrix.record("bad_key", "meshy", "environment, preferences", injected=3, survived=3 if ok else 0)
    assert not leaked, leaked
    assert ok, messages


def test_escaped_and_quoted_forms_of_a_key_are_redacted() -> None:
    key = "sk_live_ABC\ndef\"ghi/jkl"
    redaction.register_secret(key)
    try:
        requests.Request("GET", "http://127.0.0.1:9/", headers={"Authorization": f"Bearer {key}"}).prepare()
    except requests.exceptions.InvalidHeader as exc:
        header_error = str(exc)
    else:  # pragma: no cover - requests always refuses a newline in a header
        raise AssertionError("requests took a header with a line break")
    forms = [key, repr(key), json.dumps(key), json.dumps(json.dumps(key)), repr(key.encode()),
             key.encode("unicode_escape").decode(), urllib.parse.quote(key, safe=""), header_error,
             f"error: {key!r} in {json.dumps({'k': key})}"]
    cleaned = [redact(text) for text in forms]
    assert all("ABC" not in text and "jkl" not in text for text in cleaned), cleaned
    assert redact("a harmless sentence") == "a harmless sentence"


# -- bounded answers -----------------------------------------------------------------------------------


def _rss_peak_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.parametrize("provider", POLLING)
def test_a_gzip_bomb_fails_the_poll_and_memory_stays_flat(emu: Emulator, runner: JobRunner, matrix: Matrix,
                                                         provider: str) -> None:
    method, path = POLL[provider]
    emu.inject_fault(method, path, "gzip_bomb", keep=512 << 20)  # 512 MiB of zeros in about 0.5 MB
    from tests.emulator.server import gzip_bomb
    gzip_bomb(512 << 20)  # made before the measurement
    before = _rss_mb()
    resettable = _rss_peak_reset()
    job = run(runner, emu, provider)
    growth = (_rss_peak_mb() if resettable else _rss_mb()) - before
    failed = job.state is JobState.FAILED and "larger than 8 MB once decompressed" in (job.error or "")
    kept = any(t.remote_id and t.status is TaskStatus.SUBMITTED for t in job.tasks)
    again = wait(runner, runner.retry(job.id, config(emu, provider)).id) if failed else job
    ok = failed and kept and growth < 64 and result_ok(again, provider) and created(emu, provider) == 1
    matrix.record("answer_bomb", provider, "poll", survived=ok)
    print(f"{provider}: peak RSS growth during the bomb {growth:.1f} MB")
    assert growth < 64, growth
    assert ok, (job.error, again.error)


def test_an_oversized_plain_answer_fails_clearly(emu: Emulator, runner: JobRunner, matrix: Matrix) -> None:
    method, path = POLL["meshy"]
    emu.inject(method, path, status=200, body={"status": "IN_PROGRESS", "pad": "x" * (9 << 20)})
    job = run(runner, emu, "meshy")
    failed = job.state is JobState.FAILED and "larger than 8 MB" in (job.error or "")
    again = wait(runner, runner.retry(job.id, config(emu, "meshy")).id) if failed else job
    ok = failed and result_ok(again, "meshy") and created(emu, "meshy") == 1
    matrix.record("answer_bomb", "meshy", "poll", survived=ok)
    assert ok, (job.error, again.error)


def test_bounded_reading_keeps_ordinary_answers(emu: Emulator, runner: JobRunner) -> None:
    # gzip-compressed answers of ordinary size still read (the emulator compresses nothing itself)
    import gzip
    method, path = POLL["meshy"]
    body = gzip.compress(json.dumps({"status": "IN_PROGRESS", "progress": 5}).encode())
    emu.inject(method, path, status=200, body=body, headers={"Content-Encoding": "gzip",
                                                               "Content-Type": "application/json"})
    job = run(runner, emu, "meshy")
    assert result_ok(job, "meshy"), job.error


# -- answers of the wrong shape ------------------------------------------------------------------------


def test_a_wrong_typed_progress_keeps_a_finished_result(emu: Emulator, runner: JobRunner, matrix: Matrix) -> None:
    method, path = POLL["meshy"]
    emu.inject_fault(method, path, "reshape", patch={"progress": "abc"}, times=1000)
    job = run(runner, emu, "meshy")
    ok = result_ok(job, "meshy") and created(emu, "meshy") == 1
    matrix.record("wrong_shape", "meshy", "poll: progress 'abc'", survived=ok)
    emu.clear_injections()
    assert ok, job.error


@pytest.mark.parametrize("shape", ["list", "model_urls list", "not json"])
def test_an_unreadable_answer_is_a_protocol_error(emu: Emulator, runner: JobRunner, matrix: Matrix,
                                                 shape: str) -> None:
    method, path = POLL["meshy"]
    if shape == "list":
        emu.inject(method, path, status=200, body=[{"status": "SUCCEEDED"}], times=1000)
    elif shape == "not json":
        emu.inject(method, path, status=200, body="status: fine", times=1000)
    else:
        emu.inject_fault(method, path, "reshape", patch={"model_urls": ["x.glb"], "status": "SUCCEEDED"},
                         times=1000)
    job = run(runner, emu, "meshy")
    emu.clear_injections()
    failed = job.state is JobState.FAILED and "Meshy answered in an unexpected form" in (job.error or "")
    kept = any(t.remote_id for t in job.tasks)
    again = wait(runner, runner.retry(job.id, config(emu, "meshy")).id) if failed else job
    ok = failed and kept and result_ok(again, "meshy") and created(emu, "meshy") == 1
    matrix.record("wrong_shape", "meshy", f"poll: {shape}", survived=ok)
    assert ok, (job.error, again.error)


def test_task_error_as_text_keeps_the_providers_words(emu: Emulator, runner: JobRunner, matrix: Matrix) -> None:
    method, path = POLL["meshy"]
    emu.inject_fault(method, path, "reshape", patch={"status": "FAILED", "task_error": "The GPU melted"},
                     times=1000)
    job = run(runner, emu, "meshy")
    emu.clear_injections()
    ok = job.state is JobState.FAILED and "The GPU melted" in (job.error or "")
    matrix.record("wrong_shape", "meshy", "poll: task_error text", survived=ok)
    assert ok, job.error


# -- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", ["../../etc/passwd", "a/b", "x?y=1", "", " ", "id with space", "..", "a\\b",
                                     "%2e%2e", 42])
def test_recover_validates_task_ids(emu: Emulator, runner: JobRunner, matrix: Matrix, task_id: Any) -> None:
    with pytest.raises(InputError) as caught:
        runner.recover("meshy", task_id, "", config(emu, "meshy"))
    ok = "not a task id" in str(caught.value) and emu.requests == [] and runner.store.all() == []
    matrix.record("bad_api_input", "meshy", "recover", survived=ok)
    assert ok


def test_recover_takes_a_real_task_id(emu: Emulator, runner: JobRunner) -> None:
    first = run(runner, emu, "meshy")
    task_id = first.tasks[0].remote_id
    assert task_id and re.fullmatch(r"[A-Za-z0-9_.:-]+", task_id)
    job = wait(runner, runner.recover("meshy", task_id, "", config(emu, "meshy")).id)
    assert job.state is JobState.SUCCEEDED, job.error


def test_a_journal_nested_too_deeply_is_kept_aside(tmp_path: Path, matrix: Matrix) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / "journal.json").write_text("[" * 100_000 + "]" * 100_000)
    store = JobStore(root)
    aside = list(root.glob("journal.damaged-*.json"))
    ok = store.all() == [] and store.warning is not None and len(aside) == 1 \
        and aside[0].stat().st_size == 200_000
    nested_job = {"version": 1, "jobs": [{"id": "x", "request": {"options": {"a": "[" * 0}}},
                                         json.loads("[" * 50 + "]" * 50)]}
    (root / "journal.json").write_text(json.dumps(nested_job))
    ok = ok and JobStore(root).warning is not None
    matrix.record("journal", "all", "nested 100,000 deep", survived=ok)
    assert ok, store.warning
