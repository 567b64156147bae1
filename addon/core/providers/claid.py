"""Claid (https://docs.claid.ai): product scenes around the picture, as images.

Wire format (shared/reference/provider-api.md section 5):
1. POST /v1/image/edit/upload, multipart: `file` (the picture) and `data` (a JSON image-edit request
   without `input`; here background removal to PNG). Answers {"data": {"output": {"tmp_url"}}}: the
   cut-out object, kept by Claid for one day.
2. POST /v1/scene/create, JSON {object: {image_url: that tmp_url, ...}, scene: {prompt, ...},
   output: {number_of_images, format}}. Synchronous: answers {"data": {"output": [{"tmp_url"}, ...]}}.
   Scene fields are strict (additionalProperties false): a template-free prompt scene has no `view`.

Errors come as {"error_code", "error_type", "error_message", "error_details"} (nested under `detail`
on 429) and are turned into messages naming Claid's reason and code.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any, ClassVar

import requests

from ..errors import AuthError, InputError, ProviderError, QuotaError, RateLimited, TransientError
from ..formats import sniff_bytes
from ..models import Asset, GenerationRequest, InputKind, Job, JobState, RemoteTask
from .base import OptionSpec, Output, Provider, TaskSnapshot
from .context import ProviderContext, task_of

if TYPE_CHECKING:
    from ..http import ApiClient

UPLOAD_PATH = "/v1/image/edit/upload"
SCENE_PATH = "/v1/scene/create"
UPLOAD_KEY = "upload"
SCENE_KEY = "scene"
TMP_URL_LIFETIME = 24 * 3600  # Claid keeps outputs without a destination for one day
# scene.aspect_ratio: "4:7" | "7:9" | "4:5" | "1:1" | "9:7" | "19:13" | "7:4" | "16:9" | "12:5" (seed 001).
ASPECT_RATIOS = ("1:1", "4:5", "7:9", "4:7", "9:7", "19:13", "7:4", "16:9", "12:5")
MAX_IMAGES = 4
PROMPT_RANGE = (3, 2048)


class _ErrorBody:
    """A requests response hook that keeps the JSON body of an error answer (ApiClient raises before
    its caller could read it)."""

    def __init__(self) -> None:
        self.body: Any = None
        self.headers: dict[str, str] = {}

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code >= 400:
            self.headers = dict(response.headers)
            try:
                self.body = response.json()
            except ValueError:
                self.body = None


def _details(value: Any) -> str:
    if not value:
        return ""
    if isinstance(value, list):
        parts = []
        for item in value:
            if isinstance(item, dict) and ("msg" in item or "message" in item):
                where = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                parts.append(f"{where}: {item.get('msg') or item.get('message')}" if where else
                             str(item.get("msg") or item.get("message")))
            else:
                parts.append(str(item))
        text = "; ".join(parts)
    elif isinstance(value, dict):
        text = "; ".join(f"{k}: {v if not isinstance(v, list) else ', '.join(map(str, v))}" for k, v in value.items())
    else:
        text = str(value)
    return text if len(text) <= 300 else text[:300] + "..."


def claid_error(exc: ProviderError, body: Any, headers: dict[str, str] | None = None) -> ProviderError:
    """A clear error from Claid's error envelope; keeps the type (auth, quota, rate limit, ...)."""
    if isinstance(exc, TransientError):
        return exc
    envelope = body.get("detail") if isinstance(body, dict) and isinstance(body.get("detail"), dict) else body
    if not isinstance(envelope, dict):
        envelope = {}
    message = str(envelope.get("error_message") or envelope.get("message") or "").strip() or str(exc)
    kind, code = envelope.get("error_type"), envelope.get("error_code")
    details = _details(envelope.get("error_details"))
    tag = ", ".join(str(x) for x in (kind, code) if x)
    text = f"{message}" + (f" ({details})" if details else "") + (f" [Claid {tag}]" if tag else "")
    code_text = str(code) if code is not None else None
    if isinstance(exc, RateLimited):
        retry = exc.retry_after
        reset = (headers or {}).get("RateLimit-Reset") or (headers or {}).get("ratelimit-reset")
        if retry is None and reset and reset.replace(".", "", 1).isdigit():
            retry = float(reset)
        return RateLimited(f"Claid rate limit: {text}", retry_after=retry, code=code_text or "Claid rate limit")
    if isinstance(exc, AuthError):
        if exc.status == 403:
            return AuthError(f"Claid: this API key may not create scenes (needs the image_generation scope): {text}",
                             status=403, code=code_text)
        return AuthError(f"Claid rejected the API key: {text}. Check it in Preferences > Add-ons > Marionette.",
                         status=exc.status, code=code_text)
    if isinstance(exc, QuotaError):
        return QuotaError(f"Claid has no API calls left on this account: {text}. Add credits at claid.ai.",
                          status=exc.status, code=code_text)
    return ProviderError(f"Claid refused the request (HTTP {exc.status}): {text}", status=exc.status, code=code_text)


def call(client: ApiClient, method: str, path: str, **kwargs: Any) -> Any:
    """An API call whose errors carry Claid's own reason; returns the JSON body."""
    capture = _ErrorBody()
    try:
        response = client.request(method, path, hooks={"response": [capture]}, **kwargs)
    except ProviderError as exc:
        raise claid_error(exc, capture.body, capture.headers) from None
    try:
        return response.json()
    except ValueError:
        raise ProviderError(f"Claid answered {path} with something that is not JSON") from None


def scene_urls(body: Any) -> dict[str, str]:
    """The pictures' links ("1", "2", ...) from a scene/create answer: data.output[].tmp_url (seed 001)."""
    data = _data(body, "scene request")
    outputs = data.get("output")
    urls: dict[str, str] = {}
    if isinstance(outputs, list):
        for item in outputs:
            link = item.get("tmp_url") if isinstance(item, dict) else None
            if isinstance(link, str) and link:
                urls[str(len(urls) + 1)] = link
    if not urls:
        raise ProviderError(f"Claid created the scene but returned no image links: {str(data)[:200]}")
    return urls


def _data(body: Any, what: str) -> dict[str, Any]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise ProviderError(f"Claid answered the {what} without data: {str(body)[:200]}")
    return data


class ClaidProvider(Provider):
    id: ClassVar[str] = "claid"
    label: ClassVar[str] = "Claid"
    default_base_url: ClassVar[str] = "https://api.claid.ai"
    inputs: ClassVar[frozenset[InputKind]] = frozenset({"image"})
    outputs: ClassVar[frozenset[Output]] = frozenset({"images"})
    # No documented limit: larger pictures only make the upload slower and risk the body size limits.
    max_image_side: ClassVar[int | None] = 4096
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("prompt", "Scene", "string", "",
                   "The scene around the object, e.g. 'on a marble counter, soft daylight'; empty: Claid writes one"),
        OptionSpec("negative_prompt", "Avoid", "string", "", "What the scene must not show, e.g. 'text, watermark'"),
        OptionSpec("aspect_ratio", "Aspect Ratio", "enum", "1:1", "Shape of the images",
                   items=tuple((r, r, "") for r in ASPECT_RATIOS)),
        OptionSpec("number_of_images", "Images", "int", 4, "How many variants to create", min=1, max=MAX_IMAGES),
        OptionSpec("preference", "Preference", "enum", "optimal", "Speed against quality",
                   items=(("fast", "Fast", ""), ("optimal", "Optimal", ""), ("best", "Best", ""))),
        OptionSpec("model", "Model", "enum", "v1", "Claid's scene model",
                   items=(("v1", "v1", "Claid's default"), ("v2", "v2", "Newer model"))),
        OptionSpec("scale", "Object Size", "float", 0.6, "Size of the object in the scene (1: as large as fits)",
                   min=0.01, max=1.0),
        OptionSpec("remove_background", "Remove Background", "bool", True,
                   "Cut the object out of its background first (Claid recommends a transparent object)"),
        OptionSpec("output_format", "Format", "enum", "png", "Image format",
                   items=(("png", "PNG", ""), ("jpeg", "JPEG", ""))),
    )

    @staticmethod
    def auth_header(api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        low, high = PROMPT_RANGE
        for name in ("prompt", "negative_prompt"):
            text = str(request.options.get(name) or "").strip()
            if text and not low <= len(text) <= high:
                raise InputError(f"Claid's {name.replace('_', ' ')} must be {low} to {high} characters long")

    # -- wire format -------------------------------------------------------------------------------

    def upload_data(self, request: GenerationRequest) -> dict[str, Any]:
        operations: dict[str, Any] = {}
        if request.options.get("remove_background", True):
            operations["background"] = {"remove": True}
        return {"operations": operations, "output": {"format": "png"}}

    def scene_body(self, request: GenerationRequest, object_url: str) -> dict[str, Any]:
        opts = request.options
        prompt = str(opts.get("prompt") or "").strip()
        scale = float(opts.get("scale", 1.0))
        scene: dict[str, Any] = {"model": opts["model"], "prompt": prompt if prompt else {"generate": True},
                                 "aspect_ratio": opts["aspect_ratio"], "preference": opts["preference"]}
        negative = str(opts.get("negative_prompt") or "").strip()
        if negative:
            scene["negative_prompt"] = negative
        return {
            "object": {"image_url": object_url, "placement_type": "absolute", "scale": scale,
                       "position": {"x": 0.5, "y": 0.5}},
            "scene": scene,
            "output": {"number_of_images": int(opts["number_of_images"]), "format": opts["output_format"]},
        }

    # -- pipeline ----------------------------------------------------------------------------------

    def run(self, ctx: ProviderContext) -> None:
        request: GenerationRequest = ctx.request
        image = self.input_files(ctx)[0]
        ctx.set_stage("Uploading the picture", 0.05)
        object_url = ctx.submit_once(UPLOAD_KEY, "Upload", lambda: self._upload(ctx, image))
        count = int(request.options["number_of_images"])
        ctx.set_stage(f"Creating {count} scene image{'s' if count > 1 else ''}", 0.2)
        self._check_upload_age(ctx)
        ctx.submit_once(SCENE_KEY, "Scene", lambda: self._create_scene(ctx, object_url))
        ctx.poll([UPLOAD_KEY, SCENE_KEY], lambda task: self._stored(task))
        urls = task_of(ctx, SCENE_KEY).result_urls
        keys = sorted(urls, key=lambda k: int(k) if k.isdigit() else 0)
        if not keys:
            raise ProviderError("Claid created the scene but returned no images")
        assets = [Asset(key=f"image:{key}", role="image", name=f"Scene {key}", url=urls[key], source_task=SCENE_KEY)
                  for key in keys]
        ctx.download_assets(assets, progress_from=0.6)

    def _upload(self, ctx: ProviderContext, image: bytes) -> str:
        kind = sniff_bytes(image[:32]) or "png"
        data = json.dumps(self.upload_data(ctx.request))
        files = {"file": ("marionette_object", image, f"image/{kind}"),  # the name without extension
                 "data": (None, data, "application/json")}
        body = _data(call(ctx.client, "POST", UPLOAD_PATH, files=files), "upload")
        output = body.get("output")
        if isinstance(output, list):
            output = output[0] if output else None
        url = output.get("tmp_url") if isinstance(output, dict) else None
        if not isinstance(url, str) or not url:
            raise ProviderError(f"Claid took the picture but returned no link to it: {str(body)[:200]}")
        return url

    def _check_upload_age(self, ctx: ProviderContext) -> None:
        job = ctx.job()
        scene, upload = job.task(SCENE_KEY), job.task(UPLOAD_KEY)
        if scene is None or not scene.remote_id:
            submitted = upload.submitted_at if upload is not None else None
            if submitted and time.time() - submitted > TMP_URL_LIFETIME:
                raise ProviderError("The picture uploaded to Claid expired (Claid keeps it one day) before the "
                                    "scene was created: generate again.")

    def _create_scene(self, ctx: ProviderContext, object_url: str) -> str:
        body = self.scene_body(ctx.request, object_url)
        urls = scene_urls(call(ctx.client, "POST", SCENE_PATH, json=body))

        # The call is synchronous: its result is kept with the task, so a resumed job never pays again.
        def remember(job: Job) -> None:
            task = job.task(SCENE_KEY)
            if task is not None:
                task.result_urls = dict(urls)

        ctx.edit(remember)
        return "scene-" + hashlib.sha256("\n".join(urls.values()).encode()).hexdigest()[:16]

    def _stored(self, task: RemoteTask) -> TaskSnapshot:
        """Both steps finished when they answered; their results are already in the journal."""
        return TaskSnapshot(state=JobState.SUCCEEDED, progress=100, result_urls=dict(task.result_urls))
