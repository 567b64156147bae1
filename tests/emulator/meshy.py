"""Meshy API emulation (https://docs.meshy.ai), after shared/reference/provider-api.md sections 1 and 6.

Tasks advance one step per GET: ``pending_polls`` PENDING answers with
``preceding_tasks`` counting down, ``running_polls`` IN_PROGRESS answers with rising ``progress``, then
SUCCEEDED (or FAILED when ``fail_next`` was armed for that kind). Results are served by the emulator's
signed asset store from the configured asset files; ``expired_links = n`` makes the next n renders of a
finished task carry links that have already expired.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import re
import struct
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .server import Request, Response, json_response, sniff, tiny_png
from .tasks import PENDING, RUNNING, ApiError, PolledTask, ProviderApp

if TYPE_CHECKING:
    from .server import Emulator

API_VERSION = "2025.10.28-emulator"

TASK_KINDS = ("image-to-3d", "multi-image-to-3d", "text-to-3d-preview", "text-to-3d-refine", "remesh", "rig",
              "animate")
MODEL_KINDS = frozenset({"image-to-3d", "multi-image-to-3d", "text-to-3d-preview", "text-to-3d-refine", "remesh"})
REMESH_INPUT_KINDS = frozenset({"image-to-3d", "text-to-3d-preview", "text-to-3d-refine"})
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED"})
ACTIVE = frozenset({"PENDING", "IN_PROGRESS"})

CATALOG_PATH = "/web/public/animations/resources"
BALANCE_PATH = "/openapi/v1/balance"

# collection path -> endpoint name; endpoint name -> task kinds it serves
_COLLECTIONS: dict[str, str] = {
    "/openapi/v1/image-to-3d": "image-to-3d",
    "/openapi/v1/multi-image-to-3d": "multi-image-to-3d",
    "/openapi/v2/text-to-3d": "text-to-3d",
    "/openapi/v1/remesh": "remesh",
    "/openapi/v1/rigging": "rigging",
    "/openapi/v1/animations": "animations",
}
_ENDPOINT_KINDS: dict[str, frozenset[str]] = {
    "image-to-3d": frozenset({"image-to-3d"}),
    "multi-image-to-3d": frozenset({"multi-image-to-3d"}),
    "text-to-3d": frozenset({"text-to-3d-preview", "text-to-3d-refine"}),
    "remesh": frozenset({"remesh"}),
    "rigging": frozenset({"rig"}),
    "animations": frozenset({"animate"}),
}
_LISTABLE = frozenset({"image-to-3d", "multi-image-to-3d", "text-to-3d", "remesh"})
_ROUTE = re.compile(r"(?P<base>/openapi/v\d+/[a-z0-9-]+)(?:/(?P<id>[^/]+?))?/?")

MODEL_FORMATS = ("glb", "obj", "fbx", "stl", "usdz", "3mf")
DEFAULT_MODEL_FORMATS = ("glb", "fbx", "obj", "usdz", "stl")  # all except 3mf
REMESH_FORMATS = ("glb", "fbx", "obj", "usdz", "blend", "stl", "3mf")
AI_MODELS = ("meshy-5", "meshy-6", "latest")
ANIMATION_FPS = (24, 25, 30, 60)
# Rigging refuses models over this many faces (seed 002, Rigging API: "Face count exceeded").
MAX_RIG_FACES = 300_000
# The documented default polycount of a remesh (seed 002: target_polycount default 30,000).
DEFAULT_POLYCOUNT = 30_000
# Faces of "the highest-precision triangular mesh" meshy-6 returns without remeshing. The seed gives no
# number; it only says rigging then refuses it, so the emulator makes it larger than the limit.
RAW_FACES = 500_000
FACE_COUNT_EXCEEDED = ("Face count exceeded: the input model has more than 300,000 faces. Please use the "
                       "Remesh API to reduce the face count before rigging.")
POSE_FAILED = "Pose estimation failed. The provided model may not be a valid humanoid character."
UNTEXTURED = "Auto-rigging is not suitable for untextured meshes. We currently support textured humanoid models."
POST_PROCESS_OPS = ("change_fps", "fbx2usdz", "extract_armature")
_IMAGE_MIMES = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg"}

PREVIEW_BASE = "https://cdn.meshy.ai/webapp-assets/feature-demo/animation/preview/biped/"
# (action_id, name, category, subCategory): rows of the public animation library (provider-api.md 1.11).
_CATALOG_ROWS: tuple[tuple[int, str, str, str], ...] = (
    (0, "Idle", "DailyActions", "Idle"),
    (1, "Walking_Woman", "WalkAndRun", "Walking"),
    (2, "Alert", "DailyActions", "LookingAround"),
    (3, "Arise", "DailyActions", "LookingAround"),
    (4, "Attack", "Fighting", "AttackingwithWeapon"),
    (5, "BackLeft_run", "WalkAndRun", "Running"),
    (7, "BeHit_FlyUp", "Fighting", "GettingHit"),
    (8, "Dead", "Fighting", "Dying"),
    (11, "Idle_02", "DailyActions", "Idle"),
    (13, "Jump_Run", "WalkAndRun", "Running"),
    (14, "Run_02", "WalkAndRun", "Running"),
    (16, "RunFast", "WalkAndRun", "Running"),
    (17, "Skill_01", "BodyMovements", "Acting"),
    (22, "FunnyDancing_01", "Dancing", "Dancing"),
    (23, "FunnyDancing_02", "Dancing", "Dancing"),
    (25, "Agree_Gesture", "DailyActions", "Interacting"),
    (28, "Big_Wave_Hello", "DailyActions", "Interacting"),
    (30, "Casual_Walk", "WalkAndRun", "Walking"),
    (41, "Formal_Bow", "DailyActions", "Interacting"),
    (59, "Victory_Cheer", "BodyMovements", "Acting"),
    (64, "All_Night_Dance", "Dancing", "Dancing"),
    (92, "Double_Combo_Attack", "Fighting", "AttackingwithWeapon"),
    (96, "Kung_Fu_Punch", "Fighting", "Punching"),
    (105, "Triple_Combo_Attack", "Fighting", "AttackingwithWeapon"),
    (106, "Confident_Walk", "WalkAndRun", "Walking"),
    (125, "Charged_Spell_Cast", "Fighting", "CastingSpell"),
    (138, "Block1", "Fighting", "Blocking"),
    (158, "Roll_Dodge", "Fighting", "Transitioning"),
    (178, "Hit_Reaction", "Fighting", "GettingHit"),
    (187, "Knock_Down", "Fighting", "Dying"),
)


def default_catalog() -> list[dict[str, Any]]:
    """A fresh copy of the built-in animation catalog fixture (``result.list`` entries)."""
    return [{"id": i, "name": name, "category": cat, "subCategory": sub, "previewUrl": f"{PREVIEW_BASE}{name}.gif"}
            for i, name, cat, sub in _CATALOG_ROWS]


THUMBNAIL_PNG = tiny_png(1, 1, (180, 180, 180))


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


_DATA_URI = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.DOTALL)


def _decode_data_uri(value: str, name: str) -> tuple[str, bytes]:
    match = _DATA_URI.fullmatch(value)
    if match is None:
        raise _bad(f"Malformed data URI in {name}")
    params = [p.strip().lower() for p in match.group("params").split(";") if p.strip()]
    if "base64" not in params:
        raise _bad(f"Malformed data URI in {name}: base64 encoding is required")
    try:
        data = base64.b64decode(match.group("data"), validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"Malformed data URI in {name}: invalid base64") from None
    if not data:
        raise _bad(f"Malformed data URI in {name}: empty content")
    return match.group("mime").strip().lower(), data


def glb_traits(data: bytes) -> dict[str, Any]:
    """Faces (triangles) and whether it carries a texture, read from a GLB's JSON chunk: each triangle
    primitive counts its indices (or vertices) / 3; textured when it embeds images. A GLB that cannot be
    read is refused as Meshy refuses an invalid model."""
    try:
        length, kind = struct.unpack_from("<I4s", data, 12)
        if kind != b"JSON":
            raise ValueError("no JSON chunk")
        doc = json.loads(data[20:20 + length].decode("utf-8"))
        accessors = doc.get("accessors") or []
        faces = 0
        for mesh in doc.get("meshes") or []:
            for prim in mesh.get("primitives") or []:
                if prim.get("mode", 4) != 4:
                    continue
                index = prim.get("indices")
                if index is None:
                    index = (prim.get("attributes") or {}).get("POSITION")
                if index is not None:
                    faces += int(accessors[index]["count"]) // 3
    except (ValueError, KeyError, IndexError, TypeError, struct.error, UnicodeDecodeError):
        raise _bad("Invalid model file: the GLB could not be read") from None
    return {"faces": faces, "textured": bool(doc.get("images"))}


def _is_private_host(host: str) -> bool:
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


# -- body field checks (null counts as absent) ------------------------------------------------------


def _present(body: Mapping[str, Any], key: str) -> bool:
    return body.get(key) is not None


def _bool(body: Mapping[str, Any], key: str) -> bool | None:
    if not _present(body, key):
        return None
    value = body[key]
    if not isinstance(value, bool):
        raise _bad(f"{key} must be a boolean")
    return value


def _str(body: Mapping[str, Any], key: str, *, max_len: int | None = None) -> str | None:
    if not _present(body, key):
        return None
    value = body[key]
    if not isinstance(value, str):
        raise _bad(f"{key} must be a string")
    if max_len is not None and len(value) > max_len:
        raise _bad(f"{key} must be at most {max_len} characters")
    return value


def _choice(body: Mapping[str, Any], key: str, choices: Sequence[str]) -> str | None:
    value = _str(body, key)
    if value is not None and value not in choices:
        raise _bad(f"{key} must be one of: " + ", ".join(repr(c) for c in choices))
    return value


def _int(body: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    if not _present(body, key):
        return None
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{key} must be an integer")
    if not low <= value <= high:
        raise _bad(f"{key} must be between {low} and {high}")
    return value


def _number(body: Mapping[str, Any], key: str) -> float | None:
    if not _present(body, key):
        return None
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{key} must be a number")
    return float(value)


def _formats(body: Mapping[str, Any], key: str, allowed: Sequence[str]) -> list[str] | None:
    if not _present(body, key):
        return None
    value = body[key]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _bad(f"{key} must be a non-empty array of strings")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise _bad(f"Unsupported {key}: {', '.join(unknown)}")
    return list(dict.fromkeys(value))


def _query_int(query: Mapping[str, str], key: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(f"{key} must be an integer") from None
    if value < low or (high is not None and value > high):
        raise _bad(f"{key} must be between {low} and {high}" if high else f"{key} must be at least {low}")
    return value


def _new_id(now_ms: int) -> str:
    """A time-ordered (UUIDv7-like) id, like Meshy's k-sortable ids."""
    value = ((now_ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (uuid.uuid4().int & ((1 << 76) - 1))
    value = (value & ~(0b11 << 62)) | (0b10 << 62)
    return str(uuid.UUID(int=value))


@dataclass
class MeshyTask(PolledTask):
    """One emulated task. ``request`` is the validated body as sent; ``outputs`` holds the result tree
    with file names as leaves (signed into URLs on every render)."""

    id: str
    kind: str
    request: dict[str, Any]
    created_at: int
    seq: int
    cost: int
    failure: dict[str, str] | None = None
    status: str = "PENDING"
    progress: int = 0
    preceding_tasks: int = 0
    started_at: int = 0
    finished_at: int = 0
    expires_at: int = 0
    consumed_credits: int = 0
    task_error: dict[str, str] = field(default_factory=lambda: {"message": ""})
    outputs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL  # a canceled task too


class MeshyState(ProviderApp):
    """Meshy configuration, tasks and counters; also the request handler for Meshy paths.

    Change the public attributes at any time (under ``lock`` when racing live requests).
    """

    def __init__(self, emulator: Emulator, *, assets: Mapping[str, Path | str] | None = None,
                 api_key: str | None = None) -> None:
        super().__init__(emulator, api_key)
        self.assets: dict[str, Path] = {k: Path(v) for k, v in (assets or {}).items()}
        self.asset_ttl: float = 3 * 24 * 3600.0  # seconds a signed asset URL stays valid
        self.pending_polls: int = 2
        self.running_polls: int = 2
        self.balance: int = 1000
        self.queue_limit: int | None = None
        self.catalog: list[dict[str, Any]] = default_catalog()
        self.api_version: str = API_VERSION
        self.tasks: dict[str, MeshyTask] = {}
        self.created: Counter[str] = Counter()  # tasks created, by kind
        self.deleted: list[MeshyTask] = []  # tasks removed by DELETE, in order
        self.raw_faces: int = RAW_FACES  # faces of a model generated without remeshing
        self.pose_failures: int = 0  # the next N rigging requests answer 422 (pose estimation failed)
        self.polls: int = 0  # progression steps taken (GETs)
        self._failures: dict[str, list[dict[str, str]]] = {}
        self._seq = 0

    # -- test controls -----------------------------------------------------------------------------

    def fail_next(self, kind: str, *, type: str = "invalid_input", code: str | None = None,
                  message: str = "The emulator was told to fail this task.") -> None:
        """The next created task of ``kind`` ends FAILED (after its normal polls) with this task_error.
        Calls queue up: two calls fail the next two tasks of that kind."""
        if kind not in TASK_KINDS:
            raise ValueError(f"unknown Meshy task kind {kind!r}; one of {', '.join(TASK_KINDS)}")
        error = {"type": type, "message": message}
        if code:
            error["code"] = code
            error["doc_url"] = "https://docs.meshy.ai/en/api/errors#" + code.replace("_", "-")
        with self.lock:
            self._failures.setdefault(kind, []).append(error)

    def advance(self, task_id: str, steps: int = 1) -> dict[str, Any]:
        """Advance a task as ``steps`` GETs would (without logging requests); returns the task JSON."""
        with self.lock:
            task = self.tasks[task_id]
            for _ in range(steps):
                self._advance(task)
            return self._render(task)

    def active_count(self) -> int:
        with self.lock:
            return sum(1 for t in self.tasks.values() if t.status in ACTIVE)

    # -- App protocol ------------------------------------------------------------------------------

    def owns(self, path: str) -> bool:
        return path.startswith("/openapi/") or path == CATALOG_PATH

    def base_headers(self) -> dict[str, str]:
        return {"x-api-version": self.api_version}

    def _authorized(self, request: Request) -> bool:
        if self.api_key is None:
            return True
        scheme, _, token = (request.header("authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.api_key

    def _route(self, request: Request) -> Response:
        method = request.method
        if request.path == CATALOG_PATH:
            if method != "GET":
                raise ApiError(405, "Method not allowed")
            with self.lock:
                return json_response(200, {"result": {"list": copy.deepcopy(self.catalog)}})
        if not self._authorized(request):
            raise ApiError(401, "Invalid API key")
        if request.path == BALANCE_PATH:
            if method != "GET":
                raise ApiError(405, "Method not allowed")
            with self.lock:
                return json_response(200, {"balance": self.balance})
        match = _ROUTE.fullmatch(request.path)
        if match is None or match.group("base") not in _COLLECTIONS:
            raise ApiError(404, "Not found")
        endpoint = _COLLECTIONS[match.group("base")]
        task_id = match.group("id")
        if task_id is None:
            if method == "POST":
                return self._create(endpoint, request)
            if method == "GET" and endpoint in _LISTABLE:
                return self._list(endpoint, request.query)
            raise ApiError(405, "Method not allowed")
        if method == "GET":
            with self.lock:
                task = self._find(endpoint, task_id)
                self._advance(task)
                return json_response(200, self._render(task))
        if method == "DELETE":
            # "permanently deletes ... including all associated models and data. This action is
            # irreversible" (seed 002): afterwards the task is unknown (404), its files are gone, and the
            # credits stay spent.
            with self.lock:
                task = self._find(endpoint, task_id)
                del self.tasks[task_id]
                self.deleted.append(task)
                self._emu.files.drop_task(task_id)
                return json_response(200, {})
        raise ApiError(405, "Method not allowed")

    def _find(self, endpoint: str, task_id: str) -> MeshyTask:
        task = self.tasks.get(task_id)
        if task is None or task.kind not in _ENDPOINT_KINDS[endpoint]:
            raise ApiError(404, "Task not found")
        return task

    # -- create ------------------------------------------------------------------------------------

    def _create(self, endpoint: str, request: Request) -> Response:
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            raise _bad("Invalid JSON body") from None
        if not isinstance(body, dict):
            raise _bad("The request body must be a JSON object")
        with self.lock:
            kind, cost, extra = self._validate(endpoint, body)
            if kind == "rig" and self.pose_failures > 0:
                self.pose_failures -= 1
                raise ApiError(422, POSE_FAILED)
            if self.queue_limit is not None and self.active_count() >= self.queue_limit:
                raise ApiError(429, "NoMoreConcurrentTasks")
            if self.balance < cost:
                raise ApiError(402, "Insufficient credits")
            self.balance -= cost
            self._seq += 1
            now = self._emu.now_ms()
            pending = max(0, int(self.pending_polls))
            failures = self._failures.get(kind)
            task = MeshyTask(
                id=_new_id(now), kind=kind, request=copy.deepcopy(body), created_at=now, seq=self._seq,
                cost=cost, pending_polls=pending, running_polls=max(0, int(self.running_polls)),
                failure=failures.pop(0) if failures else extra.pop("failure", None), preceding_tasks=pending,
                consumed_credits=cost, extra=extra,
            )
            self.tasks[task.id] = task
            self.created[kind] += 1
        return json_response(202, {"result": task.id})

    def _validate(self, endpoint: str, body: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
        if endpoint == "image-to-3d":
            return "image-to-3d", self._validate_image(body, multi=False), self._model_traits(body)
        if endpoint == "multi-image-to-3d":
            return "multi-image-to-3d", self._validate_image(body, multi=True), self._model_traits(body)
        if endpoint == "text-to-3d":
            return self._validate_text(body)
        if endpoint == "remesh":
            return "remesh", 5, self._validate_remesh(body)
        if endpoint == "rigging":
            return "rig", 5, self._validate_rig(body)
        return self._validate_animation(body)

    def _model_traits(self, body: Mapping[str, Any], *, textured: bool | None = None) -> dict[str, Any]:
        """Faces and texture of the model a generation task makes: ``should_remesh`` defaults to false on
        meshy-6/latest (then the raw high-precision mesh comes back) and to true on other models; a
        remesh aims at ``target_polycount`` (default 30,000); ``should_texture`` defaults to true."""
        ai_model = body.get("ai_model") or "latest"
        remesh = body.get("should_remesh")
        if remesh is None:
            remesh = ai_model not in ("meshy-6", "latest")
        faces = int(body.get("target_polycount") or DEFAULT_POLYCOUNT) if remesh else self.raw_faces
        if body.get("model_type") == "lowpoly":
            faces = DEFAULT_POLYCOUNT
        if textured is None:
            textured = body.get("should_texture") is not False
        return {"faces": faces, "textured": textured}

    def _validate_generation(self, body: Mapping[str, Any], *, model_type: bool) -> None:
        if model_type:
            _choice(body, "model_type", ("standard", "lowpoly"))
        _choice(body, "ai_model", AI_MODELS)
        for key in ("should_remesh", "save_pre_remeshed_model", "is_a_t_pose", "moderation", "auto_size",
                    "alpha_thumbnail", "hd_texture", "image_enhancement", "remove_lighting",
                    "multi_view_thumbnails"):
            _bool(body, key)
        _choice(body, "topology", ("quad", "triangle"))
        _int(body, "target_polycount", 100, 300_000)
        _int(body, "decimation_mode", 1, 4)
        _choice(body, "symmetry_mode", ("off", "auto", "on"))
        _choice(body, "pose_mode", ("", "a-pose", "t-pose"))
        _choice(body, "origin_at", ("bottom", "center"))
        _formats(body, "target_formats", MODEL_FORMATS)

    def _validate_image(self, body: Mapping[str, Any], *, multi: bool) -> int:
        urls_key = "image_urls" if multi else "image_url"
        if _present(body, "input_task_id"):
            task_id = _str(body, "input_task_id")
            # The emulator has no Text-to-Image tasks, the only valid inputs here.
            raise _bad(f"Invalid input task: {task_id}")
        if not _present(body, urls_key):
            raise _bad(f"Either {urls_key} or input_task_id is required")
        if multi:
            urls = body["image_urls"]
            if not isinstance(urls, list) or not 1 <= len(urls) <= 4:
                raise _bad("image_urls must contain between 1 and 4 images")
            for index, url in enumerate(urls):
                self._check_image_ref(url, f"image_urls[{index}]")
        else:
            self._check_image_ref(body["image_url"], "image_url")
        self._validate_generation(body, model_type=not multi)
        should_texture = _bool(body, "should_texture")
        if _bool(body, "enable_pbr") and should_texture is False:
            raise _bad("enable_pbr requires should_texture to be true")
        _str(body, "texture_prompt", max_len=600)
        if _present(body, "texture_image_url"):
            self._check_image_ref(body["texture_image_url"], "texture_image_url")
        textured = should_texture is not False
        high = body.get("ai_model", "latest") in ("meshy-6", "latest")
        if not multi and body.get("model_type") == "lowpoly":
            high = True
        if high:
            return 30 if textured else 20
        return 15 if textured else 5

    def _validate_text(self, body: Mapping[str, Any]) -> tuple[str, int, dict[str, Any]]:
        mode = body.get("mode")
        if mode == "preview":
            prompt = _str(body, "prompt", max_len=600)
            if not prompt or not prompt.strip():
                raise _bad("prompt is required")
            self._validate_generation(body, model_type=True)
            _choice(body, "art_style", ("realistic", "sculpture"))
            high = body.get("ai_model", "latest") in ("meshy-6", "latest") or body.get("model_type") == "lowpoly"
            return "text-to-3d-preview", 20 if high else 5, self._model_traits(body, textured=False)
        if mode == "refine":
            preview_id = _str(body, "preview_task_id")
            if not preview_id:
                raise _bad("preview_task_id is required")
            preview = self.tasks.get(preview_id)
            if preview is None:
                raise ApiError(404, "Task not found")
            if preview.kind != "text-to-3d-preview":
                raise _bad("preview_task_id must be a Text to 3D preview task")
            if preview.status != "SUCCEEDED":
                raise _bad("The preview task has not succeeded yet")
            for key in ("enable_pbr", "hd_texture", "moderation", "remove_lighting", "alpha_thumbnail", "auto_size"):
                _bool(body, key)
            _str(body, "texture_prompt", max_len=600)
            if _present(body, "texture_image_url"):
                self._check_image_ref(body["texture_image_url"], "texture_image_url")
            _choice(body, "ai_model", AI_MODELS)
            # "Model mismatch: The preview task's AI model is incompatible with the requested refine model"
            # (seed 002, refine Failure Modes): meshy-5 and meshy-6 (= latest) do not mix.
            family = {"latest": "meshy-6"}
            if _present(body, "ai_model") and family.get(body["ai_model"], body["ai_model"]) != family.get(
                    preview.request.get("ai_model") or "latest", preview.request.get("ai_model") or "latest"):
                raise _bad("Model mismatch: the preview task's AI model is incompatible with the refine model")
            _choice(body, "origin_at", ("bottom", "center"))
            _formats(body, "target_formats", MODEL_FORMATS)
            extra = {"prompt": preview.request.get("prompt", ""),
                     "art_style": preview.request.get("art_style", "realistic"),
                     "faces": preview.extra.get("faces", self.raw_faces), "textured": True}
            return "text-to-3d-refine", 10, extra
        raise _bad("mode must be 'preview' or 'refine'")

    def _check_model_input(self, body: Mapping[str, Any], *, glb_only: bool, unknown: ApiError | None,
                           kinds: frozenset[str] = MODEL_KINDS) -> dict[str, Any]:
        """``input_task_id`` (a model task of ``kinds`` that succeeded) or ``model_url``, as remesh and
        rigging take them. ``unknown``: the error for a task id that does not exist (None: an invalid
        input task). Returns the input model's traits: faces (None when unknown) and textured."""
        if _present(body, "input_task_id"):
            task_id = _str(body, "input_task_id") or ""
            task = self.tasks.get(task_id)
            if task is None and unknown is not None:
                raise unknown
            if task is None or task.kind not in kinds:
                raise _bad(f"Invalid input task: {task_id}")
            if task.status != "SUCCEEDED":
                raise _bad("The input task has not succeeded yet")
            return {"faces": task.extra.get("faces"), "textured": bool(task.extra.get("textured"))}
        if _present(body, "model_url"):
            return self._check_model_ref(body["model_url"], "model_url", glb_only=glb_only)
        raise _bad("Either model_url or input_task_id is required")

    def _validate_remesh(self, body: Mapping[str, Any]) -> dict[str, Any]:
        # input_task_id: "Text to 3D Preview, Text to 3D Refine, Image to 3D or Retexture" (seed 002)
        traits = self._check_model_input(body, glb_only=False, unknown=None, kinds=REMESH_INPUT_KINDS)
        formats = _formats(body, "target_formats", REMESH_FORMATS)
        _choice(body, "topology", ("quad", "triangle"))
        _int(body, "target_polycount", 100, 300_000)
        _int(body, "decimation_mode", 1, 4)
        sizes = [_number(body, key) for key in ("resize_height", "resize_longest_side")]
        if any(s is not None and s < 0 for s in sizes):
            raise _bad("resize_height and resize_longest_side must not be negative")
        if _bool(body, "auto_size") and any(sizes):
            raise _bad("auto_size cannot be combined with resize_height or resize_longest_side")
        _choice(body, "origin_at", ("bottom", "center"))
        if _bool(body, "convert_format_only") and not formats:
            raise _bad("convert_format_only requires target_formats")
        _bool(body, "alpha_thumbnail")
        faces = traits.get("faces") if body.get("convert_format_only") else None
        return {"faces": faces or int(body.get("target_polycount") or DEFAULT_POLYCOUNT),
                "textured": traits.get("textured", False)}

    def _validate_rig(self, body: Mapping[str, Any]) -> dict[str, Any]:
        traits = self._check_model_input(body, glb_only=True, unknown=ApiError(404, "Task not found"))
        height = _number(body, "height_meters")
        if height is not None and height <= 0:
            raise _bad("height_meters must be a positive number")
        textured = bool(traits.get("textured"))
        if _present(body, "texture_image_url") and not _present(body, "input_task_id"):
            # "We currently support .png formats" (seed 002): a JPEG is refused, not guessed at.
            self._check_image_ref(body["texture_image_url"], "texture_image_url", png_only=True)
            textured = True
        faces = traits.get("faces")
        if faces is not None and faces > MAX_RIG_FACES:
            raise _bad(FACE_COUNT_EXCEEDED)
        extra: dict[str, Any] = {"faces": faces, "textured": textured}
        if not textured:
            # "auto-rigging is not suitable for ... Untextured meshes" (seed 002). The seed does not say
            # how the service answers; the emulator fails the task (refunded) so a client that sends one
            # never gets a character.
            extra["failure"] = {"type": "invalid_input", "message": UNTEXTURED}
        return extra

    def _validate_animation(self, body: Mapping[str, Any]) -> tuple[str, int, dict[str, Any]]:
        rig_id = _str(body, "rig_task_id")
        if not rig_id:
            raise _bad("rig_task_id is required")
        if not _present(body, "action_id"):
            raise _bad("action_id is required")
        action_id = body["action_id"]
        if isinstance(action_id, bool) or not isinstance(action_id, int):
            raise _bad("action_id must be an integer")
        rig = self.tasks.get(rig_id)
        if rig is None:
            raise ApiError(404, "Task not found")
        if rig.kind != "rig":
            raise _bad(f"Invalid rig task: {rig_id}")
        if rig.status != "SUCCEEDED":
            raise _bad("The rig task has not succeeded")
        entry = next((e for e in self.catalog if e.get("id") == action_id), None)
        if entry is None:
            raise _bad(f"Invalid action_id: {action_id}")
        if _present(body, "post_process"):
            post = body["post_process"]
            if not isinstance(post, dict):
                raise _bad("post_process must be an object")
            if not _present(post, "operation_type"):
                raise _bad("post_process.operation_type is required")
            _choice(post, "operation_type", POST_PROCESS_OPS)
            fps = post.get("fps")
            if fps is not None and (isinstance(fps, bool) or fps not in ANIMATION_FPS):
                raise _bad("post_process.fps must be one of 24, 25, 30, 60")
        return "animate", 3, {"action_name": str(entry.get("name") or f"Action_{action_id}")}

    # -- input references --------------------------------------------------------------------------

    def _fetch_url(self, value: str, name: str) -> bytes | None:
        """Bytes behind a URL the emulator itself serves; None for a public URL (never fetched)."""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad(f"{name} must be a public http(s) URL or a data URI")
        ours, content = self._emu.files.fetch_local(value)
        if ours:
            if content is None:
                raise _bad(f"Unreachable URL in {name}")
            return content
        if _is_private_host(parts.hostname):
            raise _bad(f"Unreachable URL in {name}: {parts.hostname} is not publicly reachable")
        return None

    def _check_image_ref(self, value: Any, name: str, *, png_only: bool = False) -> None:
        if not isinstance(value, str) or not value.strip():
            raise _bad(f"{name} must be a non-empty string")
        wanted = ("png",) if png_only else ("png", "jpeg")
        if value.startswith("data:"):
            mime, data = _decode_data_uri(value, name)
            expected = _IMAGE_MIMES.get(mime)
            if expected not in wanted:
                raise _bad(f"Unsupported image format in {name}: {mime or 'no media type'}")
            if sniff(data) != expected:
                raise _bad(f"Malformed data URI in {name}: the content is not a {mime} image")
            return
        content = self._fetch_url(value, name)
        if content is not None and sniff(content) not in wanted:
            raise _bad(f"Unsupported image format in {name}")

    def _check_model_ref(self, value: Any, name: str, *, glb_only: bool) -> dict[str, Any]:
        """The model behind a URL or data URI, checked; its traits (faces, textured) when it is a GLB the
        emulator can read (a public URL is never fetched: its traits are unknown)."""
        if not isinstance(value, str) or not value.strip():
            raise _bad(f"{name} must be a non-empty string")
        if value.startswith("data:"):
            _mime, data = _decode_data_uri(value, name)
            if glb_only and sniff(data) != "glb":
                raise _bad(f"Invalid model file in {name}: only GLB files are supported")
            return glb_traits(data) if sniff(data) == "glb" else {"faces": None, "textured": True}
        content = self._fetch_url(value, name)
        if content is not None:
            if glb_only and sniff(content) != "glb":
                raise _bad(f"Invalid model file in {name}: only GLB files are supported")
            return glb_traits(content) if sniff(content) == "glb" else {"faces": None, "textured": True}
        ext = PurePosixPath(urlsplit(value).path).suffix.lower()
        allowed = (".glb",) if glb_only else (".glb", ".gltf", ".obj", ".fbx", ".stl")
        if ext not in allowed:
            raise _bad(f"Invalid model file extension: {ext or '(none)'}")
        return {"faces": None, "textured": True}

    # -- list ------------------------------------------------------------------------------------

    def _list(self, endpoint: str, query: Mapping[str, str]) -> Response:
        page_num = _query_int(query, "page_num", 1, 1, None)
        page_size = _query_int(query, "page_size", 10, 1, 50)
        sort_by = query.get("sort_by", "-created_at").strip()  # an unencoded "+" arrives as a space
        if sort_by not in ("created_at", "+created_at", "-created_at"):
            raise _bad("sort_by must be +created_at or -created_at")
        with self.lock:
            tasks = sorted((t for t in self.tasks.values() if t.kind in _ENDPOINT_KINDS[endpoint]),
                           key=lambda t: (t.created_at, t.seq), reverse=sort_by.startswith("-"))
            page = tasks[(page_num - 1) * page_size: page_num * page_size]
            return json_response(200, [self._render(t) for t in page])

    # -- progression -------------------------------------------------------------------------------

    def _advance(self, task: MeshyTask) -> None:
        if not task.advance():
            return
        self.polls += 1
        stage, progress = task.stage()
        if stage == PENDING:
            task.status = "PENDING"
            task.preceding_tasks = task.pending_polls - task.polls + 1
            return
        task.preceding_tasks = 0
        now = self._emu.now_ms()
        if not task.started_at:
            task.started_at = max(now, task.created_at)
        if stage == RUNNING:
            task.status = "IN_PROGRESS"
            task.progress = progress
            return
        task.finished_at = max(now, task.started_at)
        if task.failure is not None:
            task.status = "FAILED"
            task.task_error = dict(task.failure)
            task.consumed_credits = 0
            self.balance += task.cost
            return
        task.status = "SUCCEEDED"
        task.progress = 100
        task.expires_at = task.finished_at + int(self.asset_ttl * 1000)
        self._produce(task)

    def _put(self, task: MeshyTask, filename: str, kinds: Sequence[str] = (), data: bytes | None = None) -> str:
        path = next((self.assets[k] for k in kinds if k in self.assets), None)
        self._emu.files.put(task.id, filename, path=path, data=data)
        return filename

    def _produce(self, task: MeshyTask) -> None:
        """Register the result files of a task that just succeeded."""
        req = task.request
        if task.kind == "rig":
            def basic(name: str, kind: str) -> dict[str, str]:
                keys = (kind, "rigged")
                stem = f"Animation_{name.capitalize()}_withSkin"
                return {f"{name}_glb_url": self._put(task, f"{stem}.glb", keys),
                        f"{name}_fbx_url": self._put(task, f"{stem}.fbx", keys),
                        f"{name}_armature_glb_url": self._put(task, f"{stem}_armature.glb", keys)}

            task.outputs = {"result": {
                "rigged_character_fbx_url": self._put(task, "Character_output.fbx", ("rigged_fbx", "rigged")),
                "rigged_character_glb_url": self._put(task, "Character_output.glb", ("rigged",)),
                "basic_animations": {**basic("walking", "walking"), **basic("running", "running")},
            }}
            return
        if task.kind == "animate":
            keys = (f"animation:{req['action_id']}", "animation")
            stem = f"Animation_{task.extra['action_name']}_withSkin"
            result = {"animation_glb_url": self._put(task, f"{stem}.glb", keys),
                      "animation_fbx_url": self._put(task, f"{stem}.fbx", keys)}
            post = req.get("post_process") or {}
            operation = post.get("operation_type")
            if operation == "change_fps":
                fps = post.get("fps") or 30
                result["processed_animation_fps_fbx_url"] = self._put(task, f"processed_{fps}fps.fbx", keys)
            elif operation == "fbx2usdz":
                result["processed_usdz_url"] = self._put(task, "processed.usdz", keys)
            elif operation == "extract_armature":
                result["processed_armature_fbx_url"] = self._put(task, "processed_armature.fbx", keys)
            task.outputs = {"result": result}
            return
        default = ("glb",) if task.kind == "remesh" else DEFAULT_MODEL_FORMATS
        formats = req.get("target_formats") or default
        model_urls = {fmt: self._put(task, f"model.{fmt}", (f"model:{fmt}", "model")) for fmt in formats}
        image_kind = task.kind in ("image-to-3d", "multi-image-to-3d")
        if image_kind and req.get("save_pre_remeshed_model"):
            model_urls["pre_remeshed_glb"] = self._put(task, "pre_remeshed_model.glb", ("model",))
        outputs: dict[str, Any] = {"model_urls": model_urls,
                                   "thumbnail_url": self._put(task, "preview.png", data=THUMBNAIL_PNG)}
        if req.get("alpha_thumbnail"):
            outputs["alpha_thumbnail_url"] = self._put(task, "preview_alpha.png", data=THUMBNAIL_PNG)
        if image_kind and req.get("multi_view_thumbnails"):
            views = {side: self._put(task, f"preview_{side}.png", data=THUMBNAIL_PNG)
                     for side in ("front", "right", "back", "left")}
            outputs["thumbnail_urls"] = views
            outputs["thumbnail_url"] = views["front"]
        textured = task.kind == "text-to-3d-refine" or (image_kind and req.get("should_texture") is not False)
        if textured:
            maps = {"base_color": self._put(task, "texture_0.png", data=THUMBNAIL_PNG)}
            if req.get("enable_pbr"):
                names = ["metallic", "normal", "roughness"]
                if req.get("ai_model", "latest") != "meshy-5":
                    names.append("emission")
                for name in names:
                    maps[name] = self._put(task, f"texture_0_{name}.png", data=THUMBNAIL_PNG)
            outputs["texture_urls"] = [maps]
        elif task.kind != "remesh":
            outputs["texture_urls"] = []
        task.outputs = outputs

    # -- rendering ---------------------------------------------------------------------------------

    def _sign(self, task_id: str, tree: Any, ttl: float | None = None) -> Any:
        ttl = self.asset_ttl if ttl is None else ttl
        if isinstance(tree, str):
            return self._emu.files.url(task_id, tree, ttl)
        if isinstance(tree, dict):
            return {k: self._sign(task_id, v, ttl) for k, v in tree.items()}
        if isinstance(tree, list):
            return [self._sign(task_id, v, ttl) for v in tree]
        return tree

    def _render(self, task: MeshyTask) -> dict[str, Any]:
        """The task object as Meshy returns it; asset URLs are signed afresh on every call."""
        done = task.status == "SUCCEEDED"
        out = self._sign(task.id, task.outputs, self._link_ttl(self.asset_ttl)) if done else {}
        req = task.request
        times = {"created_at": task.created_at, "started_at": task.started_at, "finished_at": task.finished_at}
        tail = {"status": task.status, "progress": task.progress, "preceding_tasks": task.preceding_tasks,
                "task_error": dict(task.task_error), "consumed_credits": task.consumed_credits}
        if task.kind in ("rig", "animate"):
            return {"id": task.id, "type": task.kind, **times, "expires_at": task.expires_at, **tail,
                    "result": out.get("result")}
        body: dict[str, Any] = {"id": task.id, "type": task.kind, "model_urls": out.get("model_urls", {}),
                                "thumbnail_url": out.get("thumbnail_url", "")}
        for key in ("alpha_thumbnail_url", "thumbnail_urls"):
            if key in out:
                body[key] = out[key]
        texture_image = req.get("texture_image_url") or ""
        if texture_image.startswith("data:"):
            texture_image = ""
        if task.kind == "image-to-3d":
            body.update(texture_prompt=req.get("texture_prompt") or "", texture_image_url=texture_image)
        elif task.kind == "multi-image-to-3d":
            body["texture_prompt"] = req.get("texture_prompt") or ""
        elif task.kind in ("text-to-3d-preview", "text-to-3d-refine"):
            body.update(prompt=task.extra.get("prompt", req.get("prompt", "")), negative_prompt="",
                        art_style=task.extra.get("art_style", req.get("art_style", "realistic")),
                        texture_richness="", texture_prompt=req.get("texture_prompt") or "", video_url="")
        body.update(times)
        if task.kind in ("image-to-3d", "multi-image-to-3d"):
            body["expires_at"] = task.expires_at
        if task.kind != "remesh":
            body["texture_urls"] = out.get("texture_urls", [])
        body.update(tail)
        return body
