"""image3d.io (https://image3d.io/docs): a picture or a prompt to a GLB model.

Wire format (shared/reference/provider-api.md section 4):
- Authorization: Bearer <Firebase ID token>. The token comes from signing in on image3d.io and
  lasts one hour, so a 401 almost always means "copy a fresh token".
- POST /api/generate, JSON {mode: "image" | "text", image: base64 image, prompt, quality}; answers
  {"task_id", "status": "queued", "provider"}.
- GET /api/status/{task_id}: {"status": queued | processing | success | failed, "progress", "model_url"}.
- GET /api/balance: {"balance": 580, "unit": "credits"}.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .. import idtoken
from ..capabilities import Capability
from ..errors import AuthError, ProviderError, QuotaError, RateLimited
from ..http import ProviderConfig, SlotWait
from ..models import GenerationRequest, InputKind, Job, JobState, RemoteTask, TaskStatus
from .base import OptionSpec, Output, TaskSnapshot, balance_of, percent
from .context import ProviderContext
from .polled import SingleTaskProvider

if TYPE_CHECKING:
    from ..http import ApiClient

T = TypeVar("T")

GENERATE_PATH = "/api/generate"
STATUS_PATH = "/api/status"
BALANCE_PATH = "/api/balance"
TASK_KEY = "model"
SITE = "https://image3d.io"

TOKEN_HELP = (f"image3d.io refused the ID token: it has expired (tokens last one hour) or is wrong. Sign in at "
              f"{SITE}, copy a fresh ID token and paste it into Preferences > Add-ons > Marionette > "
              "image3d.io ID Token, then generate again.")
CREDITS_HELP = f"image3d.io has no credits left for this generation: buy credits at {SITE}/pricing/ and try again."
# How often a job waiting for a fresh ID token looks whether one was saved.
TOKEN_CHECK_SECONDS = 1.0
BUSY_HELP = "image3d.io is busy for this account (Pro runs up to 5 at once): waiting"

_STATES = {"queued": JobState.PENDING, "pending": JobState.PENDING, "waiting": JobState.PENDING,
           "processing": JobState.RUNNING, "running": JobState.RUNNING, "in_progress": JobState.RUNNING,
           "generating": JobState.RUNNING,
           "success": JobState.SUCCEEDED, "succeeded": JobState.SUCCEEDED, "completed": JobState.SUCCEEDED,
           "done": JobState.SUCCEEDED,
           "failed": JobState.FAILED, "error": JobState.FAILED,
           "canceled": JobState.CANCELED, "cancelled": JobState.CANCELED}


def friendly(call: Callable[[], T]) -> T:
    """Run an API call, turning 401/402/429 into messages that say what to do."""
    try:
        return call()
    except AuthError as exc:
        raise AuthError(TOKEN_HELP, status=exc.status, code="token_expired") from None
    except QuotaError as exc:
        raise QuotaError(CREDITS_HELP, status=exc.status, code="insufficient_credits") from None
    except RateLimited as exc:
        raise RateLimited(f"{BUSY_HELP} ({exc})", retry_after=exc.retry_after,
                          code="image3d.io: too many requests") from None


def with_fresh_token(ctx: ProviderContext, call: Callable[[], T], creating: str | None = None) -> T:
    """Run `call`; when image3d.io refuses a token that has expired (its `exp` says so), the job waits
    ("paste a fresh ID token") and, once one is saved, goes on by itself with it. A refused token that has
    not expired (a wrong one) fails the job as before. A 401 means the request was not taken, so sending it
    again with the new token pays nothing twice; while the job waits, the journal says so for the task
    being created (`creating`), so a restart meanwhile does not take it for a create that may exist."""
    while True:
        try:
            return call()
        except AuthError:
            token = ctx.client.config.api_key
            if not idtoken.expired(token) or ctx.runner.key_source is None:
                raise
        _mark(ctx, creating, TaskStatus.NEW, None)
        fresh = wait_for_token(ctx, token)
        ctx.client.config = ProviderConfig(base_url=ctx.client.config.base_url, api_key=fresh)
        _mark(ctx, creating, TaskStatus.SUBMITTING, time.time())


def _mark(ctx: ProviderContext, key: str | None, status: TaskStatus, sent_at: float | None) -> None:
    if key is None:
        return

    def change(job: Job) -> None:
        task = job.task(key)
        if task is not None:
            task.status, task.submitted_at = status, sent_at

    ctx.edit(change, force=True)


def wait_for_token(ctx: ProviderContext, old: str) -> str:
    """Block (cancellable) until a token other than `old` that has not expired is saved; returns it."""
    previous = (ctx.job().state, ctx.job().stage)

    def waiting(job: Job) -> None:
        job.state, job.stage = JobState.PENDING, "Waiting for a fresh image3d.io ID token"

    ctx.edit(waiting)
    ctx.notice(idtoken.waiting_notice())
    while True:
        ctx.pacer.sleep(TOKEN_CHECK_SECONDS)
        fresh = (ctx.runner.key_source("image3d") or "").strip()
        if fresh and fresh != old and not idtoken.expired(fresh):
            break

    def resumed(job: Job) -> None:
        job.state, job.stage = previous

    ctx.edit(resumed)
    ctx.notice(None)
    return fresh


def task_id_of(data: Any) -> str:
    """The task id from the generate answer ({"task_id", "status", "provider"}, seed 003)."""
    task_id = data.get("task_id") or data.get("taskId") or data.get("id") if isinstance(data, dict) else None
    if not isinstance(task_id, str | int) or isinstance(task_id, bool) or not str(task_id):
        raise ProviderError(f"image3d.io accepted the request but returned no task_id: {str(data)[:200]}")
    return str(task_id)


def snapshot(data: Any) -> TaskSnapshot:
    if not isinstance(data, dict):
        raise ProviderError(f"image3d.io answered the status request with something unexpected: {str(data)[:200]}")
    status = str(data.get("status") or "").strip().lower()
    state = _STATES.get(status)
    if state is None:
        raise ProviderError(f"image3d.io reported an unknown status {data.get('status')!r}")
    progress = percent(data.get("progress"))
    if state is JobState.FAILED:
        reason = data.get("error") or data.get("message") or data.get("reason")
        if isinstance(reason, dict):
            reason = reason.get("message")
        return TaskSnapshot(state=state, progress=progress, error=str(reason) if reason else None,
                            error_code=str(data.get("code") or "failed"))
    if state is JobState.SUCCEEDED:
        url = data.get("model_url") or data.get("modelUrl") or data.get("glb_url")
        if not isinstance(url, str) or not url:
            raise ProviderError("image3d.io finished the model but gave no model_url")
        return TaskSnapshot(state=state, progress=100, result_urls={"glb": url})
    return TaskSnapshot(state=state, progress=progress)


class Image3DProvider(SingleTaskProvider):
    id: ClassVar[str] = "image3d"
    label: ClassVar[str] = "image3d.io"
    default_base_url: ClassVar[str] = SITE
    key_label: ClassVar[str] = "ID Token"
    inputs: ClassVar[frozenset[InputKind]] = frozenset({"image", "text"})
    outputs: ClassVar[frozenset[Output]] = frozenset({"model"})
    # "recover": a task whose create answer was lost (or made elsewhere) is fetched by its id from the status call.
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"recover", "balance"})
    task_key: ClassVar[str] = TASK_KEY
    # Error codes (seed 003): "500 | Internal server error | Retry after a few seconds".
    create_retries_server_errors: ClassVar[bool] = True
    # No documented limit: larger pictures only make the upload slower and risk the body size limits.
    max_image_side: ClassVar[int | None] = 4096
    result_front: ClassVar[str | None] = "-Y"  # glTF's convention
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("quality", "Quality", "enum", "pro", "Engine and detail of the model",
                   items=(("fast", "Fast", "Trellis, about 10 s, 8K-15K faces, no PBR"),
                          ("standard", "Standard", "Trellis, about 10 s, 15K-25K faces, no PBR"),
                          ("pro", "Pro", "Hunyuan3D v3, about 30 s, 40K-60K faces, PBR"),
                          ("ultra", "Ultra", "Hunyuan3D v3, about 60 s, up to 1M faces, PBR"))),
    )

    @staticmethod
    def auth_header(api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def key_warning(self, api_key: str) -> str | None:
        return idtoken.submit_warning(api_key)

    def key_status(self, api_key: str) -> str | None:
        return idtoken.describe(api_key)

    def balance(self, client: ApiClient) -> float | None:
        return balance_of(friendly(lambda: client.request("GET", BALANCE_PATH).json()), self.label)

    def stage_text(self, task: RemoteTask) -> str:
        return f"Model: {task.progress}%" if task.progress else "Model: queued"

    def body(self, request: GenerationRequest, image: bytes | None) -> dict[str, Any]:
        body: dict[str, Any] = {"mode": "text" if request.kind == "text" else "image",
                                "quality": request.options["quality"]}
        prompt = (request.prompt or "").strip()
        if prompt:
            body["prompt"] = prompt
        if image is not None:
            # "image | string | If image mode | Base64-encoded image data" (seed 003): plain base64, no
            # data: URI prefix.
            body["image"] = base64.b64encode(image).decode("ascii")
        return body

    def creator(self, ctx: ProviderContext) -> Callable[[], str]:
        image = self.input_files(ctx)[0] if ctx.request.kind == "image" else None
        return lambda: self._submit(ctx, image)

    def _submit(self, ctx: ProviderContext, image: bytes | None) -> str:
        body = self.body(ctx.request, image)
        try:
            data = with_fresh_token(ctx, lambda: friendly(
                lambda: ctx.client.request("POST", GENERATE_PATH, json=body).json()), creating=TASK_KEY)
        except RateLimited as exc:  # a refused generate: the account's parallel generations are all busy
            raise SlotWait("Waiting for a free slot: image3d.io runs a limited number of generations at once for "
                           "this account (Pro: 5)", retry_after=exc.retry_after, code=exc.code) from None
        return task_id_of(data)

    def status(self, ctx: ProviderContext, task: RemoteTask) -> TaskSnapshot:
        return snapshot(with_fresh_token(ctx, lambda: friendly(
            lambda: ctx.client.request("GET", f"{STATUS_PATH}/{task.remote_id}").json())))
