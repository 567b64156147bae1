"""The providers' declarations in a light form: what Blender needs to register Marionette's preferences and
panel properties (ids, labels, key names, base URLs, accepted inputs, options) and to ask what a provider
can do (its capabilities, outputs and per-provider facts such as max_image_side), read from
``declarations.json`` with the standard library alone.

Why a file: the providers' own modules import pydantic and requests, which cost about a third of a bare
``import bpy``; every artist with Marionette enabled would pay that at each Blender start. The file is
written from the providers themselves (``python -m addon.core.declared``; ``scripts/build.py`` refreshes
it for every build) and a unit test fails when it differs from what the providers declare.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .capabilities import Capability, check

DECLARATIONS_PATH = Path(__file__).with_name("declarations.json")
# Default of the Download Limit preference (MB); the core's own default (downloads.DEFAULT_MAX_BYTES) is
# checked against it by the same test.
DEFAULT_MAX_DOWNLOAD_MB = 2048
DOWNLOAD_LIMIT_ENV = "MARIONETTE_MAX_DOWNLOAD_MB"


def env_name(provider_id: str, what: str) -> str:
    """MARIONETTE_<ID>_<WHAT>, e.g. MARIONETTE_MESHY_API_KEY."""
    return f"MARIONETTE_{provider_id.upper()}_{what}"


@dataclass(frozen=True)
class DeclaredOption:
    name: str
    label: str
    kind: str
    default: Any
    description: str = ""
    items: tuple[tuple[str, str, str], ...] = ()
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class DeclaredProvider:
    id: str
    label: str
    key_label: str
    default_base_url: str
    inputs: frozenset[str]
    options: tuple[DeclaredOption, ...]
    capabilities: frozenset[Capability] = frozenset()
    outputs: frozenset[str] = frozenset()
    # Per-provider facts, as on providers.base.Provider (None: not limited / not documented).
    max_images: int = 1
    max_image_side: int | None = None
    prompt_max_chars: int | None = None
    max_rig_faces: int | None = None
    rig_kept_seconds: float | None = None
    balance_unit: str = "credits"
    result_front: str | None = None
    rig_height_option: str | None = None

    def can(self, capability: Capability) -> bool:
        """Whether the provider declares `capability` (core/capabilities.py)."""
        return capability in self.capabilities


# The per-provider facts the declarations carry, by their name on the Provider class.
FACTS = ("max_images", "max_image_side", "prompt_max_chars", "max_rig_faces", "rig_kept_seconds", "balance_unit",
         "result_front", "rig_height_option")


@cache
def providers() -> dict[str, DeclaredProvider]:
    """Every provider's declaration, by id, in the order the panel lists them."""
    data = json.loads(DECLARATIONS_PATH.read_text(encoding="utf-8"))
    return {entry["id"]: _provider(entry) for entry in data["providers"]}


def _provider(entry: dict[str, Any]) -> DeclaredProvider:
    options = tuple(
        DeclaredOption(**{**option, "items": tuple(tuple(item) for item in option.get("items", ()))})
        for option in entry["options"]
    )
    return DeclaredProvider(id=entry["id"], label=entry["label"], key_label=entry["key_label"],
                            default_base_url=entry["default_base_url"], inputs=frozenset(entry["inputs"]),
                            options=options, capabilities=check(frozenset(entry["capabilities"])),
                            outputs=frozenset(entry["outputs"]), **{name: entry[name] for name in FACTS})


def snapshot() -> dict[str, Any]:
    """The declarations as the providers make them now (imports the providers: not for start-up)."""
    from .providers import all_providers

    entries = []
    for provider in all_providers().values():
        entries.append({
            "id": provider.id,
            "label": provider.label,
            "key_label": provider.key_label,
            "default_base_url": provider.default_base_url,
            "inputs": sorted(provider.inputs),
            "options": [
                {"name": spec.name, "label": spec.label, "kind": spec.kind, "default": spec.default,
                 "description": spec.description, "items": [list(item) for item in spec.items],
                 "min": spec.min, "max": spec.max}
                for spec in provider.options
            ],
            "capabilities": sorted(provider.capabilities),
            "outputs": sorted(provider.outputs),
            **{name: getattr(provider, name) for name in FACTS},
        })
    return {"providers": entries}


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def write() -> bool:
    """Rewrite declarations.json from the providers; True when it changed."""
    text = render(snapshot())
    if DECLARATIONS_PATH.is_file() and DECLARATIONS_PATH.read_text(encoding="utf-8") == text:
        return False
    DECLARATIONS_PATH.write_text(text, encoding="utf-8")
    providers.cache_clear()
    return True


if __name__ == "__main__":
    print(f"{DECLARATIONS_PATH}: {'rewritten' if write() else 'up to date'}")
