"""Meshy's animation library (action_id, name, category, sub-category, preview), fetched once,
cached on disk with its date, refreshed on demand. The catalog needs no key."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from pydantic import BaseModel, Field, ValidationError

from . import netpolicy
from .errors import ProviderError, TransientError
from .http import USER_AGENT
from .models import AnimationChoice

log = logging.getLogger(__name__)

CATALOG_PATH = "/web/public/animations/resources"
CREDITS_PER_ANIMATION = 3


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

    def fetch(self, base_url: str, *, online_access: bool, timeout: float = 30.0) -> Catalog:
        """Download the library (blocking: call it from a worker thread) and cache it."""
        url = urljoin(base_url.rstrip("/") + "/", CATALOG_PATH.lstrip("/"))
        netpolicy.check_allowed(url, online_access)
        try:
            response = requests.get(url, headers={"User-Agent": USER_AGENT}, timeout=(10, timeout))
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"Could not reach Meshy's animation library: {exc.__class__.__name__}") from exc
        if response.status_code != 200:
            raise ProviderError(f"Meshy's animation library answered HTTP {response.status_code}",
                                status=response.status_code)
        try:
            entries = parse(response.json())
        except json.JSONDecodeError as exc:
            raise ProviderError("Meshy's animation library did not answer with JSON") from exc
        catalog = Catalog(fetched_at=time.time(), source=url, entries=entries)
        self.save(catalog)
        return catalog


def cost(count: int) -> int:
    return count * CREDITS_PER_ANIMATION
