"""Unit tests of core pieces without network: journal, formats, PNG, policy, options, Meshy mapping."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from addon.core import config, netpolicy, png
from addon.core.downloads import safe_filename
from addon.core.errors import ConfigError, InputError, OfflineError, ProviderError
from addon.core.formats import sniff_bytes, sniff_file
from addon.core.models import GenerationRequest, Job, JobState
from addon.core.providers import all_providers
from addon.core.providers.meshy import MeshyProvider
from addon.core.providers.meshy_api import snapshot
from addon.core.secrets import KeyStore
from addon.core.store import JobStore


def _job(job_id: str = "j1") -> Job:
    return Job(id=job_id, provider="meshy",
               request=GenerationRequest(provider="meshy", kind="image", name="Hero"))


def test_journal_round_trip_and_atomic_file(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    store.add(_job())
    store.update("j1", lambda j: setattr(j, "state", JobState.RUNNING))
    assert not list(tmp_path.glob("*.tmp"))
    again = JobStore(tmp_path)
    assert again.get("j1").state is JobState.RUNNING
    assert again.warning is None


def test_damaged_journal_is_kept_aside_and_reported(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    store.add(_job())
    text = (tmp_path / "journal.json").read_text()
    (tmp_path / "journal.json").write_text(text[: len(text) // 2])  # a crash mid-write of a naive writer
    again = JobStore(tmp_path)
    assert again.warning and "could not be read" in again.warning
    kept = list(tmp_path.glob("journal.damaged-*.json"))
    assert len(kept) == 1 and kept[0].read_text() == text[: len(text) // 2]


def test_journal_never_contains_the_key(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.json")
    keys.set("meshy", "msy_SECRET_123")
    store = JobStore(tmp_path)
    store.add(_job())
    assert "msy_SECRET_123" not in (tmp_path / "journal.json").read_text()
    assert keys.get("meshy") == "msy_SECRET_123"
    assert (tmp_path / "keys.json").stat().st_mode & 0o077 == 0


def test_sniffing_by_content(tmp_path: Path) -> None:
    glb = b"glTF" + struct.pack("<II", 2, 20) + b"\x00" * 8
    assert sniff_bytes(glb) == "glb"
    assert sniff_bytes(b"glTF" + struct.pack("<II", 1, 20)) is None
    assert sniff_bytes(b"<html>oops</html>") is None
    path = tmp_path / "x.glb"
    path.write_bytes(glb)
    assert sniff_file(path) == "glb"
    path.write_bytes(glb[:-4])  # truncated: declared length no longer matches
    assert sniff_file(path) is None


def test_png_writer_produces_a_decodable_image() -> None:
    rows = bytes([255, 0, 0, 255, 0, 255, 0, 128]) * 2  # 2x2, top row first
    data = png.encode_rgba8(2, 2, rows)
    assert sniff_bytes(data) == "png"
    idat = data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8]
    raw = zlib.decompress(idat)
    assert raw == b"\x00" + rows[:8] + b"\x00" + rows[8:]
    with pytest.raises(ValueError):
        png.encode_rgba8(3, 2, rows)


def test_online_access_policy() -> None:
    netpolicy.check_allowed("http://127.0.0.1:9/x", online_access=False)
    netpolicy.check_allowed("http://localhost:9/x", online_access=False)
    with pytest.raises(OfflineError, match="Allow Online Access"):
        netpolicy.check_allowed("https://api.meshy.ai/openapi/v1/balance", online_access=False)
    netpolicy.check_allowed("https://api.meshy.ai/openapi/v1/balance", online_access=True)
    with pytest.raises(ConfigError):
        netpolicy.check_allowed("ftp://example.org/", online_access=True)


def test_config_env_overrides_and_problems() -> None:
    meshy = all_providers()["meshy"]
    env = {"MARIONETTE_MESHY_API_KEY": "k-env", "MARIONETTE_MESHY_BASE_URL": "http://127.0.0.1:1234"}
    cfg = config.resolve(meshy, "k-pref", "https://api.meshy.ai", env)
    assert (cfg.api_key, cfg.base_url) == ("k-env", "http://127.0.0.1:1234")
    assert "k-env" not in repr(cfg)
    cfg = config.resolve(meshy, "", "", {})
    assert cfg.base_url == "https://api.meshy.ai"
    assert "No Meshy API Key" in (config.problem(meshy, cfg, online_access=True) or "")
    cfg = config.resolve(meshy, "k", "", {})
    assert "Online access is off" in (config.problem(meshy, cfg, online_access=False) or "")
    assert config.problem(meshy, cfg, online_access=True) is None
    local = config.resolve(meshy, "", "http://127.0.0.1:8", {})
    assert config.problem(meshy, local, online_access=False) is None


def test_meshy_options_are_checked() -> None:
    meshy = MeshyProvider()
    resolved = meshy.resolve_options({"target_polycount": 5000}, "image")
    assert resolved["target_polycount"] == 5000 and resolved["ai_model"] == "latest"
    with pytest.raises(InputError, match="between 100 and 300000"):
        meshy.resolve_options({"target_polycount": 50}, "image")
    with pytest.raises(InputError, match="one of"):
        meshy.resolve_options({"ai_model": "meshy-9"}, "image")
    with pytest.raises(InputError, match="has no option colour"):
        meshy.resolve_options({"colour": "red"}, "image")
    request = GenerationRequest(provider="meshy", kind="image", name="x",
                                options=meshy.resolve_options({"should_texture": False, "enable_pbr": True}, "image"))
    with pytest.raises(InputError, match="PBR maps need textures"):
        meshy.validate(request)
    rodin = all_providers()["rodin"]
    with pytest.raises(InputError, match="does not take mesh input"):
        rodin.validate(GenerationRequest(provider="rodin", kind="mesh", name="x"))


def test_meshy_cost_follows_the_price_list() -> None:
    meshy = MeshyProvider()
    opts = meshy.resolve_options({}, "image")
    req = GenerationRequest(provider="meshy", kind="image", name="x", options=opts, rig=True,
                            animations=[{"action_id": 0, "name": "Idle"}, {"action_id": 92, "name": "Combo"}])
    assert meshy.cost(req) == 30 + 5 + 2 * 3


def test_meshy_snapshot_mapping() -> None:
    snap = snapshot({"id": "a", "status": "PENDING", "progress": 0, "preceding_tasks": 3})
    assert snap.state is JobState.PENDING and snap.queue_position == 3
    snap = snapshot({"id": "a", "status": "SUCCEEDED", "progress": 100,
                     "result": {"rigged_character_glb_url": "http://h/r.glb",
                                "basic_animations": {"walking_glb_url": "http://h/w.glb"}}})
    assert snap.result_urls["rigged_character_glb_url"] == "http://h/r.glb"
    assert snap.result_urls["walking_glb_url"] == "http://h/w.glb"
    snap = snapshot({"id": "a", "status": "FAILED", "task_error": {"type": "invalid_input",
                     "code": "image_too_complex", "message": "Too complex"}})
    assert (snap.error, snap.error_code) == ("Too complex", "image_too_complex")
    with pytest.raises(ProviderError, match="unknown task status"):
        snapshot({"id": "a", "status": "EXPLODED"})


@pytest.mark.parametrize("name,expected", [
    ("../../x.glb", "x.glb"), ("/etc/passwd", "passwd"), ("C:\\win\\evil.glb", "evil.glb"),
    ("CON.glb", "_CON.glb"), ("", "result.bin"), ("a b?.glb", "a_b_.glb"),
])
def test_server_file_names_stay_inside_the_folder(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_job_json_has_no_unexpected_secrets_fields() -> None:
    dumped = json.dumps(_job().model_dump(mode="json"))
    assert "api_key" not in dumped and "Authorization" not in dumped
