"""Meshy's animation library (action_id, name, category, sub-category, preview), fetched once,
cached on disk with its date, refreshed on demand. The catalog needs no key."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from .errors import ProviderError
from .http import ApiClient, ProviderConfig, Timing
from .models import AnimationChoice

log = logging.getLogger(__name__)

CATALOG_PATH = "/web/public/animations/resources"
# The library is a JSON list of a few hundred entries (well under 1 MB); a larger answer is refused.
MAX_CATALOG_BYTES = 8 << 20


class CatalogEntry(BaseModel):
    action_id: int
    name: str
    category: str = ""
    sub_category: str = ""
    preview_url: str = ""

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")


class Catalog(BaseModel):
    fetched_at: float
    source: str
    entries: list[CatalogEntry] = Field(default_factory=list)

    def categories(self) -> list[str]:
        return sorted({e.category for e in self.entries if e.category})

    def by_id(self, action_id: int) -> CatalogEntry | None:
        return next((e for e in self.entries if e.action_id == action_id), None)


def builtin(choices: Iterable[AnimationChoice]) -> Catalog:
    """The short built-in list, so the picker works before the first fetch and offline."""
    return Catalog(fetched_at=0.0, source="built-in",
                   entries=[CatalogEntry(action_id=c.action_id, name=c.name) for c in choices])


def parse(data: Any) -> list[CatalogEntry]:
    """Entries from Meshy's documented shape ({"result": {"list": [...]}}), tolerating a bare list."""
    items: Any = data
    if isinstance(items, dict):
        items = items.get("result", items)
    if isinstance(items, dict):
        items = items.get("list", items.get("items"))
    if not isinstance(items, list):
        raise ProviderError("Meshy's animation library has an unexpected shape (no result.list)")
    entries = []
    for item in items:
        if not isinstance(item, dict):
            continue
        raw_id = item.get("id", item.get("action_id"))
        name = item.get("name") or item.get("key")
        if not isinstance(raw_id, int) or isinstance(raw_id, bool) or not isinstance(name, str):
            continue
        entries.append(CatalogEntry(action_id=raw_id, name=name, category=str(item.get("category") or ""),
                                    sub_category=str(item.get("subCategory") or item.get("sub_category") or ""),
                                    preview_url=str(item.get("previewUrl") or item.get("preview_url") or "")))
    if not entries:
        raise ProviderError("Meshy's animation library came back empty")
    return entries


class CatalogCache:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Catalog | None:
        try:
            return Catalog.model_validate_json(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, ValidationError) as exc:
            log.warning("ignoring an unreadable animation library cache: %s", exc.__class__.__name__)
            return None

    def save(self, catalog: Catalog) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(catalog.model_dump_json(), encoding="utf-8")
        os.replace(tmp, self.path)

    def fetch(self, base_url: str, *, online_access: bool, timeout: float = 30.0,
              read: Callable[[ApiClient], list[CatalogEntry]] | None = None) -> Catalog:
        """Download the library (blocking: call it from a worker thread) and cache it. It goes through
        Marionette's HTTP client like every other request: the network policy (online access), no
        redirects followed, the size limit. The library needs no key, so none is sent. `read` reads it
        with that client (a provider's fetch_animation_catalog; default: Meshy's endpoint)."""
        client = ApiClient(ProviderConfig(base_url=base_url), auth_header=lambda _key: {},
                           online_access=lambda: online_access, timing=Timing(read_timeout=timeout))
        try:
            entries = (read or fetch_entries)(client)
        finally:
            client.close()
        catalog = Catalog(fetched_at=time.time(), source=client.url(CATALOG_PATH), entries=entries)
        self.save(catalog)
        return catalog


def fetch_entries(client: ApiClient, max_bytes: int | None = None) -> list[CatalogEntry]:
    """The library's entries, read with `client` (its policy: online access, no redirects, an answer
    bounded on the wire and once decompressed), at most `max_bytes` of body (MAX_CATALOG_BYTES by
    default)."""
    client.max_answer_bytes = MAX_CATALOG_BYTES if max_bytes is None else max_bytes
    body = client.request("GET", CATALOG_PATH).content
    try:
        return parse(json.loads(body.decode("utf-8")))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProviderError("Meshy's animation library did not answer with JSON") from exc
