"""Hyper3D Rodin API emulation, after shared/reference/provider-api.md sections 2 and 6.

Paths under ``/api/v2/``. Every answer is HTTP 201 (as Rodin's own docs show), application errors
included: they are ``{"error": CODE, "message": ...}`` bodies. Only a wrong key is an HTTP error (401).

A task has ``jobs_per_task`` jobs; each ``/status`` call advances the task one step: ``pending_polls``
steps with every job Waiting, then the jobs run one after the other, ``running_polls`` steps each
(Generating), then Done (the last one Failed when ``fail_next`` was armed). ``/download`` lists the
model in the requested format and ``preview.webp`` behind signed links that expire after ``link_ttl``
seconds (Rodin's are about ten minutes; ``expired_lists = n`` hands out n lists of stale links).
Controls: ``api_key``, ``balance``, ``pending_polls``, ``running_polls``, ``jobs_per_task``,
``parallel_limit``, ``files`` (format -> bytes or path), ``fail_next()``, ``refuse_next(code)``;
``tasks[uuid]`` keeps what the client sent (``fields``, ``images``, ``bbox``, ``addons_encoding``).
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .server import FormPart, Request, Response, bearer, json_response, sniff, tiny_fbx, tiny_glb
from .tasks import ApiError, PolledTask, ProviderApp

if TYPE_CHECKING:
    from .server import Emulator

PREFIX = "/api/v2/"
TIERS = ("Sketch", "Regular", "Detail", "Smooth", "Gen-2", "Gen-2.5-Extreme-Low", "Gen-2.5-Low", "Gen-2.5-Medium",
         "Gen-2.5-High", "Gen-2.5-Extreme-High")
QUALITIES = ("high", "medium", "low", "extra-low")
FORMATS = ("glb", "usdz", "fbx", "obj", "stl")
MATERIALS = ("PBR", "Shaded", "All", "None")
MESH_MODES = ("Quad", "Raw")
ADDONS = ("HighPack",)
BOOLEANS = ("TAPose", "use_hyper", "mesh_simplify", "mesh_smooth", "preview_render", "use_original_alpha",
            "hd_texture", "texture_delight", "is_micro")
MAX_IMAGES = 5
# A 1x1 lossless WebP, the preview.
PREVIEW_WEBP = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")


class AppError(ApiError):
    """Answered as HTTP 201 ``{"error": code, "message": message}`` (or ``status`` when given)."""

    def __init__(self, code: str, message: str, status: int = 201) -> None:
        super().__init__(status, message, code)


def _invalid(message: str) -> AppError:
    return AppError("INVALID_REQUEST", message)


@dataclass
class RodinTask(PolledTask):
    """One emulated generation. ``fields`` are the text parts as sent (repeated ones kept in order).
    Its jobs run one after the other, so it is finished when every job is (not after ``running_polls``)."""

    uuid: str
    subscription_key: str
    job_uuids: list[str]
    fields: dict[str, list[str]]
    images: list[FormPart]
    fmt: str
    material: str
    addons: list[str]
    addons_encoding: str | None  # "repeated", "json" or "comma" as the client sent them
    bbox: list[int] | None
    cost: float
    fail: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def statuses(self) -> list[str]:
        step, pending, running = self.polls, self.pending_polls, max(1, self.running_polls)
        count = len(self.job_uuids)
        if step <= pending:
            return ["Waiting"] * count
        k = step - pending
        out = []
        for index in range(count):
            if k > (index + 1) * running:
                out.append("Failed" if self.fail and index == count - 1 else "Done")
            elif k > index * running:
                out.append("Generating")
            else:
                out.append("Waiting")
        return out

    @property
    def finished(self) -> bool:
        return all(s in ("Done", "Failed") for s in self.statuses())

    @property
    def done(self) -> bool:
        return all(s == "Done" for s in self.statuses())


class RodinState(ProviderApp):
    """Rodin configuration, tasks and counters; also the request handler for ``/api/v2/...``."""

    def __init__(self, emulator: Emulator, *, assets: Mapping[str, Path | str] | None = None,
                 api_key: str | None = None) -> None:
        super().__init__(emulator, api_key)
        given = {k: Path(v) for k, v in (assets or {}).items()}
        # Served model files by format: bytes or a path. Defaults: the emulator's model assets.
        self.files: dict[str, bytes | Path] = {}
        if "model" in given:
            self.files["glb"] = given["model"]
        for key in ("model_fbx", "rigged_fbx"):
            if key in given:
                self.files.setdefault("fbx", given[key])
        self.balance: float = 100.0
        self.pending_polls: int = 1
        self.running_polls: int = 1
        self.jobs_per_task: int = 2
        # Seed 004 shows the submit answer's ``jobs`` as an object ({"uuids": [...], "subscription_key"})
        # in its example and describes it as "An array of job objects": "array" answers the second form.
        self.jobs_shape: str = "object"
        self.link_ttl: float = 600.0
        # The model's name in download lists (None: Rodin's own base_basic_pbr.<fmt>); tests put hostile
        # names here ("../../x.glb", "/etc/x.glb", "CON.glb") to check they never become paths.
        self.model_name: str | None = None
        self.parallel_limit: int | None = None
        self.tasks: dict[str, RodinTask] = {}
        self.status_calls: int = 0
        self.download_calls: int = 0
        self._failures = 0
        self._refusals: list[tuple[str, str]] = []

    # -- test controls -----------------------------------------------------------------------------

    @property
    def expired_lists(self) -> int:
        """The next N download lists carry links that have already expired (one list counts once)."""
        return self.expired_links

    @expired_lists.setter
    def expired_lists(self, value: int) -> None:
        self.expired_links = value

    def fail_next(self) -> None:
        """The next task's last job ends Failed."""
        with self.lock:
            self._failures += 1

    def refuse_next(self, code: str, message: str = "The emulator was told to refuse this request.") -> None:
        """The next generation request answers 201 with this application error."""
        with self.lock:
            self._refusals.append((code, message))

    def task_by_key(self, subscription_key: str) -> RodinTask | None:
        with self.lock:
            return next((t for t in self.tasks.values() if t.subscription_key == subscription_key), None)

    # -- App protocol ------------------------------------------------------------------------------

    def owns(self, path: str) -> bool:
        return path.startswith(PREFIX)

    def error_body(self, exc: ApiError) -> Any:
        return {"error": exc.code, "message": exc.message}

    def _route(self, request: Request) -> Response:
        if self.api_key is not None and bearer(request) != self.api_key:
            raise AppError("UNAUTHORIZED", "Invalid API key", status=401)
        name = request.path[len(PREFIX):].strip("/")
        if name == "check_balance" and request.method in ("GET", "POST"):
            with self.lock:
                return json_response(201, {"balance": self.balance})
        if request.method != "POST":
            raise AppError("METHOD_NOT_ALLOWED", f"{request.method} is not allowed here", status=405)
        if name == "rodin":
            return self._generate(request)
        if name == "status":
            return self._status(request)
        if name == "download":
            return self._download(request)
        raise AppError("NOT_FOUND", "Not found", status=404)

    # -- generation --------------------------------------------------------------------------------

    def _generate(self, request: Request) -> Response:
        content_type = (request.header("content-type") or "").lower()
        if not content_type.startswith("multipart/form-data"):
            raise _invalid("Requests must be multipart/form-data")
        try:
            parts = request.form()
        except ValueError as exc:
            raise _invalid(f"Malformed form data: {exc}") from None
        images = [p for p in parts if p.name == "images"]
        fields: dict[str, list[str]] = {}
        for part in parts:
            if part.name != "images":
                if part.filename is not None:
                    raise _invalid(f"{part.name} must be a text field")
                fields.setdefault(part.name, []).append(part.text)
        if len(images) > MAX_IMAGES:
            raise _invalid(f"At most {MAX_IMAGES} images")
        for index, image in enumerate(images):
            if image.filename is None or sniff(image.value) not in ("png", "jpeg"):
                raise _invalid(f"images[{index}] is not a PNG or JPEG file")
        prompt = self._one(fields, "prompt")
        if not images and not (prompt or "").strip():
            raise _invalid("A prompt is required for Text-to-3D (no images were sent)")
        tier = self._choice(fields, "tier", TIERS) or "Regular"
        self._choice(fields, "quality", QUALITIES)
        fmt = self._choice(fields, "geometry_file_format", FORMATS) or "glb"
        material = self._choice(fields, "material", MATERIALS) or "PBR"
        self._choice(fields, "mesh_mode", MESH_MODES)
        self._choice(fields, "condition_mode", ("concat", "fuse"))
        for name in BOOLEANS:
            self._choice(fields, name, ("true", "false", "True", "False"))
        seed = self._one(fields, "seed")
        if seed is not None and not (seed.isdigit() and 0 <= int(seed) <= 65535):
            raise _invalid("seed must be an integer from 0 to 65535")
        bbox = self._bbox(self._one(fields, "bbox_condition"))
        addons, encoding = self._array(fields.get("addons", []), "addons")
        unknown = [a for a in addons if a not in ADDONS]
        if unknown:
            raise _invalid(f"Unknown addons: {', '.join(unknown)}")
        cost = (1.0 if tier == "Gen-2.5-Extreme-High" else 0.5) + (1.0 if "HighPack" in addons else 0.0)
        with self.lock:
            if self._refusals:
                code, message = self._refusals.pop(0)
                raise AppError(code, message)
            if self.parallel_limit is not None:
                active = sum(1 for t in self.tasks.values() if not t.finished)
                if active >= self.parallel_limit:
                    raise AppError("API_PARALLELISM_LIMIT_REACHED", "Too many tasks running at once")
            if self.balance < cost:
                raise AppError("INSUFFICIENT_FUND", "Insufficient funds")
            self.balance -= cost
            fail = self._failures > 0
            self._failures -= 1 if fail else 0
            task = RodinTask(
                uuid=str(uuid.uuid4()), subscription_key=_jwt(), job_uuids=[str(uuid.uuid4())
                                                                          for _ in range(max(1, self.jobs_per_task))],
                fields=fields, images=images, fmt=fmt, material=material, addons=addons, addons_encoding=encoding,
                bbox=bbox, cost=cost, pending_polls=max(0, self.pending_polls), running_polls=self.running_polls,
                fail=fail)
            self.tasks[task.uuid] = task
        jobs: Any = {"uuids": list(task.job_uuids), "subscription_key": task.subscription_key}
        if self.jobs_shape == "array":
            jobs = [jobs]
        return json_response(201, {"error": None, "message": "Submitted.", "uuid": task.uuid, "jobs": jobs})

    @staticmethod
    def _one(fields: Mapping[str, list[str]], name: str) -> str | None:
        values = fields.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise _invalid(f"{name} was sent {len(values)} times")
        return values[0]

    def _choice(self, fields: Mapping[str, list[str]], name: str, allowed: tuple[str, ...]) -> str | None:
        value = self._one(fields, name)
        if value is not None and value not in allowed:
            raise _invalid(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        return value

    @staticmethod
    def _bbox(value: str | None) -> list[int] | None:
        if value is None:
            return None
        text = value.strip()
        try:
            items = json.loads(text) if text.startswith("[") else [int(x) for x in text.split(",")]
        except ValueError:
            raise _invalid(f"bbox_condition must be an array of 3 integers, not {value!r}") from None
        if (not isinstance(items, list) or len(items) != 3
                or not all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 2048 for x in items)):
            raise _invalid(f"bbox_condition must be 3 integers from 1 to 2048, not {value!r}")
        return items

    @staticmethod
    def _array(values: list[str], name: str) -> tuple[list[str], str | None]:
        """An array field in any of the three encodings seen in clients."""
        if not values:
            return [], None
        if len(values) > 1:
            return values, "repeated"
        text = values[0].strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError:
                raise _invalid(f"{name}: Unexpected token in JSON array") from None
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise _invalid(f"{name} must be an array of strings")
            return items, "json"
        if "," in text:
            return [x.strip() for x in text.split(",") if x.strip()], "comma"
        return [text] if text else [], "repeated"

    # -- status, download --------------------------------------------------------------------------

    @staticmethod
    def _body(request: Request, name: str) -> str:
        """A field from a JSON or a form body."""
        content_type = (request.header("content-type") or "").lower()
        value: Any = None
        if content_type.startswith("application/json"):
            try:
                body = request.json()
            except (ValueError, UnicodeDecodeError):
                raise _invalid("Invalid JSON body") from None
            value = body.get(name) if isinstance(body, dict) else None
        else:
            try:
                parts = request.form()
            except ValueError:
                raise _invalid("The body must be JSON or form data") from None
            value = next((p.text for p in parts if p.name == name), None)
        if not isinstance(value, str) or not value:
            raise _invalid(f"{name} is required")
        return value

    def _status(self, request: Request) -> Response:
        key = self._body(request, "subscription_key")
        with self.lock:
            self.status_calls += 1
            task = self.task_by_key(key)
            if task is None:  # includes a task uuid sent by mistake
                raise AppError("NO_SUCH_TASK", "No such task")
            task.advance()
            statuses = task.statuses()
            jobs: list[dict[str, Any]] = []
            for job_uuid, status in zip(task.job_uuids, statuses, strict=True):
                item: dict[str, Any] = {"uuid": job_uuid, "status": status}
                if status == "Waiting" and task.polls <= task.pending_polls:
                    item["queue_length"] = task.pending_polls - task.polls + 1
                jobs.append(item)
        return json_response(201, {"error": "OK", "jobs": jobs})

    def _download(self, request: Request) -> Response:
        task_uuid = self._body(request, "task_uuid")
        with self.lock:
            self.download_calls += 1
            task = self.tasks.get(task_uuid)
            if task is None:  # includes a subscription key sent by mistake
                raise AppError("NO_SUCH_TASK", "No such task")
            task.advance()  # time passes for a client that only asks for the list (a recovered task)
            if not task.done:
                return json_response(201, {"error": "OK", "list": []})
            name = self.model_name or f"base_basic_{'shaded' if task.material == 'Shaded' else 'pbr'}.{task.fmt}"
            self._store(task.uuid, name, self._content(task.fmt))
            self._store(task.uuid, "preview.webp", PREVIEW_WEBP)
            ttl = self._link_ttl(self.link_ttl)
            files = [{"url": self._emu.files.url(task.uuid, n, ttl), "name": n} for n in (name, "preview.webp")]
        return json_response(201, {"error": "OK", "list": files})

    def _content(self, fmt: str) -> bytes | Path:
        source = self.files.get(fmt)
        if isinstance(source, Path | bytes):
            return source
        if fmt == "glb":
            return tiny_glb("rodin")
        return tiny_fbx() if fmt == "fbx" else b"emulated " + fmt.encode()


def _jwt() -> str:
    """A token shaped like Rodin's subscription keys (a JWT); nothing checks its signature."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': secrets.token_hex(8)})}.{secrets.token_hex(16)}"
