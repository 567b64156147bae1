"""Meshy's character pipelines: a generated model rigged (remeshed first when Meshy refuses its face count),
the artist's own mesh rigged ("rig_mesh"), and animations added to a rig made earlier ("add_animations").
One animation task per action; every request goes through ``meshy_api``.
"""

from __future__ import annotations

import base64
from functools import partial
from typing import Any

from ..errors import InputError, ProviderError
from ..images import PNG_MAGIC
from ..models import AnimationChoice, Asset, GenerationRequest, Job, TaskStatus
from .context import ProviderContext, task_of
from .meshy_api import (
    ANIMATION_KEY,
    ANIMATION_PATH,
    FACE_LIMIT_HINT,
    MAX_RIG_FACES,
    REMESH_CREDITS,
    REMESH_PATH,
    REMESHABLE,
    RIG_PATH,
    RIG_POLYCOUNT,
    create,
    fetch,
    find_created,
    glb_data_uri,
    refresh_url,
    stage,
)
from .meshy_api import check_rig_age as check_rig_age  # the Blender layer's import, until it asks the provider


def animation_body(rig_id: str, choice: AnimationChoice, fps: int) -> dict[str, Any]:
    body: dict[str, Any] = {"rig_task_id": rig_id, "action_id": choice.action_id}
    if fps:
        body["post_process"] = {"operation_type": "change_fps", "fps": fps}
    return body


def rig(ctx: ProviderContext, rig_input: dict[str, Any], *, start: float, end: float) -> str:
    """Create (once) and wait for the rig task; returns its id."""
    ctx.set_stage("Rig: submitting", start)
    body = {**rig_input, "height_meters": float(ctx.request.options.get("height_meters", 1.7))}
    rig_id: str = ctx.submit_once("rig", "Rig", lambda: create(ctx, RIG_PATH, body))  # no list to search
    ctx.poll(["rig"], lambda t: fetch(ctx, t), on_change=lambda job: stage(ctx, "Rig", "rig", start, end))
    return rig_id


def rig_model(ctx: ProviderContext, model_key: str, model_id: str, *, start: float, end: float) -> str:
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


def animate(ctx: ProviderContext, rig_id: str, choices: list[AnimationChoice], *, start: float,
            end: float) -> list[str]:
    """Create (once) one animation task per choice and wait for all; returns their task keys."""
    fps = int(ctx.request.options.get("animation_fps", 0) or 0)
    keys = []
    for index, choice in enumerate(choices):
        key = f"{ANIMATION_KEY}{choice.action_id}"
        ctx.set_stage(f"Animation {index + 1} of {len(choices)}: submitting", start)
        body = animation_body(rig_id, choice, fps)
        ctx.submit_once(key, choice.name, partial(create, ctx, ANIMATION_PATH, body))
        keys.append(key)
    if keys:
        def progress(job: Job) -> None:
            tasks = [job.task(k) for k in keys]
            done = sum(1 for t in tasks if t and t.progress >= 100)
            mean = sum(t.progress for t in tasks if t) / len(tasks)
            ctx.set_stage(f"Animation {min(done + 1, len(keys))} of {len(keys)}: {int(mean)}%",
                          start + (end - start) * mean / 100)

        ctx.poll(keys, lambda t: fetch(ctx, t), on_change=progress)
    return keys


def animation_assets(ctx: ProviderContext, keys: list[str]) -> list[Asset]:
    names = {f"{ANIMATION_KEY}{c.action_id}": c.name for c in ctx.request.animations}
    assets = []
    for key in keys:
        urls = task_of(ctx, key).result_urls
        url = (urls.get("processed_animation_fps_fbx_url") if ctx.request.options.get("animation_fps") else None) \
            or urls.get("animation_glb_url") or urls.get("animation_fbx_url")
        if not url:
            raise ProviderError(f"Meshy finished the animation {names[key]} but gave no file link")
        assets.append(Asset(key=key, role="animation", name=names[key], url=url, source_task=key))
    return assets


def character_assets(ctx: ProviderContext) -> list[Asset]:
    """The rigged character and Meshy's basic walking/running that come with every rig."""
    urls = task_of(ctx, "rig").result_urls
    main = urls.get("rigged_character_glb_url") or urls.get("rigged_character_fbx_url")
    if not main:
        raise ProviderError("Meshy finished rigging but gave no rigged character link")
    assets = [Asset(key="rigged", role="rigged", name="Character", url=main, source_task="rig")]
    for basic, name in (("walking_glb_url", "Walking"), ("running_glb_url", "Running")):
        if urls.get(basic):
            assets.append(Asset(key=f"{ANIMATION_KEY}{name}", role="animation", name=name, url=urls[basic],
                                source_task="rig"))
    return assets


def run_mesh(ctx: ProviderContext) -> None:
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


def run_add_animations(ctx: ProviderContext) -> None:
    """More animations for a rig made earlier (options: rig_task_id, rig_created_at)."""
    request: GenerationRequest = ctx.request
    rig_id = str(request.options.get("rig_task_id") or "")
    if not rig_id:
        raise InputError("This character has no Meshy rig task: rig it with Marionette first")
    keys = animate(ctx, rig_id, request.animations, start=0.0, end=0.9)
    ctx.download_assets(animation_assets(ctx, keys), refresh_url=lambda a: refresh_url(ctx, a))

