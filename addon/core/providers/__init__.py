"""The providers Marionette can talk to, by id."""

from __future__ import annotations

from .base import Provider
from .claid import ClaidProvider
from .claythis import ClaythisProvider
from .image3d import Image3DProvider
from .meshy import MeshyProvider
from .rodin import RodinProvider


def all_providers() -> dict[str, Provider]:
    providers: list[Provider] = [MeshyProvider(), RodinProvider(), ClaythisProvider(), Image3DProvider(),
                                 ClaidProvider()]
    return {p.id: p for p in providers}
