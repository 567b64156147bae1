"""The providers Marionette can talk to, by id."""

from __future__ import annotations

from .base import Provider
from .meshy import MeshyProvider


def all_providers() -> dict[str, Provider]:
    providers: list[Provider] = [MeshyProvider()]
    return {p.id: p for p in providers}
