"""Meshy's rigging and animation endpoints, shared by every Meshy pipeline that ends in a character:
image -> model -> rig, selected mesh -> (remesh) -> rig, and "add animations" to a rig made earlier.

Rigging: POST /openapi/v1/rigging with input_task_id or model_url (a GLB data URI), height_meters.
Animations: POST /openapi/v1/animations per action with rig_task_id, action_id, optional post_process.
Rig tasks are kept by Meshy for 3 days; animations can be added to a rig only while it exists.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from ..errors import InputError, ProviderError, RateLimited
from ..formats import PNG_MAGIC
from ..http import SlotWait, with_retries
from ..models import AnimationChoice, Asset, GenerationRequest, RemoteTask, TaskStatus
from .base import TaskSnapshot

log = logging.getLogger(__name__)

RIG_PATH = "/openapi/v1/rigging"
ANIMATION_PATH = "/openapi/v1/animations"
REMESH_PATH = "/openapi/v1/remesh"
RIG_RETENTION_SECONDS = 3 * 24 * 3600
# Rigging refuses "models with more than 300,000 faces" (400 "Face count exceeded", seed 002).
MAX_RIG_FACES = 300_000
# target_polycount when Marionette turns remeshing on for rigging: Meshy's documented default.
RIG_POLYCOUNT = 30_000
REMESH_CREDITS = 5
FPS_CHOICES = (24, 25, 30, 60)
# Action ids are integers (seed 002); no range is documented, so the catalog decides which exist.
MAX_ACTION_ID = 2**31 - 1

# Endpoint paths by task key prefix.
PATHS = {"image": "/openapi/v1/image-to-3d", "multi": "/openapi/v1/multi-image-to-3d",
         "preview": "/openapi/v2/text-to-3d", "refine": "/openapi/v2/text-to-3d",
         "rig": RIG_PATH, "anim": ANIMATION_PATH, "remesh": REMESH_PATH}
_PATHS = PATHS
# Task kinds whose id the Remesh API takes as input_task_id ("Text to 3D Preview, Text to 3D Refine,
# Image to 3D or Retexture", seed 002): not multi-image.
REMESHABLE = ("image", "preview", "refine")
FACE_LIMIT_HINT = "Face count exceeded"
POSE_HELP = ("Meshy's rigging could not find a humanoid pose in this model (422: pose estimation failed). Rigging "
             "needs a textured, two-legged humanoid with clear arms and legs standing in a T-pose or an A-pose: "
             "for a generated character set Pose to T-Pose or A-Pose and generate again; for a selected mesh, "
             "pose it so, and check which way it faces. The paid model is kept: Retry rigs it again.")


def glb_data_uri(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode("ascii")


def png_data_uri(data: bytes) -> str:
    kind = "jpeg" if data[:3] == b"\xff\xd8\xff" else "png"
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")


def path_for(task: RemoteTask) -> str:
    return _PATHS[task.key.split(":", 1)[0]]


def fetch(ctx: Any, task: RemoteTask) -> TaskSnapshot:
    """The task's status. A task Meshy no longer has (deleted, or past its 3 days) answers 404: the journal
    forgets its id so that Retry creates it again, and the job says so instead of polling forever."""
    from .meshy import explained  # the one Meshy task-object mapping

    try:
        data = ctx.client.request("GET", f"{path_for(task)}/{task.remote_id}").json()
    except ProviderError as exc:
        if exc.status != 404:
            raise
        forget(ctx, task.key)
        cost = ctx.provider.task_cost(ctx.request, task.key) if hasattr(ctx.provider, "task_cost") else None
        paid = f" ({cost:g} credits)" if cost else ""
        raise ProviderError(f"Meshy no longer has the {task.label.lower()} task {task.remote_id} (it was deleted, or "
                            f"its 3 days are over): press Retry to create it again{paid}.", status=404,
                            code="task_gone") from exc
    return explained(data)


def forget(ctx: Any, key: str) -> None:
    """Mark a remote task as gone (deleted on Meshy): Retry drops it and creates a new one."""
    def change(job: Any) -> None:
        task = job.task(key)
        if task is not None:
            task.status = TaskStatus.CANCELED

    ctx.edit(change, force=True)


def cancel_tasks(ctx: Any) -> None:
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
            from .meshy import explained

            urls = dict(explained(data).result_urls)

            def keep(job: Any, key: str = task.key, urls: dict[str, str] = urls) -> None:
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


QUEUE_FULL = "NoMoreConcurrentTasks"
SLOT_NOTICE = "Waiting for a free slot in Meshy's queue (the account runs as many tasks as its plan allows)"


def create(ctx: Any, path: str, body: dict[str, Any]) -> str:
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


def stage(ctx: Any, label: str, key: str, start: float, end: float) -> None:
    task = ctx.job().task(key)
    if task is None:
        return
    queued = f"{label}: queued ({task.queue_position} ahead)"
    text = queued if task.queue_position else f"{label}: {task.progress}%"
    ctx.set_stage(text, start + (end - start) * task.progress / 100)


def animation_body(rig_id: str, choice: AnimationChoice, fps: int) -> dict[str, Any]:
    body: dict[str, Any] = {"rig_task_id": rig_id, "action_id": choice.action_id}
    if fps:
        body["post_process"] = {"operation_type": "change_fps", "fps": fps}
    return body


def rig(ctx: Any, rig_input: dict[str, Any], *, start: float, end: float) -> str:
    """Create (once) and wait for the rig task; returns its id."""
    ctx.set_stage("Rig: submitting", start)
    body = {**rig_input, "height_meters": float(ctx.request.options.get("height_meters", 1.7))}
    rig_id: str = ctx.submit_once("rig", "Rig", lambda: create(ctx, RIG_PATH, body))  # no list to search
    ctx.poll(["rig"], lambda t: fetch(ctx, t), on_change=lambda job: stage(ctx, "Rig", "rig", start, end))
    return rig_id


def rig_model(ctx: Any, model_key: str, model_id: str, *, start: float, end: float) -> str:
    """Rig a generated model (input_task_id). Should Meshy refuse it for its face count (a model made
    before Marionette turned remeshing on, or one that came out over the target), it is remeshed with the
    Remesh API first (REMESH_CREDITS credits, said on the job) and the remeshed model is rigged."""
    job = ctx.job()
    remesh = job.task("remesh")
    if remesh is not None and remesh.remote_id:
        source = remesh.remote_id
        if remesh.status is not TaskStatus.SUCCEEDED:
            ctx.poll(["remesh"], lambda t: fetch(ctx, t), on_change=lambda j: stage(ctx, "Remesh", "remesh",
                                                                                    start, start))
        return rig(ctx, {"input_task_id": source}, start=start, end=end)
    try:
        return rig(ctx, {"input_task_id": model_id}, start=start, end=end)
    except ProviderError as exc:
        if exc.status != 400 or FACE_LIMIT_HINT.lower() not in str(exc).lower():
            raise
        if model_key not in REMESHABLE:
            raise ProviderError(f"Meshy refused to rig the model: it has more than {MAX_RIG_FACES:,} faces, and "
                                "Meshy's Remesh API does not take multi-image models. Turn on Remesh with a lower "
                                "Target Polycount and generate again.", status=400) from exc
    polycount = int(ctx.request.options.get("target_polycount") or RIG_POLYCOUNT)
    ctx.notice(f"The model has more than {MAX_RIG_FACES:,} faces, which Meshy's rigging refuses: remeshing it to "
               f"{polycount:,} faces first (+{REMESH_CREDITS} credits)")
    body = {"input_task_id": model_id, "target_formats": ["glb"], "topology": "triangle",
            "target_polycount": polycount}
    ctx.set_stage("Remesh: submitting", start)
    remesh_id = ctx.submit_once("remesh", "Remesh", lambda: create(ctx, REMESH_PATH, body),
                                find=lambda sent_at: find_created(ctx, "remesh", sent_at))
    ctx.poll(["remesh"], lambda t: fetch(ctx, t), on_change=lambda j: stage(ctx, "Remesh", "remesh", start, start))
    return rig(ctx, {"input_task_id": remesh_id}, start=start, end=end)


def check_action_ids(choices: list[AnimationChoice]) -> None:
    """Action ids are non-negative integers: refuse others at once (nothing sent)."""
    for choice in choices:
        if not 0 <= choice.action_id <= MAX_ACTION_ID:
            raise InputError(f"{choice.action_id} is not a Meshy animation id: pick animations from the library")


def check_catalog(ctx: Any, choices: list[AnimationChoice]) -> None:
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


def animate(ctx: Any, rig_id: str, choices: list[AnimationChoice], *, start: float, end: float) -> list[str]:
    """Create (once) one animation task per choice and wait for all; returns their task keys."""
    fps = int(ctx.request.options.get("animation_fps", 0) or 0)
    keys = []
    for index, choice in enumerate(choices):
        key = f"anim:{choice.action_id}"
        ctx.set_stage(f"Animation {index + 1} of {len(choices)}: submitting", start)
        body = animation_body(rig_id, choice, fps)
        ctx.submit_once(key, choice.name, lambda body=body: create(ctx, ANIMATION_PATH, body))
        keys.append(key)
    if keys:
        def progress(job: Any) -> None:
            tasks = [job.task(k) for k in keys]
            done = sum(1 for t in tasks if t and t.progress >= 100)
            mean = sum(t.progress for t in tasks if t) / len(tasks)
            ctx.set_stage(f"Animation {min(done + 1, len(keys))} of {len(keys)}: {int(mean)}%",
                          start + (end - start) * mean / 100)

        ctx.poll(keys, lambda t: fetch(ctx, t), on_change=progress)
    return keys


def animation_assets(ctx: Any, keys: list[str]) -> list[Asset]:
    job = ctx.job()
    names = {f"anim:{c.action_id}": c.name for c in ctx.request.animations}
    assets = []
    for key in keys:
        urls = job.task(key).result_urls
        url = (urls.get("processed_animation_fps_fbx_url") if ctx.request.options.get("animation_fps") else None) \
            or urls.get("animation_glb_url") or urls.get("animation_fbx_url")
        if not url:
            raise ProviderError(f"Meshy finished the animation {names[key]} but gave no file link")
        assets.append(Asset(key=key, role="animation", name=names[key], url=url, source_task=key))
    return assets


def character_assets(ctx: Any) -> list[Asset]:
    """The rigged character and Meshy's basic walking/running that come with every rig."""
    urls = ctx.job().task("rig").result_urls
    main = urls.get("rigged_character_glb_url") or urls.get("rigged_character_fbx_url")
    if not main:
        raise ProviderError("Meshy finished rigging but gave no rigged character link")
    assets = [Asset(key="rigged", role="rigged", name="Character", url=main, source_task="rig")]
    for basic, name in (("walking_glb_url", "Walking"), ("running_glb_url", "Running")):
        if urls.get(basic):
            assets.append(Asset(key=f"anim:{name}", role="animation", name=name, url=urls[basic],
                                source_task="rig"))
    return assets


# Task types by the list endpoint that shows them, for the keys whose create can be found again.
LISTED_TYPES = {"image": ("/openapi/v1/image-to-3d", "image-to-3d"),
                "multi": ("/openapi/v1/multi-image-to-3d", "multi-image-to-3d"),
                "preview": ("/openapi/v2/text-to-3d", "text-to-3d-preview"),
                "refine": ("/openapi/v2/text-to-3d", "text-to-3d-refine"),
                "remesh": (REMESH_PATH, "remesh")}
# How far Meshy's clock (created_at) may be from ours, and how long after the send a task may appear.
FIND_BEFORE = 60.0
FIND_AFTER = 180.0


def find_created(ctx: Any, key: str, sent_at: float, prompt: str | None = None) -> str | None:
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


def refresh_url(ctx: Any, asset: Asset) -> str:
    """A fresh signed URL for an asset whose link expired: re-read the task it came from."""
    snap = fetch(ctx, ctx.job().task(asset.source_task))
    old_name = asset.url.split("?", 1)[0].rsplit("/", 1)[-1]
    for url in snap.result_urls.values():
        if url.split("?", 1)[0].rsplit("/", 1)[-1] == old_name:
            return url
    raise ProviderError(f"Meshy no longer offers {asset.name}; results are kept for 3 days")


def run_mesh(ctx: Any) -> None:
    """Selected mesh -> (remesh when asked) -> rig -> animations -> downloads.

    Inputs: the mesh as GLB (facing glTF +Z), and optionally its base color texture (PNG/JPEG).
    """
    request: GenerationRequest = ctx.request
    opts = request.options
    glb = ctx.input_path(0).read_bytes()
    rig_input: dict[str, Any]
    if opts.get("remesh_first"):
        ctx.set_stage("Remesh: submitting", 0.0)
        remesh_body = {"model_url": glb_data_uri(glb), "target_formats": ["glb"],
                       "topology": opts.get("topology", "triangle"),
                       "target_polycount": int(opts.get("target_polycount", 30000))}
        remesh_id = ctx.submit_once("remesh", "Remesh", lambda: create(ctx, REMESH_PATH, remesh_body),
                                    find=lambda sent_at: find_created(ctx, "remesh", sent_at))
        ctx.poll(["remesh"], lambda t: fetch(ctx, t),
                 on_change=lambda job: stage(ctx, "Remesh", "remesh", 0.0, 0.3))
        rig_input = {"input_task_id": remesh_id}
        start = 0.3
    else:
        rig_input = {"model_url": glb_data_uri(glb)}
        start = 0.0
    if len(request.inputs) > 1:
        texture = ctx.input_path(1).read_bytes()
        if not texture.startswith(PNG_MAGIC):
            # texture_image_url: "We currently support .png formats" (seed 002). The Blender side converts
            # the base colour to PNG; anything else is refused before a request is sent.
            raise InputError("Meshy's rigging takes the base colour texture as PNG only: save the texture as "
                             "PNG (the selected-mesh export converts it) and try again")
        rig_input["texture_image_url"] = "data:image/png;base64," + base64.b64encode(texture).decode("ascii")
    rig_id = rig(ctx, rig_input, start=start, end=0.55)
    keys = animate(ctx, rig_id, request.animations, start=0.55, end=0.9)
    assets = character_assets(ctx) + animation_assets(ctx, keys)
    ctx.download_assets(assets, refresh_url=lambda a: refresh_url(ctx, a))


def run_add_animations(ctx: Any) -> None:
    """More animations for a rig made earlier (options: rig_task_id, rig_created_at)."""
    request: GenerationRequest = ctx.request
    rig_id = str(request.options.get("rig_task_id") or "")
    if not rig_id:
        raise InputError("This character has no Meshy rig task: rig it with Marionette first")
    keys = animate(ctx, rig_id, request.animations, start=0.0, end=0.9)
    ctx.download_assets(animation_assets(ctx, keys), refresh_url=lambda a: refresh_url(ctx, a))


def check_rig_age(created_at: float | None, now: float | None = None) -> None:
    """Refuse before paying when the rig is older than Meshy keeps rig tasks."""
    if not created_at:
        return
    age = (now or time.time()) - created_at
    if age > RIG_RETENTION_SECONDS:
        days = age / 86400
        raise InputError(f"This character was rigged {days:.1f} days ago and Meshy keeps rig tasks for 3 days: "
                         "rig it again to add animations.")
