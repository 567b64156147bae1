"""image3d.io API emulation, after shared/reference/provider-api.md sections 4 and 6.

``POST /api/generate`` (JSON), ``GET /api/status/{id}``, ``GET /api/balance``, all with
``Authorization: Bearer <Firebase ID token>``. ``token_expired = True`` makes every call answer 401
as an expired token would. Each status call advances a task: ``pending_polls`` queued,
``running_polls`` processing, then success with ``model_url`` (or failed after ``fail_next``;
``expired_links = n`` hands out n ``model_url`` links that have already expired).
Generations cost ``costs[quality]`` credits (an emulator guess: the docs give no price list); 402
when the balance is short, 429 when ``concurrency_limit`` tasks are running.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .server import Request, Response, bearer, json_response, sniff, tiny_glb
from .tasks import FINISHED, PENDING, ApiError, PolledTask, ProviderApp

if TYPE_CHECKING:
    from .server import Emulator

GENERATE = "/api/generate"
BALANCE = "/api/balance"
_STATUS = re.compile(r"/api/status/(?P<id>[^/]+)/?")
# "quality | string | No | "fast", "standard", "pro" (default), or "ultra"" (seed 003)
QUALITIES = ("fast", "standard", "pro", "ultra")
ENGINES = {"fast": "trellis", "standard": "trellis", "pro": "hunyuan3d-v3", "ultra": "hunyuan3d-v3"}


@dataclass
class Image3DTask(PolledTask):
    id: str
    mode: str
    quality: str
    prompt: str | None
    image: bytes | None
    image_encoding: str | None  # "data_uri" or "raw"
    cost: int
    failure: str | None = None

    def phase(self) -> tuple[str, int]:
        stage, progress = self.stage()
        if stage == FINISHED:
            return ("failed", 0) if self.failure is not None else ("success", 100)
        return ("queued" if stage == PENDING else "processing"), progress


class Image3DState(ProviderApp):
    """image3d.io configuration and tasks; also the request handler for its ``/api/...`` paths.
    ``api_key`` is the Firebase ID token."""

    def __init__(self, emulator: Emulator, *, assets: Mapping[str, Path | str] | None = None,
                 api_key: str | None = None) -> None:
        super().__init__(emulator, api_key)
        self.token_expired = False
        self.tokens: dict[str, float] = {}  # issued ID tokens -> when they expire (emulator clock)
        given = {k: Path(v) for k, v in (assets or {}).items()}
        self.glb: bytes | Path = given.get("model") or tiny_glb("image3d")
        self.balance: int = 580
        self.costs: dict[str, int] = {"fast": 1, "standard": 1, "pro": 2, "ultra": 4}
        self.pending_polls: int = 1
        self.running_polls: int = 2
        self.concurrency_limit: int | None = None
        self.url_ttl: float = 24 * 3600.0
        self.tasks: dict[str, Image3DTask] = {}
        self._failures: list[str] = []

    def issue_token(self, ttl: float = 3600.0) -> str:
        """A Firebase-like ID token (a JWT whose ``exp`` is ``ttl`` seconds from the emulator's now) that the
        generation endpoints accept until it expires ("Tokens expire after 1 hour", seed 003)."""
        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

        now = self._emu.now()
        claims = {"iss": "https://securetoken.google.com/image3d", "sub": uuid.uuid4().hex,
                  "iat": int(now), "exp": int(now + ttl)}
        token = f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{uuid.uuid4().hex}"
        with self.lock:
            self.tokens[token] = now + ttl
        return token

    def fail_next(self, message: str = "Generation failed") -> None:
        with self.lock:
            self._failures.append(message)

    # -- App protocol ------------------------------------------------------------------------------

    def owns(self, path: str) -> bool:
        return path.rstrip("/") in (GENERATE, BALANCE) or path.startswith("/api/status/")

    def error_body(self, exc: ApiError) -> Any:
        return {"error": exc.message}

    def _authorize(self, request: Request) -> None:
        """"All generation endpoints require a Firebase ID token" (seed 003); an issued token past its exp
        is refused as expired."""
        token = bearer(request)
        if self.token_expired:
            raise ApiError(401, "Unauthorized: Firebase ID token has expired")
        if token is not None and token in self.tokens:
            if self.tokens[token] <= self._emu.now():
                raise ApiError(401, "Unauthorized: Firebase ID token has expired")
            return
        if self.api_key is not None and token != self.api_key:
            raise ApiError(401, "Unauthorized: missing or invalid token")

    def _route(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        # The Quick Start polls the status without a token (seed 003): the status call is open.
        if not (path.startswith("/api/status/") and request.method == "GET"):
            self._authorize(request)
        if path == BALANCE:
            if request.method != "GET":
                raise ApiError(405, "Method not allowed")
            with self.lock:
                return json_response(200, {"balance": self.balance, "unit": "credits"})
        if path == GENERATE:
            if request.method != "POST":
                raise ApiError(405, "Method not allowed")
            return self._generate(request)
        match = _STATUS.fullmatch(request.path)
        if match is not None and request.method == "GET":
            return self._status(match.group("id"))
        raise ApiError(404, "Not found")

    def _generate(self, request: Request) -> Response:
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "Invalid JSON body") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The body must be a JSON object")
        mode = body.get("mode")
        if mode not in ("image", "text"):
            raise ApiError(400, "mode must be 'image' or 'text'")
        quality = body.get("quality", "pro")
        if quality not in QUALITIES:
            raise ApiError(400, f"quality must be one of {', '.join(QUALITIES)}")
        prompt = body.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise ApiError(400, "prompt must be a string")
        image: bytes | None = None
        encoding: str | None = None
        if mode == "text":
            if not (prompt or "").strip():
                raise ApiError(400, "Missing required field: prompt")
        else:
            raw = body.get("image")
            if not isinstance(raw, str) or not raw.strip():
                raise ApiError(400, "Missing required field: image")
            # "image | string | If image mode | Base64-encoded image data" (seed 003): plain base64. A data:
            # URI is not base64 (":", ";" and "," are outside its alphabet), so it is refused.
            encoding = "data_uri" if raw.startswith("data:") else "raw"
            try:
                image = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, "image must be base64-encoded image data") from None
            if sniff(image) not in ("png", "jpeg"):
                raise ApiError(400, "image must be a PNG or JPEG")
        cost = self.costs.get(quality, 1)
        with self.lock:
            active = sum(1 for t in self.tasks.values() if not t.finished)
            if self.concurrency_limit is not None and active >= self.concurrency_limit:
                raise ApiError(429, "Too many concurrent generations")
            if self.balance < cost:
                raise ApiError(402, "Insufficient credits")
            self.balance -= cost
            task = Image3DTask(id=f"{uuid.uuid4().hex[:6]}-{uuid.uuid4().hex[:6]}", mode=mode, quality=quality,
                               prompt=prompt, image=image, image_encoding=encoding, cost=cost,
                               pending_polls=max(0, self.pending_polls), running_polls=max(0, self.running_polls),
                               failure=self._failures.pop(0) if self._failures else None)
            self.tasks[task.id] = task
        return json_response(200, {"task_id": task.id, "status": "queued", "provider": ENGINES[quality]})

    def _status(self, task_id: str) -> Response:
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None:
                raise ApiError(404, "Task not found")
            if task.advance() and task.phase()[0] == "failed":
                self.balance += task.cost  # refunded
            phase, progress = task.phase()
            body: dict[str, Any] = {"status": phase, "progress": progress}
            if phase == "success":
                body["model_url"] = self._result_link(task.id, "model.glb", self.glb, self.url_ttl)
            elif phase == "failed":
                body["error"] = task.failure
        return json_response(200, body)
