"""Meshy's API client (https://docs.meshy.ai): the endpoints, the task object, creating a task once,
reading its status, finding a create whose answer was lost, cancelling, fresh links; the checks made
before anything is paid (action ids, the animation library, a rig's age). The pipelines are in
``meshy.py`` (model generation, recovery) and ``meshy_rigging.py`` (rigging and animations); this
module imports neither.

Tasks: POST <path> creates one ({"result": id}); GET <path>/<id> is its task object (status, progress,
preceding_tasks, model_urls / result, task_error); DELETE <path>/<id> deletes it. Rig tasks are kept
for 3 days; animations can be added to a rig only while it exists.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from ..errors import InputError, ProviderError, RateLimited
from ..formats import sniff_bytes
from ..http import SlotWait, with_retries
from ..models import AnimationChoice, Asset, Job, JobState, RemoteTask, TaskStatus
from .base import TaskSnapshot, rig_age_check, stage_text
from .context import ProviderContext, task_of

log = logging.getLogger(__name__)

RIG_PATH = "/openapi/v1/rigging"
ANIMATION_PATH = "/openapi/v1/animations"
REMESH_PATH = "/openapi/v1/remesh"
BALANCE_PATH = "/openapi/v1/balance"
# Endpoint paths by task key prefix.
PATHS = {"image": "/openapi/v1/image-to-3d", "multi": "/openapi/v1/multi-image-to-3d",
         "preview": "/openapi/v2/text-to-3d", "refine": "/openapi/v2/text-to-3d",
         "rig": RIG_PATH, "anim": ANIMATION_PATH, "remesh": REMESH_PATH}

# An animation task's key in the journal (and its result file's): "anim:<action id>"; the walking and
# running that come with a rig are "anim:Walking" and "anim:Running".
ANIMATION_KEY = "anim:"

RIG_RETENTION_SECONDS = 3 * 24 * 3600
# Rigging refuses "models with more than 300,000 faces" (400 "Face count exceeded", seed 002).
MAX_RIG_FACES = 300_000
FACE_LIMIT_HINT = "Face count exceeded"
# target_polycount when Marionette turns remeshing on for rigging: Meshy's documented default.
RIG_POLYCOUNT = 30_000
REMESH_CREDITS = 5
# Task kinds whose id the Remesh API takes as input_task_id ("Text to 3D Preview, Text to 3D Refine,
# Image to 3D or Retexture", seed 002): not multi-image.
REMESHABLE = ("image", "preview", "refine")
# Action ids are integers (seed 002); no range is documented, so the catalog decides which exist.
MAX_ACTION_ID = 2**31 - 1

POSE_HELP = ("Meshy's rigging could not find a humanoid pose in this model (422: pose estimation failed). Rigging "
             "needs a textured, two-legged humanoid with clear arms and legs standing in a T-pose or an A-pose: "
             "for a generated character set Pose to T-Pose or A-Pose and generate again; for a selected mesh, "
             "pose it so, and check which way it faces. The paid model is kept: Retry rigs it again.")
QUEUE_FULL = "NoMoreConcurrentTasks"
SLOT_NOTICE = "Waiting for a free slot in Meshy's queue (the account runs as many tasks as its plan allows)"

_STATES = {
    "PENDING": JobState.PENDING,
    "IN_PROGRESS": JobState.RUNNING,
    "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "CANCELED": JobState.CANCELED,
}

# What to do about a FAILED task, by Meshy's documented task_error types. Failed tasks are refunded.
_ERROR_HINTS = {
    "invalid_input": "Change the input and generate again (Meshy refunds failed tasks).",
    "timeout": "This is usually temporary: press Retry (Meshy refunds failed tasks).",
    "service_unavailable": "Meshy is overloaded or down for maintenance: press Retry later (failed tasks are "
                           "refunded).",
    "server_error": "Meshy had an internal error: press Retry (failed tasks are refunded).",
}


def snapshot(data: dict[str, Any]) -> TaskSnapshot:
    """Map a Meshy task object (any type) to the common shape."""
    status = str(data.get("status", ""))
    state = _STATES.get(status)
    if state is None:
        raise ProviderError(f"Meshy reported an unknown task status {status!r}")
    urls: dict[str, str] = {}
    if isinstance(data.get("thumbnail_url"), str) and data["thumbnail_url"]:
        urls["thumbnail_url"] = data["thumbnail_url"]
    model_urls = data.get("model_urls")
    if model_urls is not None and not isinstance(model_urls, dict):
        # The result links themselves are unreadable: a protocol error (the task stays to poll on Retry).
        raise TypeError(f"model_urls is a {type(model_urls).__name__}, not an object")
    for name, value in (model_urls or {}).items():
        if isinstance(value, str) and value:
            urls[name] = value
    result = data.get("result") or {}
    if isinstance(result, dict):
        for name, value in result.items():
            if isinstance(value, str) and value:
                urls[name] = value
        basics = result.get("basic_animations")
        if basics is not None and not isinstance(basics, dict):
            raise TypeError(f"basic_animations is a {type(basics).__name__}, not an object")
        for name, value in (basics or {}).items():
            if isinstance(value, str) and value:
                urls[name] = value
    error = data.get("task_error") or {}
    # task_error is documented as an object; given as plain text, those are still Meshy's words.
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    code = (error.get("code") or error.get("type")) if isinstance(error, dict) else None
    queue = data.get("preceding_tasks")
    raw_progress = data.get("progress")
    # A wrong-typed progress must not cost a finished result: it is only a progress bar.
    progress = int(raw_progress) if isinstance(raw_progress, int | float) and not isinstance(raw_progress, bool) \
        and -1e9 < raw_progress < 1e9 else 0
    return TaskSnapshot(
        state=state,
        progress=max(0, min(100, progress)),
        queue_position=int(queue) if isinstance(queue, int) and state is JobState.PENDING else None,
        result_urls=urls,
        error=str(message) if message else None,
        error_code=str(code) if code and state is JobState.FAILED else None,
    )


def explained(data: dict[str, Any]) -> TaskSnapshot:
    """snapshot(), with what to do about a failure added to Meshy's own message."""
    snap = snapshot(data)
    error = data.get("task_error")
    if snap.state is not JobState.FAILED or not isinstance(error, dict):
        return snap
    hint = _ERROR_HINTS.get(str(error.get("type") or ""))
    if not hint:
        return snap
    text = f"{(snap.error or 'no reason given').rstrip('. ')}. {hint}"
    return TaskSnapshot(state=snap.state, progress=snap.progress, queue_position=snap.queue_position,
                        result_urls=dict(snap.result_urls), error=text, error_code=snap.error_code)


def glb_data_uri(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode("ascii")


def png_data_uri(data: bytes) -> str:
    """A PNG or JPEG image as a data URI (the inputs are checked to be one of them before)."""
    kind = "jpeg" if sniff_bytes(data[:32]) == "jpeg" else "png"
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")


def path_for(task: RemoteTask) -> str:
    return PATHS[task.key.split(":", 1)[0]]


def create(ctx: ProviderContext, path: str, body: dict[str, Any]) -> str:
    try:
        response = ctx.client.request("POST", path, json=body)
    except RateLimited as exc:
        if exc.code == QUEUE_FULL:  # not a rate limit: the job waits locally for a slot, nothing failed
            raise SlotWait(SLOT_NOTICE, retry_after=exc.retry_after, code=QUEUE_FULL) from exc
        raise
    except ProviderError as exc:
        if exc.status == 422 and path == RIG_PATH:
            raise ProviderError(POSE_HELP, status=422, code="pose_estimation_failed") from exc
        if exc.status == 404 and path == ANIMATION_PATH:
            raise ProviderError(
                "Meshy no longer keeps this character's rig (rig tasks are kept 3 days): rig the "
                "character again to add animations.", status=404) from exc
        raise
    return parse_created(response.json())


def parse_created(data: Any) -> str:
    """The new task's id from a create answer: "The `result` property of the response contains the task
    `id`" (seed 002)."""
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, str) or not result:
        raise ProviderError(f"Meshy accepted the request but returned no task id: {str(data)[:200]}")
    return result


def fetch(ctx: ProviderContext, task: RemoteTask) -> TaskSnapshot:
    """The task's status. A task Meshy no longer has (deleted, or past its 3 days) answers 404: the journal
    forgets its id so that Retry creates it again, and the job says so instead of polling forever."""
    try:
        data = ctx.client.request("GET", f"{path_for(task)}/{task.remote_id}").json()
    except ProviderError as exc:
        if exc.status != 404:
            raise
        forget(ctx, task.key)
        cost = ctx.provider.task_cost(ctx.request, task.key)
        paid = f" ({cost:g} credits)" if cost else ""
        raise ProviderError(f"Meshy no longer has the {task.label.lower()} task {task.remote_id} (it was deleted, or "
                            f"its 3 days are over): press Retry to create it again{paid}.", status=404,
                            code="task_gone") from exc
    return explained(data)


def forget(ctx: ProviderContext, key: str) -> None:
    """Mark a remote task as gone (deleted on Meshy): Retry drops it and creates a new one."""
    def change(job: Job) -> None:
        task = job.task(key)
        if task is not None:
            task.status = TaskStatus.CANCELED

    ctx.edit(change, force=True)


def cancel_tasks(ctx: ProviderContext) -> None:
    """Cancel: DELETE "permanently deletes" a task (seed 002), so only tasks still queued or running are
    deleted (freeing the queue), each after a fresh look at its status; a task that already succeeded
    was paid for and is kept, so Retry reuses it. A deleted task is marked so that Retry makes a new one."""
    for task in list(ctx.job().tasks):
        if not task.remote_id or task.status is not TaskStatus.SUBMITTED:
            continue
        path = path_for(task)
        try:
            data = ctx.client.request("GET", f"{path}/{task.remote_id}").json()
        except ProviderError as exc:
            if exc.status == 404:
                forget(ctx, task.key)
            continue
        status = str(data.get("status") or "") if isinstance(data, dict) else ""
        if status == "SUCCEEDED":
            urls = dict(explained(data).result_urls)

            def keep(job: Job, key: str = task.key, urls: dict[str, str] = urls) -> None:
                stored = job.task(key)
                if stored is not None:
                    stored.status, stored.result_urls, stored.progress = TaskStatus.SUCCEEDED, urls, 100

            ctx.edit(keep, force=True)
            log.info("kept %s task %s on Meshy: it had succeeded (paid)", task.key, task.remote_id)
            continue
        if status not in ("PENDING", "IN_PROGRESS"):
            continue
        ctx.client.request("DELETE", f"{path}/{task.remote_id}")
        forget(ctx, task.key)
        log.info("deleted %s task %s on Meshy (cancelled while %s)", task.key, task.remote_id, status.lower())


def stage(ctx: ProviderContext, label: str, key: str, start: float, end: float) -> None:
    task = ctx.job().task(key)
    if task is None:
        return
    ctx.set_stage(stage_text(label, task), start + (end - start) * task.progress / 100)


def check_action_ids(choices: list[AnimationChoice]) -> None:
    """Action ids are non-negative integers: refuse others at once (nothing sent)."""
    for choice in choices:
        if not 0 <= choice.action_id <= MAX_ACTION_ID:
            raise InputError(f"{choice.action_id} is not a Meshy animation id: pick animations from the library")


def check_catalog(ctx: ProviderContext, choices: list[AnimationChoice]) -> None:
    """Before the first paid request: every action id must be in Meshy's animation library (fetched
    through the job's HTTP client), else the job stops with the unknown ids and nothing is paid."""
    if not choices:
        return
    from .. import catalog

    ctx.set_stage("Checking the animations", 0.0)
    try:
        entries = with_retries(lambda: catalog.fetch_entries(ctx.client), pacer=ctx.pacer, timing=ctx.timing,
                               notice=ctx.notice)
    except ProviderError as exc:  # the library alone is unreachable: Meshy itself still checks the ids
        log.warning("could not read Meshy's animation library to check the ids: %s", exc)
        return
    known = {entry.action_id for entry in entries}
    unknown = [c for c in choices if c.action_id not in known]
    if unknown:
        names = ", ".join(f"{c.action_id} ({c.name})" for c in unknown)
        raise InputError(f"Meshy's animation library has no animation {names}: pick animations from the library "
                         "(refresh it if it is old). Nothing was sent or paid.")


def check_rig_age(created_at: float | None, now: float | None = None) -> None:
    """Refuse before paying when the rig is older than Meshy keeps rig tasks."""
    rig_age_check("Meshy", RIG_RETENTION_SECONDS, created_at, now)


# Task types by the list endpoint that shows them, for the keys whose create can be found again.
LISTED_TYPES = {"image": ("/openapi/v1/image-to-3d", "image-to-3d"),
                "multi": ("/openapi/v1/multi-image-to-3d", "multi-image-to-3d"),
                "preview": ("/openapi/v2/text-to-3d", "text-to-3d-preview"),
                "refine": ("/openapi/v2/text-to-3d", "text-to-3d-refine"),
                "remesh": (REMESH_PATH, "remesh")}
# How far Meshy's clock (created_at) may be from ours, and how long after the send a task may appear.
FIND_BEFORE = 60.0

FIND_AFTER = 180.0


def find_created(ctx: ProviderContext, key: str, sent_at: float, prompt: str | None = None) -> str | None:
    """The task a create request sent at `sent_at` made, when its answer was lost: Meshy lists its tasks
    newest first; the one wanted is of the right type, created around the send time, unknown to every
    job in the journal (and for text, made from the same prompt). None when there is not exactly one."""
    path, kind = LISTED_TYPES[key]
    listed = ctx.client.request("GET", path, params={"page_num": 1, "page_size": 50,
                                                     "sort_by": "-created_at"}).json()
    if not isinstance(listed, list):
        raise ProviderError(f"Meshy answered its task list with something unexpected: {str(listed)[:200]}")
    known = ctx.known_remote_ids()
    found = []
    for item in listed:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        created = item.get("created_at")
        if not isinstance(created, int | float) or isinstance(created, bool):
            continue
        created_s = created / 1000.0
        if item.get("type", kind) != kind or item["id"] in known:
            continue
        if not sent_at - FIND_BEFORE <= created_s <= sent_at + FIND_AFTER:
            continue
        if prompt is not None and str(item.get("prompt") or "").strip() != prompt:
            continue
        found.append(item["id"])
    return found[0] if len(found) == 1 else None


def refresh_url(ctx: ProviderContext, asset: Asset) -> str:
    """A fresh signed URL for an asset whose link expired: re-read the task it came from."""
    snap = fetch(ctx, task_of(ctx, asset.source_task))
    old_name = asset.url.split("?", 1)[0].rsplit("/", 1)[-1]
    for url in snap.result_urls.values():
        if url.split("?", 1)[0].rsplit("/", 1)[-1] == old_name:
            return url
    raise ProviderError(f"Meshy no longer offers {asset.name}; results are kept for 3 days")

