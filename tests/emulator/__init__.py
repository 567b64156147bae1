"""Local provider emulator for Marionette's tests: real HTTP on 127.0.0.1, never the internet."""

from .meshy import MeshyState, MeshyTask, default_catalog
from .server import Emulator, Request, RequestRecord, Response, assets_from_dir

__all__ = [
    "Emulator",
    "MeshyState",
    "MeshyTask",
    "Request",
    "RequestRecord",
    "Response",
    "assets_from_dir",
    "default_catalog",
]
