"""Claythis API emulation, after shared/reference/provider-api.md sections 3 and 6.

``POST /api/3d/generate`` (multipart: ``image`` file or ``image_url``, optional ``motions`` JSON array)
and ``GET /api/3d/generate/{id}/status``, with the ``X-API-Key`` header.

Claythis does not document its status answer beyond ``progress`` and ``downloadUrl``, so its shape is
configurable: ``status_shape`` picks one of ``SHAPES`` (or ``render`` builds any body from
``(task, phase, progress, link)``), and ``words`` names the status of each phase. Each status call
advances the task one step: ``pending_polls`` queued, ``running_polls`` processing, then completed
(or failed after ``fail_next``). Every status answer signs a fresh ``downloadUrl`` valid ``url_ttl``
seconds (one hour on Claythis; ``expired_links = n`` hands out n stale ones). ``known_motions`` (a
set) makes unknown motion names a 400; ``tasks[id]`` keeps what the client sent.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .server import Request, Response, json_response, sniff, tiny_glb
from .tasks import FINISHED, ApiError, PolledTask, ProviderApp

if TYPE_CHECKING:
    from .server import Emulator

PREFIX = "/api/3d/"
GENERATE = "/api/3d/generate"
_STATUS = re.compile(r"/api/3d/generate/(?P<id>[^/]+)/status/?")
SHAPES = ("documented", "flat", "nested", "bare")
PHASES = ("pending", "running", "done", "failed")
DEFAULT_WORDS = {"pending": "queued", "running": "processing", "done": "completed", "failed": "failed"}
ALL_MOTIONS = 127


@dataclass
class ClaythisTask(PolledTask):
    id: str
    image: bytes | None
    image_content_type: str | None
    image_url: str | None
    motions: list[str] | None  # None: all
    failure: str | None = None

    def phase(self) -> tuple[str, int]:
        stage, progress = self.stage()
        if stage != FINISHED:
            return stage, progress  # "pending" and "running" are Claythis's phase names too
        return ("failed", 90) if self.failure is not None else ("done", 100)


class ClaythisState(ProviderApp):
    """Claythis configuration and tasks; also the request handler for ``/api/3d/...``."""

    def __init__(self, emulator: Emulator, *, assets: Mapping[str, Path | str] | None = None,
                 api_key: str | None = None) -> None:
        super().__init__(emulator, api_key)
        given = {k: Path(v) for k, v in (assets or {}).items()}
        self.glb: bytes | Path = given.get("rigged") or given.get("model") or tiny_glb("claythis")
        self.pending_polls: int = 1
        self.running_polls: int = 2
        self.url_ttl: float = 3600.0
        self.status_shape: str = "documented"
        self.words: dict[str, str] = dict(DEFAULT_WORDS)
        self.render: Callable[[ClaythisTask, str, int, str | None], Any] | None = None
        self.known_motions: set[str] | None = None  # None: any well-formed name is accepted
        self.tasks: dict[str, ClaythisTask] = {}
        self.status_calls: int = 0
        self._failures: list[str] = []

    def fail_next(self, message: str = "Rigging failed: no humanoid found") -> None:
        with self.lock:
            self._failures.append(message)

    # -- App protocol ------------------------------------------------------------------------------

    def owns(self, path: str) -> bool:
        return path.startswith(PREFIX)

    def error_body(self, exc: ApiError) -> Any:
        return {"success": False, "error": exc.message}

    def _route(self, request: Request) -> Response:
        if self.api_key is not None and (request.header("x-api-key") or "") != self.api_key:
            raise ApiError(401, "Invalid or missing API key")
        if request.path.rstrip("/") == GENERATE:
            if request.method != "POST":
                raise ApiError(405, "Method not allowed")
            return self._generate(request)
        match = _STATUS.fullmatch(request.path)
        if match is not None:
            if request.method != "GET":
                raise ApiError(405, "Method not allowed")
            return self._status(match.group("id"))
        raise ApiError(404, "Not found")

    def _generate(self, request: Request) -> Response:
        if not (request.header("content-type") or "").lower().startswith("multipart/form-data"):
            raise ApiError(400, "Use multipart/form-data")
        try:
            parts = request.form()
        except ValueError as exc:
            raise ApiError(400, f"Malformed form data: {exc}") from None
        images = [p for p in parts if p.name == "image"]
        urls = [p.text.strip() for p in parts if p.name == "image_url" and p.text.strip()]
        if bool(images) == bool(urls) or len(images) > 1 or len(urls) > 1:
            raise ApiError(400, "Provide either an image file or an image URL, not both")
        image = images[0] if images else None
        if image is not None and (image.filename is None or sniff(image.value) not in ("png", "jpeg")):
            raise ApiError(400, "The image must be a PNG or JPEG file")
        if urls and not re.match(r"https?://", urls[0]):
            raise ApiError(400, "image_url must be an http(s) URL")
        motions: list[str] | None = None
        raw = [p.text for p in parts if p.name == "motions"]
        if raw:
            try:
                parsed = json.loads(raw[0])
            except ValueError:
                raise ApiError(400, "motions must be a JSON array of motion names") from None
            if (len(raw) > 1 or not isinstance(parsed, list) or not parsed
                    or not all(isinstance(m, str) and m.strip() for m in parsed)):
                raise ApiError(400, "motions must be a JSON array of motion names")
            unknown = [m for m in parsed if self.known_motions is not None and m not in self.known_motions]
            if unknown:
                raise ApiError(400, f"Unknown motions: {', '.join(unknown)}")
            motions = parsed
        with self.lock:
            task = ClaythisTask(id=uuid.uuid4().hex, image=image.value if image else None,
                                image_content_type=image.content_type if image else None,
                                image_url=urls[0] if urls else None, motions=motions,
                                pending_polls=max(0, self.pending_polls), running_polls=max(0, self.running_polls),
                                failure=self._failures.pop(0) if self._failures else None)
            self.tasks[task.id] = task
        return json_response(200, {"success": True, "data": {"taskId": task.id}})

    def _status(self, task_id: str) -> Response:
        with self.lock:
            self.status_calls += 1
            task = self.tasks.get(task_id)
            if task is None:
                raise ApiError(404, "Task not found")
            task.advance()
            phase, progress = task.phase()
            link = self._result_link(task.id, "character.glb", self.glb, self.url_ttl) if phase == "done" else None
            return json_response(200, self._shape(task, phase, progress, link))

    def _shape(self, task: ClaythisTask, phase: str, progress: int, link: str | None) -> Any:
        if self.render is not None:
            return self.render(task, phase, progress, link)
        word = self.words.get(phase, phase)
        error = task.failure if phase == "failed" else None
        if self.status_shape == "flat":
            body: dict[str, Any] = {"task_id": task.id, "state": word, "progress": f"{progress}%",
                                    "download_url": link}
            if error:
                body["error_message"] = error
            return body
        if self.status_shape == "nested":
            data: dict[str, Any] = {"job": {"id": task.id, "state": word, "percent": progress / 100}}
            if link:
                data["result"] = {"url": link, "format": "glb"}
            if error:
                data["job"]["reason"] = error
            return {"success": True, "data": data}
        if self.status_shape == "bare":
            return {"progress": progress, "downloadUrl": link}
        documented: dict[str, Any] = {"taskId": task.id, "status": word, "progress": progress, "downloadUrl": link}
        if error:
            documented["error"] = error
        return {"success": True, "data": documented}
