"""Claid API emulation, after shared/reference/provider-api.md sections 5 and 6.

``POST /v1/image/edit/upload`` (multipart ``file`` + ``data`` JSON) answers one output with a
``tmp_url``; ``POST /v1/scene/create`` (JSON, synchronous) validates the body like Claid's OpenAPI
schema (``additionalProperties: false`` everywhere: unknown keys are a 422 ``validation`` error, code
9000) and answers ``number_of_images`` outputs, PNG images the emulator draws itself, sized after the
aspect ratio. Errors use Claid's envelope ``{error_code, error_type, error_message, error_details}``.
Every call spends one of ``credits`` per output image (402 ``billing`` when short).
"""

from __future__ import annotations

import json
import re
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .server import Request, Response, bearer, json_response, sniff, tiny_png
from .tasks import ProviderApp

if TYPE_CHECKING:
    from .server import Emulator

UPLOAD = "/v1/image/edit/upload"
SCENE = "/v1/scene/create"
# The enums of seed 001's "Background Generation contract".
ASPECT_RATIOS = ("4:7", "7:9", "4:5", "1:1", "9:7", "19:13", "7:4", "16:9", "12:5")
FORMATS = ("png", "jpeg", "webp", "avif")
MODELS = ("v1", "v2")
PREFERENCES = ("fast", "optimal", "best")
# A tiny file with JPEG markers (SOI, APP0, EOI): enough for a client's format check.
TINY_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
_COLOURS = ((214, 96, 77, 255), (82, 150, 214, 255), (120, 190, 90, 255), (230, 190, 70, 255))


class ClaidError(Exception):
    def __init__(self, status: int, code: str, kind: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.kind, self.message = status, code, kind, message
        self.details = details if details is not None else {}


class _Invalid(Exception):
    """One schema violation: where, and what is wrong."""

    def __init__(self, loc: list[str | int], msg: str, kind: str = "value_error") -> None:
        super().__init__(msg)
        self.loc, self.msg, self.kind = loc, msg, kind


@dataclass
class ClaidUpload:
    id: str
    filename: str | None
    content_type: str | None
    data: dict[str, Any]
    size: int
    tmp_url: str


@dataclass
class ClaidScene:
    request: dict[str, Any]
    urls: list[str] = field(default_factory=list)


def _png_size(data: bytes) -> tuple[int, int] | None:
    if sniff(data) == "png" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return None


def _size_for(aspect: str, long_side: int = 96) -> tuple[int, int]:
    a, b = (int(x) for x in aspect.split(":"))
    scale = long_side / max(a, b)
    return max(1, round(a * scale)), max(1, round(b * scale))


class ClaidState(ProviderApp):
    """Claid configuration and history; also the request handler for ``/v1/...``.
    ``expired_links = n``: the next n scene images get a ``tmp_url`` that has already expired."""

    def __init__(self, emulator: Emulator, *, api_key: str | None = None) -> None:
        super().__init__(emulator, api_key)
        self.credits: int = 100
        self.tmp_ttl: float = 24 * 3600.0
        self.uploads: list[ClaidUpload] = []
        self.scenes: list[ClaidScene] = []

    # -- App protocol ------------------------------------------------------------------------------

    def owns(self, path: str) -> bool:
        return path.startswith("/v1/")

    def base_headers(self) -> dict[str, str]:
        return {"x-request-id": uuid.uuid4().hex}

    def handle(self, request: Request) -> Response:  # Claid's own error envelope, and schema errors
        try:
            return self._route(request)
        except ClaidError as exc:
            return json_response(exc.status, {"error_code": exc.code, "error_type": exc.kind,
                                              "error_message": exc.message, "error_details": exc.details})
        except _Invalid as exc:
            return json_response(422, {"error_code": "9000", "error_type": "validation",
                                       "error_message": "Validation error",
                                       "error_details": [{"loc": ["body", *exc.loc], "msg": exc.msg,
                                                          "type": exc.kind}]})

    def _route(self, request: Request) -> Response:
        if self.api_key is not None and bearer(request) != self.api_key:
            raise ClaidError(401, "111", "auth", "Authorization is required.")
        if request.method != "POST":
            raise ClaidError(405, "1", "general", "Method Not Allowed")
        if request.path.rstrip("/") == UPLOAD:
            return self._upload(request)
        if request.path.rstrip("/") == SCENE:
            return self._scene(request)
        raise ClaidError(404, "404", "general", "Not Found")

    def _spend(self, count: int) -> None:
        if self.credits < count:
            raise ClaidError(402, "6001", "billing", "No API calls left.")
        self.credits -= count

    # -- upload ------------------------------------------------------------------------------------

    def _upload(self, request: Request) -> Response:
        try:
            parts = {p.name: p for p in request.form()}
        except ValueError as exc:
            raise ClaidError(400, "4001", "image", f"Invalid multipart body: {exc}") from None
        file, data_part = parts.get("file"), parts.get("data")
        if file is None:
            raise _Invalid(["file"], "Field required", "missing")
        if data_part is None:
            raise _Invalid(["data"], "Field required", "missing")
        try:
            data = json.loads(data_part.text)
        except ValueError:
            raise ClaidError(400, "4002", "validation", "data is not valid JSON") from None
        if not isinstance(data, dict):
            raise _Invalid(["data"], "Input should be an object")
        _no_extra(data, {"operations", "output"}, ["data"])
        if "input" in data:
            raise _Invalid(["data", "input"], "input is not allowed with an upload")
        if not isinstance(data.get("operations"), dict):
            raise _Invalid(["data", "operations"], "Field required", "missing")
        kind = sniff(file.value)
        if kind not in ("png", "jpeg"):
            raise ClaidError(400, "4003", "image", "The uploaded file is not an image Claid can read.")
        out_format = _format_name(data.get("output", {}).get("format", "jpeg") if isinstance(data.get("output"), dict)
                                  else "jpeg")
        width, height = _png_size(file.value) or (64, 64)
        width, height = min(width, 256), min(height, 256)
        background = data["operations"].get("background")
        removed = isinstance(background, dict) and bool(background.get("remove"))
        content = tiny_png(width, height, (200, 120, 60, 255 if not removed else 200)) if out_format == "png" \
            else TINY_JPEG
        ext = "png" if out_format == "png" else "jpeg"
        with self.lock:
            self._spend(1)
            upload_id = uuid.uuid4().hex
            name = f"{file.filename or 'object'}.{ext}"
            self._emu.files.put(f"claid-{upload_id}", name, data=content)
            url = self._emu.files.url(f"claid-{upload_id}", name, self.tmp_ttl)
            self.uploads.append(ClaidUpload(upload_id, file.filename, file.content_type, data, len(file.value), url))
        info = _image_info(ext, width, height)
        return json_response(200, {"data": {"input": _image_info(kind, width, height),
                                            "output": {**info, "tmp_url": url}, "profiling": {}}})

    # -- scene -------------------------------------------------------------------------------------

    def _scene(self, request: Request) -> Response:
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            raise ClaidError(400, "4002", "validation", "Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _Invalid([], "Input should be an object")
        count, out_format, destination = _check_scene(body)
        image_url = body["object"]["image_url"]
        self._check_object_url(image_url)
        aspect = body["scene"].get("aspect_ratio", "1:1") if "template_url" not in body["scene"] else "1:1"
        width, height = _size_for(aspect)
        with self.lock:
            self._spend(count)
            scene = ClaidScene(request=body)
            outputs = []
            batch = uuid.uuid4().hex
            for index in range(count):
                ext = "png" if out_format == "png" else "jpeg"
                content = tiny_png(width, height, _COLOURS[index % len(_COLOURS)]) if ext == "png" else TINY_JPEG
                name = f"{uuid.uuid4().hex}.{ext}"
                self._emu.files.put(f"claid-{batch}", name, data=content)
                item = _image_info(ext, width, height)
                if destination is None:
                    item["tmp_url"] = self._emu.files.url(f"claid-{batch}", name, self._link_ttl(self.tmp_ttl))
                    scene.urls.append(item["tmp_url"])
                else:
                    item["object_uri"] = destination.rstrip("/") + "/" + name
                outputs.append(item)
            self.scenes.append(scene)
        return json_response(200, {"data": {"input": _image_info("png", 256, 256), "output": outputs,
                                            "profiling": {}}})

    def _check_object_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme == "storage":
            return
        ours, content = self._emu.files.fetch_local(url)
        if ours and content is None:
            raise ClaidError(400, "4004", "image", "Object image can't be retrieved from storage.")
        host = (parts.hostname or "").lower()
        if not ours and (host in ("localhost", "127.0.0.1") or host.startswith(("10.", "192.168."))):
            raise ClaidError(400, "4004", "image", "Object image can't be retrieved from storage.")


def _image_info(ext: str, width: int, height: int) -> dict[str, Any]:
    mime = "image/png" if ext == "png" else "image/jpeg"
    return {"ext": ext, "mps": round(width * height / 1e6, 6), "mime": mime, "format": ext.upper(),
            "width": width, "height": height}


def _format_name(value: Any) -> str:
    return str(value.get("type")) if isinstance(value, dict) else str(value)


# -- schema checks (Claid's OpenAPI: SceneCreateAPIIn) ------------------------------------------------


def _no_extra(obj: Mapping[str, Any], allowed: set[str], loc: list[str | int]) -> None:
    for key in obj:
        if key not in allowed:
            raise _Invalid([*loc, key], "Extra inputs are not permitted", "extra_forbidden")


def _number(obj: Mapping[str, Any], key: str, low: float, high: float, loc: list[str | int],
            integer: bool = False) -> None:
    if key not in obj:
        return
    value = obj[key]
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type:
        raise _Invalid([*loc, key], f"Input should be a valid {'integer' if integer else 'number'}")
    if not low <= value <= high:
        raise _Invalid([*loc, key], f"Input should be between {low:g} and {high:g}")


def _enum(obj: Mapping[str, Any], key: str, allowed: tuple[str, ...], loc: list[str | int]) -> None:
    if key in obj and obj[key] not in allowed:
        raise _Invalid([*loc, key], f"Input should be {', '.join(repr(a) for a in allowed)}", "enum")


def _text(obj: Mapping[str, Any], key: str, low: int, high: int, loc: list[str | int]) -> None:
    if key not in obj:
        return
    value = obj[key]
    if not isinstance(value, str):
        raise _Invalid([*loc, key], "Input should be a valid string")
    if not low <= len(value) <= high:
        raise _Invalid([*loc, key], f"String should have {low} to {high} characters")


def _uri(obj: Mapping[str, Any], key: str, loc: list[str | int], required: bool = True) -> None:
    if key not in obj:
        if required:
            raise _Invalid([*loc, key], "Field required", "missing")
        return
    value = obj[key]
    if not isinstance(value, str) or not 1 <= len(value) <= 4096 or not re.match(r"[a-z][a-z0-9+.-]*://", value):
        raise _Invalid([*loc, key], "Input should be a valid URL")


def _prompt(scene: Mapping[str, Any], loc: list[str | int]) -> None:
    if "prompt" not in scene:
        return
    value = scene["prompt"]
    if isinstance(value, str):
        _text(scene, "prompt", 3, 2048, loc)
        return
    if not isinstance(value, dict):
        raise _Invalid([*loc, "prompt"], "Input should be a string or an object")
    here = [*loc, "prompt"]
    _no_extra(value, {"text", "generate", "guidelines"}, here)
    generate = value.get("generate", False)
    if not isinstance(generate, bool):
        raise _Invalid([*here, "generate"], "Input should be a valid boolean")
    if generate and "text" in value:
        raise _Invalid([*here, "text"], "text is not allowed when generate is true")
    if not generate and "text" not in value:
        raise _Invalid([*here, "text"], "Field required", "missing")
    if "guidelines" in value and not generate:
        raise _Invalid([*here, "guidelines"], "guidelines need generate to be true")
    _text(value, "text", 3, 2048, here)
    _text(value, "guidelines", 3, 1000, here)


def _check_scene(body: Mapping[str, Any]) -> tuple[int, str, str | None]:
    """Validate a scene/create body; (number of images, output format, destination)."""
    _no_extra(body, {"object", "scene", "output"}, [])
    for key in ("object", "scene"):
        if key not in body:
            raise _Invalid([key], "Field required", "missing")
        if not isinstance(body[key], dict):
            raise _Invalid([key], "Input should be an object")
    count, out_format, destination = 4, "png", None
    output = body.get("output")
    if isinstance(output, str):
        _uri(body, "output", [])
        destination = output
    elif isinstance(output, dict):
        _no_extra(output, {"number_of_images", "destination", "format"}, ["output"])
        _number(output, "number_of_images", 1, 4, ["output"], integer=True)
        count = int(output.get("number_of_images", 4))
        _uri(output, "destination", ["output"], required=False)
        destination = output.get("destination")
        fmt = output.get("format", "png")
        if isinstance(fmt, dict):
            if fmt.get("type") not in FORMATS:
                raise _Invalid(["output", "format", "type"], f"Input should be one of {', '.join(FORMATS)}", "enum")
            out_format = str(fmt["type"])
        elif fmt in FORMATS:
            out_format = str(fmt)
        else:
            raise _Invalid(["output", "format"], f"Input should be one of {', '.join(FORMATS)}", "enum")
    elif output is not None:
        raise _Invalid(["output"], "Input should be an object or a URL")

    obj = body["object"]
    placement = obj.get("placement_type", "absolute")
    allowed_object = {"absolute": {"image_url", "placement_type", "rotation_degree", "scale", "position"},
                      "original": {"image_url", "placement_type"},
                      "padding": {"image_url", "placement_type", "padding"}}
    if placement not in allowed_object:
        raise _Invalid(["object", "placement_type"], "Input should be 'absolute', 'original' or 'padding'", "enum")
    _no_extra(obj, allowed_object[placement], ["object"])
    _uri(obj, "image_url", ["object"])
    _number(obj, "rotation_degree", 0, 360, ["object"])
    _number(obj, "scale", 0.01, 1, ["object"])
    if "position" in obj:
        position = obj["position"]
        if not isinstance(position, dict):
            raise _Invalid(["object", "position"], "Input should be an object")
        _no_extra(position, {"x", "y"}, ["object", "position"])
        _number(position, "x", 0, 1, ["object", "position"])
        _number(position, "y", 0, 1, ["object", "position"])
    if placement == "padding" and not isinstance(obj.get("padding"), str):
        raise _Invalid(["object", "padding"], "Field required", "missing")

    scene = body["scene"]
    loc: list[str | int] = ["scene"]
    _enum(scene, "model", MODELS, loc)
    if "effect" in scene:
        _no_extra(scene, {"model", "effect", "color", "view", "aspect_ratio"}, loc)
        _enum(scene, "effect", ("shadows",), loc)
        _enum(scene, "view", ("auto", "top", "front"), loc)
    elif "template_url" in scene:
        _no_extra(scene, {"model", "template_mode", "template_url", "color", "view", "prompt", "negative_prompt",
                          "steps"}, loc)
        _uri(scene, "template_url", loc)
        _enum(scene, "template_mode", ("transform", "lock", "adjust"), loc)
        if "view" not in scene:
            raise _Invalid([*loc, "view"], "Field required", "missing")
        _enum(scene, "view", ("top", "front"), loc)
    else:
        _no_extra(scene, {"model", "prompt", "negative_prompt", "steps", "color", "aspect_ratio", "preference"}, loc)
        if "prompt" not in scene:
            raise _Invalid([*loc, "prompt"], "Field required", "missing")
        _enum(scene, "preference", PREFERENCES, loc)
    _prompt(scene, loc)
    _text(scene, "negative_prompt", 3, 2048, loc)
    _number(scene, "steps", 1, 49, loc, integer=True)
    _enum(scene, "aspect_ratio", ASPECT_RATIOS, loc)
    return count, out_format, destination
