"""The light declarations (addon/core/declarations.json) that Blender registers Marionette's properties from
must say exactly what the providers declare, and reading them must not load pydantic or requests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from addon.core import config, declared, downloads

ROOT = Path(__file__).resolve().parents[2]


def test_declarations_file_is_what_the_providers_declare() -> None:
    on_disk = declared.DECLARATIONS_PATH.read_text(encoding="utf-8")
    assert on_disk == declared.render(declared.snapshot()), (
        "addon/core/declarations.json is stale: run `python -m addon.core.declared` and commit it"
    )


def test_declared_providers_carry_every_option_and_input() -> None:
    from addon.core.providers import all_providers

    light = declared.providers()
    for provider_id, provider in all_providers().items():
        mine = light[provider_id]
        assert (mine.label, mine.key_label, mine.default_base_url) == (
            provider.label, provider.key_label, provider.default_base_url)
        assert mine.inputs == provider.inputs
        assert [o.name for o in mine.options] == [o.name for o in provider.options]
        for light_option, option in zip(mine.options, provider.options, strict=True):
            assert light_option.items == option.items and light_option.default == option.default
    assert list(light) == list(all_providers())


def test_light_constants_agree_with_the_core() -> None:
    assert declared.DEFAULT_MAX_DOWNLOAD_MB << 20 == downloads.DEFAULT_MAX_BYTES
    assert declared.DOWNLOAD_LIMIT_ENV == config.DOWNLOAD_LIMIT_ENV
    assert declared.env_name("meshy", "API_KEY") == config.env_name("meshy", "API_KEY")


def test_reading_declarations_loads_neither_pydantic_nor_requests() -> None:
    code = (
        "import json, sys\n"
        "from addon.core import declared\n"
        "providers = declared.providers()\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'requests', 'urllib3')\n"
        "               or m in ('addon.core.models', 'addon.core.http', 'addon.core.providers'))\n"
        "print(json.dumps({'providers': list(providers), 'heavy': heavy}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    facts = json.loads(done.stdout)
    assert facts["providers"] == ["meshy", "rodin", "claythis", "image3d", "claid"]
    assert facts["heavy"] == []
