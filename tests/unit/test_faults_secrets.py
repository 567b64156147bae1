"""Fault matrix, trust rows: keys never in logs or messages (even when a provider echoes them), never sent
to asset hosts or after a redirect, hostile file names, the download size limit, TLS verification, and
no request to a non-loopback host while online access is off. Every provider, real HTTP."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from addon.core import http, redaction
from addon.core.downloads import safe_filename
from addon.core.http import ApiClient
from addon.core.models import GenerationRequest, JobState
from addon.core.providers import all_providers
from addon.core.redaction import SecretFilter, redact
from addon.core.runner import InputFile, JobRunner
from tests.emulator import Emulator
from tests.emulator.server import tiny_png
from tests.unit.fault_matrix import (
    ASSET,
    CREATE,
    FAST,
    KEY,
    PNG,
    POLL,
    POLLING,
    PROVIDERS,
    RESULT_KEY,
    Matrix,
    asset_files,
    config,
    created,
    lost,
    make_glb,
    request,
    result_ok,
    run,
    wait,
)

ROOT = Path(__file__).resolve().parents[2]


def _all_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


# -- keys in logs and messages ------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_key_the_provider_echoes_is_hidden_everywhere(caplog: pytest.LogCaptureFixture, emu: Emulator,
                                                         runner: JobRunner, matrix: Matrix, provider: str) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"message": f"Invalid API key {KEY}", "error": f"Invalid API key {KEY}",
            "error_message": f"Invalid API key {KEY}"}
    method, path = POLL.get(provider) or CREATE[provider]
    if provider in POLL:  # a 5xx to a create is not repeated (it may have made the task): polls only
        emu.inject(method, path, status=503, body=echo, times=2)  # shown as a notice while retrying
    emu.inject(method, path, status=401, body=echo)  # then the job fails with the provider's words
    job = run(runner, emu, provider)
    logging.getLogger("addon.core.runner").warning("a careless line with the key %s in it", KEY)
    try:
        raise RuntimeError(f"an exception that carries {KEY}")
    except RuntimeError:
        logging.getLogger("addon.core.http").exception("logged with its traceback")
    texts = [caplog.text, job.error or "", _all_text(runner.store.root),
             *(r.getMessage() for r in caplog.records)]
    leaked = sum(KEY in text for text in texts)
    ok = job.state is JobState.FAILED and re.search("rejected|refused", job.error or "") is not None and leaked == 0
    matrix.record("key_logs", provider, "poll" if provider in POLLING else "submit", injected=3, survived=ok)
    assert leaked == 0
    assert ok, job.error
    assert redaction.REDACTED in caplog.text


def test_redaction_helpers() -> None:
    redaction.register_secret("short")  # too short to be a key: never redacted (it would eat words)
    assert redact("a short text") == "a short text"
    redaction.register_secret("sk_live_ABCDEF123456")
    assert redact("key sk_live_ABCDEF123456!") == f"key {redaction.REDACTED}!"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "k=%s", ("sk_live_ABCDEF123456",), None)
    assert SecretFilter().filter(record) and record.getMessage() == f"k={redaction.REDACTED}"
    assert redaction.SECRET_FILTER in logging.getLogger("addon.core.runner").filters
    assert redaction.SECRET_FILTER in logging.getLogger("urllib3").filters


# -- keys and hosts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_key_goes_to_the_api_only(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str) -> None:
    job = run(runner, emu, provider)
    downloads = [r for r in emu.requests if r.path.startswith("/assets/")]
    api = [r for r in emu.requests if not r.path.startswith("/assets/")]
    ok = result_ok(job, provider) and bool(downloads) and not any(r.had_auth for r in downloads)
    matrix.record("key_hosts", provider, "download", injected=len(downloads), survived=len(downloads) if ok else 0)
    assert ok and all(r.had_auth for r in api)


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Emulator]:
    """Another host (another loopback port) that keys must never reach."""
    with Emulator(assets=asset_files(tmp_path / "other"), api_key=None) as emulator:
        yield emulator


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_api_redirect_is_not_followed(emu: Emulator, other: Emulator, runner: JobRunner, matrix: Matrix,
                                         provider: str) -> None:
    method, path = POLL.get(provider) or CREATE[provider]
    emu.inject(method, path, status=307, headers={"Location": other.base_url + "/stolen"})
    job = run(runner, emu, provider)
    ok = (job.state is JobState.FAILED and "redirect" in (job.error or "") and other.requests == []
          and KEY not in (job.error or ""))
    matrix.record("redirect", provider, "poll" if provider in POLLING else "submit", survived=ok,
                  lost=max(0, created(emu, provider) - 1))
    assert ok, job.error
    assert "127.0.0.1" in (job.error or "")  # the message names where it was sent


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_download_redirect_is_followed_without_the_key(emu: Emulator, other: Emulator, runner: JobRunner,
                                                         matrix: Matrix, provider: str) -> None:
    name, data = ("image.png", tiny_png(8, 8)) if provider == "claid" else ("model.glb", make_glb("moved"))
    other.files.put("moved", name, data=data)
    target = other.files.url("moved", name, 600)
    emu.inject("GET", ASSET[provider], status=302, headers={"Location": target})
    job = run(runner, emu, provider)
    hops = [r for r in other.requests if r.path.startswith("/assets/moved/")]
    ok = result_ok(job, provider) and len(hops) == 1 and not hops[0].had_auth
    matrix.record("redirect", provider, "download", survived=ok, lost=lost(job, provider, emu))
    assert ok, job.error
    assert Path(job.asset(RESULT_KEY[provider]).path).read_bytes() == data  # type: ignore[union-attr, arg-type]


# -- file names, size ---------------------------------------------------------------------------------

HOSTILE = ["../../evil.glb", "/etc/evil.glb", "..\\..\\evil.glb", "CON.glb", "sub/../../../evil.glb", ".."]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_from_rodin_stay_in_the_job_folder(tmp_path: Path, emu: Emulator, runner: JobRunner,
                                                         matrix: Matrix, name: str) -> None:
    emu.rodin.model_name = name if name.endswith(".glb") else name + "/x.glb"
    job = run(runner, emu, "rodin")
    job_dir = runner.store.job_dir(job.id).resolve()
    files = [p.resolve() for p in runner.store.root.rglob("*") if p.is_file()]
    outside = [p for p in files if job_dir not in p.parents and p.parent != runner.store.root.resolve()]
    escaped = [p for p in tmp_path.rglob("evil*")]
    ok = result_ok(job, "rodin") and not outside and not escaped
    matrix.record("file_names", "rodin", "download", survived=ok)
    assert ok, (job.error, outside, escaped)
    for hostile in HOSTILE:
        clean = safe_filename(hostile)
        assert "/" not in clean and "\\" not in clean and clean not in ("", ".", "..")
        assert clean.split(".")[0].upper() != "CON"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("sized", [True, False])
def test_a_download_over_the_limit_is_refused(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str,
                                              sized: bool) -> None:
    runner.max_download_bytes = 60  # every test result is larger (the smallest, a PNG, is over 60 bytes)
    if not sized:
        emu.inject_fault("GET", ASSET[provider], "unsized")  # no Content-Length: counted while streaming
    job = run(runner, emu, provider)
    refused = job.state is JobState.FAILED and "larger than the download limit" in (job.error or "")
    leftovers = [p for p in runner.store.job_dir(job.id).iterdir() if p.suffix in (".part", ".glb", ".png")
                 and not p.name.startswith(("input", "preview"))]
    runner.max_download_bytes = 1 << 30
    runner.retry(job.id, config(emu, provider))
    job = wait(runner, job.id)
    ok = refused and not leftovers and result_ok(job, provider)
    matrix.record("size_limit", provider, "download", survived=ok, lost=lost(job, provider, emu))
    assert ok and created(emu, provider) == 1


# -- TLS and online access ----------------------------------------------------------------------------


def test_tls_verification_is_never_disabled(matrix: Matrix) -> None:
    pattern = re.compile(r"verify\s*=\s*False|CERT_NONE|_create_unverified_context|check_hostname\s*=\s*False|"
                         r"disable_warnings|PYTHONHTTPSVERIFY|\.verify\s*=\s*False")
    sources = sorted((ROOT / "addon").rglob("*.py"))
    found = [f"{p.relative_to(ROOT)}:{n}" for p in sources
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    client = ApiClient(http.ProviderConfig("https://api.example.invalid", "k" * 10), auth_header=lambda k: {},
                       online_access=lambda: False, timing=FAST)
    ok = not found and client.session.verify is True and len(sources) > 20
    matrix.record("tls", "all", "code", injected=len(sources), survived=len(sources) if ok else 0)
    assert ok, found


@pytest.mark.parametrize("provider", PROVIDERS)
def test_offline_never_leaves_loopback(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str) -> None:
    runner.online_access = False
    # 1. The provider's API itself is not on loopback.
    base = "https://api.example.invalid" + ("/api" if provider == "rodin" else "")
    offline: GenerationRequest = request(provider)
    job = wait(runner, runner.submit(offline, http.ProviderConfig(base, KEY), [InputFile("hero.png", PNG)]).id)
    api_refused = job.state is JobState.FAILED and "Online access is off" in (job.error or "")
    # 2. The API is local but its result links point to a CDN.
    emu.asset_base_url = "https://cdn.example.invalid"
    cdn = run(runner, emu, provider)
    cdn_refused = cdn.state is JobState.FAILED and "cdn.example.invalid" in (cdn.error or "")
    emu.asset_base_url = None
    # 3. A local link redirects to a CDN.
    emu.inject("GET", ASSET[provider], status=302, headers={"Location": "https://cdn.example.invalid/x.glb"})
    hop = run(runner, emu, provider)
    hop_refused = hop.state is JobState.FAILED and "Online access is off" in (hop.error or "")
    # Each refusal names the policy, not a failed connection: nothing tried to reach those hosts.
    ok = api_refused and cdn_refused and hop_refused
    matrix.record("offline", provider, "submit+download", injected=3, survived=3 if ok else 0)
    assert ok, (job.error, cdn.error, hop.error)


def test_all_providers_are_in_the_matrix() -> None:
    assert tuple(all_providers()) == PROVIDERS
