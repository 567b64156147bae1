"""Local provider emulator for Marionette's tests: real HTTP on 127.0.0.1, never the internet."""

from .claid import ClaidState
from .claythis import ClaythisState, ClaythisTask
from .image3d import Image3DState, Image3DTask
from .meshy import MeshyState, MeshyTask, default_catalog
from .rodin import RodinState, RodinTask
from .server import Emulator, FormPart, Request, RequestRecord, Response, assets_from_dir

__all__ = [
    "ClaidState",
    "ClaythisState",
    "ClaythisTask",
    "Emulator",
    "FormPart",
    "Image3DState",
    "Image3DTask",
    "MeshyState",
    "MeshyTask",
    "Request",
    "RequestRecord",
    "Response",
    "RodinState",
    "RodinTask",
    "assets_from_dir",
    "default_catalog",
]
