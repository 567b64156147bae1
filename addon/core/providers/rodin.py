"""Hyper3D Rodin (https://developer.hyper3d.ai): one to five images, or a prompt, to a textured model.

Wire format (shared/reference/provider-api.md section 2):
- POST /v2/rodin, multipart/form-data: `images` parts (the first one drives the material) or a
  `prompt`, plus text parts for the options. Answers {"uuid": task, "jobs": {"uuids": [...],
  "subscription_key": ...}}.
- POST /v2/status {"subscription_key"}: the state of every job of the task; the task is done when
  all are Done and failed as soon as one Failed.
- POST /v2/download {"task_uuid"}: the result files as [{"url", "name"}]; links last about ten
  minutes, so the model is downloaded at once and a stale link is replaced by a fresh list.
- GET /v2/check_balance: {"balance": credits}.

Rodin answers HTTP 201 even when it refuses a request: the reason is the body's `error` field
(INSUFFICIENT_FUND, NO_SUCH_TASK, ...), mapped here to the typed errors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from ..capabilities import Capability
from ..errors import AuthError, InputError, ProviderError, QuotaError
from ..formats import sniff_bytes
from ..http import SlotWait
from ..models import GenerationRequest, InputKind, Job, JobState, RemoteTask
from .base import OptionSpec, Output, TaskSnapshot, balance_of
from .context import ProviderContext, task_of
from .polled import SingleTaskProvider

if TYPE_CHECKING:
    from ..http import ApiClient

log = logging.getLogger(__name__)

GENERATE_PATH = "/v2/rodin"
STATUS_PATH = "/v2/status"
DOWNLOAD_PATH = "/v2/download"
BALANCE_PATH = "/v2/check_balance"
MAX_IMAGES = 5
TASK_KEY = "model"
# Recovering a task made elsewhere: the first of these formats its download list offers.
RECOVERED_FORMATS = ("glb", "fbx", "obj", "usdz", "stl")
# Kept with the task in the journal: status is asked by subscription key, not by task uuid.
SUBSCRIPTION_FIELD = "subscription_key"

TIERS = ("Gen-2", "Gen-2.5-Extreme-Low", "Gen-2.5-Low", "Gen-2.5-Medium", "Gen-2.5-High", "Gen-2.5-Extreme-High",
         "Regular", "Detail", "Smooth", "Sketch")
BASE_PRICE = 0.5
EXTREME_HIGH_PRICE = 1.0
HIGH_PACK_PRICE = 1.0

_QUOTA = {"INSUFFICIENT_FUND", "INSUFFICIENT_FUNDS", "API_INSUFFICIENT_FUND", "API_INSUFFICIENT_FUNDS"}
_AUTH = {"NO_ACTIVE_SUBSCRIPTION", "SUBSCRIPTION_PLAN_TOO_LOW", "API_NO_ACTIVE_SUBSCRIPTION",
         "API_SUBSCRIPTION_PLAN_TOO_LOW", "PERMISSION_DENIED", "USER_NOT_FOUND", "GROUP_NOT_FOUND",
         "INVALID_API_KEY", "UNAUTHORIZED"}
_BUSY = {"API_PARALLELISM_LIMIT_REACHED"}
_HINTS = {
    "INSUFFICIENT_FUND": "Not enough Rodin credits: top up at hyper3d.ai.",
    "NO_ACTIVE_SUBSCRIPTION": "The Rodin API needs an active Business subscription.",
    "SUBSCRIPTION_PLAN_TOO_LOW": "The Rodin API needs a Business subscription.",
    "PERMISSION_DENIED": "This Rodin API key may not do that.",
    "NO_SUCH_TASK": "Rodin does not know this task (results are kept 7 days).",
    "API_PARALLELISM_LIMIT_REACHED": "Too many Rodin tasks at once; waiting for one to finish.",
    "API_OBJECT_NOT_FOUND_ON_IMAGE": "Rodin found no object in the image.",
    "IMAGE_CONTENT_VIOLATION": "Rodin refused the image's content.",
}
_OK = {"", "OK", "SUCCESS", "NONE", "NULL"}

_JOB_STATES = {"waiting": JobState.PENDING, "generating": JobState.RUNNING, "done": JobState.SUCCEEDED,
               "failed": JobState.FAILED, "canceled": JobState.CANCELED, "cancelled": JobState.CANCELED}


def check_body(data: Any, what: str) -> dict[str, Any]:
    """The body of a Rodin answer, or the typed error its `error` field names (HTTP is 201 either way)."""
    if not isinstance(data, dict):
        raise ProviderError(f"Rodin answered the {what} with something unexpected: {str(data)[:200]}")
    code = data.get("error")
    if code is None or (isinstance(code, str) and code.strip().upper() in _OK):
        return data
    code = str(code).strip()
    upper = code.upper()
    detail = data.get("message") or data.get("detail") or ""
    hint = _HINTS.get(upper) or _HINTS.get(upper.removeprefix("API_"), "")
    text = f"Rodin refused the {what}: {code}"
    if detail and str(detail) != code:
        text += f" ({detail})"
    if hint:
        text += f". {hint}"
    if upper in _QUOTA:
        raise QuotaError(text, code=code)
    if upper in _AUTH:
        raise AuthError(text, code=code)
    if upper in _BUSY:  # the account's parallel tasks are all busy: wait locally for a free slot
        raise SlotWait("Waiting for a free slot: Rodin runs a limited number of tasks at once for this account",
                       code=code)
    raise ProviderError(text, code=code)


def subscription_key(jobs: Any) -> str | None:
    """The subscription key from a submit answer's ``jobs``. Seed 004's example shows an object
    ({"uuids": [...], "subscription_key": ...}) while its field list says "An array of job objects", each
    with uuids and subscription_key: both are read (the first job that has a key)."""
    candidates = jobs if isinstance(jobs, list) else [jobs]
    for item in candidates:
        if isinstance(item, dict):
            key = item.get("subscription_key")
            if isinstance(key, str) and key:
                return key
    return None


def aggregate(jobs: Any) -> TaskSnapshot:
    """One snapshot for a task from the states of its jobs (provider-api.md 2.3)."""
    if not isinstance(jobs, list) or not jobs:
        return TaskSnapshot(state=JobState.PENDING)
    states: list[JobState] = []
    queue: list[int] = []
    for job in jobs:
        status = str(job.get("status", "")) if isinstance(job, dict) else ""
        state = _JOB_STATES.get(status.strip().lower())
        if state is None:
            raise ProviderError(f"Rodin reported an unknown job status {status!r}")
        states.append(state)
        length = job.get("queue_length") if isinstance(job, dict) else None
        if state is JobState.PENDING and isinstance(length, int) and not isinstance(length, bool):
            queue.append(length)
    done = sum(1 for s in states if s is JobState.SUCCEEDED)
    progress = 100 * done // len(states)
    if JobState.FAILED in states:
        failed = sum(1 for s in states if s is JobState.FAILED)
        return TaskSnapshot(state=JobState.FAILED, progress=progress, error_code="Failed",
                            error=f"{failed} of {len(states)} Rodin jobs failed (Rodin asks to contact its support)")
    if JobState.CANCELED in states:
        return TaskSnapshot(state=JobState.CANCELED, progress=progress)
    if done == len(states):
        return TaskSnapshot(state=JobState.SUCCEEDED, progress=100)
    if all(s is JobState.PENDING for s in states):
        return TaskSnapshot(state=JobState.PENDING, progress=0, queue_position=max(queue) if queue else None)
    return TaskSnapshot(state=JobState.RUNNING, progress=max(1, progress))


def pick_model(files: Any, fmt: str) -> tuple[str, str] | None:
    """(name, url) of the model file in the requested format from a download list, never the preview."""
    if not isinstance(files, list):
        return None
    candidates = []
    for item in files:
        if not isinstance(item, dict):
            continue
        name, url = str(item.get("name") or ""), str(item.get("url") or "")
        if not url:
            continue
        stem = (name or url.split("?", 1)[0].rsplit("/", 1)[-1]).lower()
        if stem.endswith(f".{fmt}") and not stem.startswith("preview"):
            candidates.append((name, url))
    if not candidates:
        return None
    # Prefer the PBR base model when Rodin offers several (e.g. material "All").
    candidates.sort(key=lambda c: (0 if "pbr" in c[0].lower() else 1, 0 if "base" in c[0].lower() else 1))
    return candidates[0]


class RodinProvider(SingleTaskProvider):
    id: ClassVar[str] = "rodin"
    label: ClassVar[str] = "Hyper3D Rodin"
    default_base_url: ClassVar[str] = "https://api.hyper3d.com/api"
    inputs: ClassVar[frozenset[InputKind]] = frozenset({"image", "multi_image", "text"})
    outputs: ClassVar[frozenset[Output]] = frozenset({"model"})
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"recover", "balance"})
    task_key: ClassVar[str] = TASK_KEY
    max_images: ClassVar[int] = MAX_IMAGES
    # No documented limit: larger pictures only make the upload slower and risk the body size limits.
    max_image_side: ClassVar[int | None] = 4096
    result_front: ClassVar[str | None] = "-Y"  # glTF's convention
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("tier", "Tier", "enum", "Gen-2", "Rodin model generation (Gen-2.5 Extreme High costs 1 credit)",
                   items=tuple((t, t.replace("-", " "), "") for t in TIERS)),
        OptionSpec("quality", "Quality", "enum", "medium", "Face count of the mesh",
                   items=(("high", "High", ""), ("medium", "Medium", ""), ("low", "Low", ""),
                          ("extra-low", "Extra Low", ""))),
        OptionSpec("geometry_file_format", "File Format", "enum", "glb", "Format of the downloaded model",
                   items=(("glb", "GLB", "glTF binary"), ("fbx", "FBX", "Autodesk FBX"))),
        OptionSpec("material", "Material", "enum", "PBR", "Texture type",
                   items=(("PBR", "PBR", "Physically based maps"), ("Shaded", "Shaded", "Baked lighting"))),
        OptionSpec("mesh_mode", "Mesh", "enum", "auto", "Quads or raw triangles",
                   items=(("auto", "Tier Default", "Raw for Gen-2.5, Quad otherwise"), ("Quad", "Quads", ""),
                          ("Raw", "Triangles", ""))),
        OptionSpec("TAPose", "T/A Pose", "bool", True, "Generate a humanoid in T or A pose (helps rigging later)"),
        OptionSpec("high_pack", "4K Textures", "bool", False, "HighPack add-on: 4K textures (+1 credit)"),
        OptionSpec("seed", "Seed", "int", -1, "Same seed, same result; -1 for a random one", min=-1, max=65535),
        OptionSpec("bbox_condition", "Bounding Box", "ints", "",
                   "Proportions of the model as width (Y), height (Z), length (X); empty for none",
                   min=1, length=3, fill_from="selection_bbox"),
    )

    @staticmethod
    def auth_header(api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def cost(self, request: GenerationRequest) -> float | None:
        opts = request.options
        price = EXTREME_HIGH_PRICE if opts.get("tier") == "Gen-2.5-Extreme-High" else BASE_PRICE
        return price + (HIGH_PACK_PRICE if opts.get("high_pack") else 0.0)

    def balance(self, client: ApiClient) -> float | None:
        return balance_of(check_body(client.request("GET", BALANCE_PATH).json(), "balance request"), self.label)

    # -- pipeline (polled.SingleTaskProvider) ------------------------------------------------------

    def creator(self, ctx: ProviderContext) -> Callable[[], str]:
        images = self.input_files(ctx) if ctx.request.kind != "text" else []
        return lambda: self._submit(ctx, images)

    def look_up(self, ctx: ProviderContext, remote_id: str) -> None:
        """Rodin keeps results 7 days and lists them by task uuid: NO_SUCH_TASK for one it does not know."""
        self._download_list(ctx, remote_id)

    def status(self, ctx: ProviderContext, task: RemoteTask) -> TaskSnapshot:
        key = task.result_urls.get(SUBSCRIPTION_FIELD)
        if not key:
            # No subscription key (should not happen): the download list shows when the model exists.
            files = self._download_list(ctx, task.remote_id or "")
            found = pick_model(files, self._format(ctx, files))
            return TaskSnapshot(state=JobState.SUCCEEDED if found else JobState.RUNNING, progress=100 if found else 0)
        data = check_body(ctx.client.request("POST", STATUS_PATH, json={"subscription_key": key}).json(),
                          "status request")
        # Keep the subscription key with the task when the runner stores the final snapshot.
        return aggregate(data.get("jobs")).amended(result_urls={SUBSCRIPTION_FIELD: key})

    def result_link(self, ctx: ProviderContext) -> str:
        """The download list's model in the job's format (links last about ten minutes: asked at once)."""
        name, url = self._model_link(ctx)
        log.info("job %s: Rodin model %s", ctx.job_id, name)
        return url

    def fresh_link(self, ctx: ProviderContext) -> str:
        return self._model_link(ctx)[1]

    # -- wire format -------------------------------------------------------------------------------

    def form_fields(self, request: GenerationRequest) -> list[tuple[str, str]]:
        """The text parts of the generation request, in order."""
        opts = request.options
        fields: list[tuple[str, str]] = []
        prompt = (request.prompt or "").strip()
        if prompt:
            fields.append(("prompt", prompt))
        fields += [("tier", str(opts["tier"])), ("quality", str(opts["quality"])),
                   ("geometry_file_format", str(opts["geometry_file_format"])),
                   ("material", str(opts["material"])), ("TAPose", "true" if opts["TAPose"] else "false")]
        if opts.get("mesh_mode") and opts["mesh_mode"] != "auto":
            fields.append(("mesh_mode", str(opts["mesh_mode"])))
        if int(opts.get("seed", -1)) >= 0:
            fields.append(("seed", str(int(opts["seed"]))))
        bbox = opts.get("bbox_condition")
        if bbox:
            fields.append(("bbox_condition", json.dumps([int(v) for v in bbox])))
        if opts.get("high_pack"):
            fields.append(("addons", json.dumps(["HighPack"])))  # a JSON array string, as Rodin expects
        return fields

    def _submit(self, ctx: ProviderContext, images: list[bytes]) -> str:
        request: GenerationRequest = ctx.request
        if request.kind == "text" and not (request.prompt or "").strip():
            raise InputError("Rodin text to 3D needs a prompt")
        parts: list[tuple[str, tuple[str | None, bytes | str, str | None]]] = []
        for index, image in enumerate(images):
            kind = sniff_bytes(image[:32]) or "png"
            ext = "jpg" if kind == "jpeg" else kind
            parts.append(("images", (f"{index:04d}.{ext}", image, f"image/{kind}")))
        for name, value in self.form_fields(request):
            parts.append((name, (None, value, None)))
        data = check_body(ctx.client.request("POST", GENERATE_PATH, files=parts).json(), "generation request")
        task_uuid = data.get("uuid")
        key = subscription_key(data.get("jobs"))
        if not isinstance(task_uuid, str) or not task_uuid:
            raise ProviderError(f"Rodin accepted the request but returned no task uuid: {str(data)[:200]}")
        if isinstance(key, str) and key:
            def remember(job: Job) -> None:
                task = job.task(TASK_KEY)
                if task is not None:
                    task.result_urls[SUBSCRIPTION_FIELD] = key

            ctx.edit(remember)
        return task_uuid

    def _download_list(self, ctx: ProviderContext, task_uuid: str) -> Any:
        data = check_body(ctx.client.request("POST", DOWNLOAD_PATH, json={"task_uuid": task_uuid}).json(),
                          "download request")
        return data.get("list")

    def _format(self, ctx: ProviderContext, files: Any) -> str:
        """The model format to download: the job's option; recovering, the first one the task offers."""
        if ctx.request.kind != "task":
            return str(ctx.request.options.get("geometry_file_format") or "glb")
        return next((f for f in RECOVERED_FORMATS if pick_model(files, f)), "glb")

    def _model_link(self, ctx: ProviderContext) -> tuple[str, str]:
        files = self._download_list(ctx, task_of(ctx, TASK_KEY).remote_id or "")
        fmt = self._format(ctx, files)
        found = pick_model(files, fmt)
        if found is None:
            offered = [str(f.get("name")) for f in files if isinstance(f, dict)] if isinstance(files, list) else []
            raise ProviderError(f"Rodin finished but offers no .{fmt} model to download "
                                f"(it offers: {', '.join(offered) or 'nothing'})")
        return found
