"""Meshy (https://docs.meshy.ai): image to 3D, then auto-rigging, then one animation task per action.

Pipeline for an image job with "Rig & animate": image-to-3d -> rigging (input_task_id) -> animations
(rig_task_id, action_id) -> download the rigged GLB, the basic walking/running GLBs and every
animation GLB. Each remote task is created once (the journal remembers its id) and polled.
"""

from __future__ import annotations

import base64
import logging
from typing import Any, ClassVar

from ..errors import InputError, ProviderError
from ..formats import sniff_bytes
from ..models import AnimationChoice, Asset, GenerationRequest, InputKind, JobState, RemoteTask
from .base import OptionSpec, Provider, TaskSnapshot

log = logging.getLogger(__name__)

_STATES = {
    "PENDING": JobState.PENDING,
    "IN_PROGRESS": JobState.RUNNING,
    "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "CANCELED": JobState.CANCELED,
}

# A starting set from Meshy's animation library (action_id, name); the full browser comes later.
COMMON_ANIMATIONS = (
    AnimationChoice(action_id=0, name="Idle"),
    AnimationChoice(action_id=30, name="Casual_Walk"),
    AnimationChoice(action_id=14, name="Run_02"),
    AnimationChoice(action_id=2, name="Alert"),
    AnimationChoice(action_id=4, name="Attack"),
    AnimationChoice(action_id=92, name="Double_Combo_Attack"),
    AnimationChoice(action_id=22, name="FunnyDancing_01"),
    AnimationChoice(action_id=59, name="Victory_Cheer"),
    AnimationChoice(action_id=8, name="Dead"),
)

# Endpoint paths by task key prefix.
_PATHS = {"image": "/openapi/v1/image-to-3d", "rig": "/openapi/v1/rigging", "anim": "/openapi/v1/animations"}

_IMAGE = frozenset({"image"})


class MeshyProvider(Provider):
    id: ClassVar[str] = "meshy"
    label: ClassVar[str] = "Meshy"
    default_base_url: ClassVar[str] = "https://api.meshy.ai"
    inputs: ClassVar[frozenset[InputKind]] = frozenset({"image"})
    supports_rig: ClassVar[bool] = True
    common_animations: ClassVar[tuple[AnimationChoice, ...]] = COMMON_ANIMATIONS
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("ai_model", "AI Model", "enum", "latest", "Meshy model generation",
                   items=(("latest", "Latest (Meshy 6)", "Meshy's newest model"),
                          ("meshy-6", "Meshy 6", ""), ("meshy-5", "Meshy 5", "Cheaper, older model"))),
        OptionSpec("should_texture", "Texture", "bool", True, "Generate textures (costs more credits)"),
        OptionSpec("enable_pbr", "PBR Maps", "bool", False, "Metallic, roughness and normal maps",
                   depends_on=("should_texture", True)),
        OptionSpec("should_remesh", "Remesh", "bool", False, "Rebuild the topology"),
        OptionSpec("topology", "Topology", "enum", "triangle", "Faces of the remeshed model",
                   items=(("triangle", "Triangles", ""), ("quad", "Quads", "")),
                   depends_on=("should_remesh", True)),
        OptionSpec("target_polycount", "Target Polycount", "int", 30000, "Faces after remeshing",
                   min=100, max=300000, depends_on=("should_remesh", True)),
        OptionSpec("pose_mode", "Pose", "enum", "a-pose", "Generate the character in this pose (helps rigging)",
                   items=(("a-pose", "A-Pose", ""), ("t-pose", "T-Pose", ""), ("", "As In Image", ""))),
        OptionSpec("height_meters", "Height (m)", "float", 1.7, "Character height for rigging",
                   min=0.1, max=100.0),
    )

    @staticmethod
    def auth_header(api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        if request.options.get("enable_pbr") and not request.options.get("should_texture"):
            raise InputError("PBR maps need textures: turn on Texture or turn off PBR Maps")
        if len(request.inputs) != 1 and request.inputs:
            raise InputError("Meshy image to 3D takes exactly one image")

    def cost(self, request: GenerationRequest) -> float | None:
        opts = request.options
        new_model = opts.get("ai_model", "latest") in ("latest", "meshy-6")
        textured = bool(opts.get("should_texture", True))
        model = (30 if textured else 20) if new_model else (15 if textured else 5)
        if not request.rig:
            return model
        return model + 5 + 3 * len(request.animations)

    # -- pipeline ----------------------------------------------------------------------------------

    def run(self, ctx: Any) -> None:
        request: GenerationRequest = ctx.request
        opts = request.options
        n_anims = len(request.animations)

        ctx.set_stage("Model: submitting", 0.0)
        model_id = ctx.submit_once("image", "Model", lambda: self._create_image_task(ctx))
        ctx.poll(["image"], lambda t: self._fetch(ctx, t),
                 on_change=lambda job: self._stage(ctx, "Model", "image", 0.0, 0.5 if request.rig else 0.9))
        if not request.rig:
            model = ctx.job().task("image")
            url = model.result_urls.get("glb")
            if not url:
                raise ProviderError("Meshy finished the model but gave no GLB link")
            ctx.download_assets([Asset(key="model", role="model", name="Model", url=url, source_task="image")])
            return

        ctx.set_stage("Rig: submitting", 0.5)
        rig_id = ctx.submit_once("rig", "Rig", lambda: self._create(ctx, "rig", {
            "input_task_id": model_id, "height_meters": float(opts.get("height_meters", 1.7))}))
        ctx.poll(["rig"], lambda t: self._fetch(ctx, t),
                 on_change=lambda job: self._stage(ctx, "Rig", "rig", 0.5, 0.65))

        keys = []
        for index, choice in enumerate(request.animations):
            key = f"anim:{choice.action_id}"
            ctx.set_stage(f"Animation {index + 1} of {n_anims}: submitting", 0.65)
            ctx.submit_once(key, choice.name, lambda choice=choice: self._create(ctx, "anim", {
                "rig_task_id": rig_id, "action_id": choice.action_id}))
            keys.append(key)
        if keys:
            ctx.poll(keys, lambda t: self._fetch(ctx, t), on_change=lambda job: self._anim_stage(ctx, keys))
        ctx.download_assets(self._rig_assets(ctx, keys), refresh_url=lambda a: self._refresh(ctx, a))

    def _stage(self, ctx: Any, label: str, key: str, start: float, end: float) -> None:
        task = ctx.job().task(key)
        if task is None:
            return
        queued = f"{label}: queued ({task.queue_position} ahead)"
        text = queued if task.queue_position else f"{label}: {task.progress}%"
        ctx.set_stage(text, start + (end - start) * task.progress / 100)

    def _anim_stage(self, ctx: Any, keys: list[str]) -> None:
        job = ctx.job()
        tasks = [job.task(k) for k in keys]
        done = sum(1 for t in tasks if t and t.progress >= 100)
        mean = sum(t.progress for t in tasks if t) / max(1, len(tasks))
        current = min(done + 1, len(keys))
        ctx.set_stage(f"Animation {current} of {len(keys)}: {int(mean)}%", 0.65 + 0.25 * mean / 100)

    def _rig_assets(self, ctx: Any, anim_keys: list[str]) -> list[Asset]:
        job = ctx.job()
        rig = job.task("rig")
        urls = rig.result_urls
        main = urls.get("rigged_character_glb_url") or urls.get("rigged_character_fbx_url")
        if not main:
            raise ProviderError("Meshy finished rigging but gave no rigged character link")
        assets = [Asset(key="rigged", role="rigged", name="Character", url=main, source_task="rig")]
        for basic, name in (("walking_glb_url", "Walking"), ("running_glb_url", "Running")):
            if urls.get(basic):
                assets.append(Asset(key=f"anim:{name}", role="animation", name=name, url=urls[basic],
                                    source_task="rig"))
        names = {f"anim:{c.action_id}": c.name for c in ctx.request.animations}
        for key in anim_keys:
            task = job.task(key)
            url = task.result_urls.get("animation_glb_url") or task.result_urls.get("animation_fbx_url")
            if not url:
                raise ProviderError(f"Meshy finished the animation {names[key]} but gave no file link")
            assets.append(Asset(key=key, role="animation", name=names[key], url=url, source_task=key))
        return assets

    # -- wire format -------------------------------------------------------------------------------

    def _create_image_task(self, ctx: Any) -> str:
        data = ctx.input_path(0).read_bytes()
        kind = sniff_bytes(data[:32])
        if kind not in ("png", "jpeg"):
            raise InputError("Meshy takes PNG or JPEG images")
        opts = dict(ctx.request.options)
        body: dict[str, Any] = {
            "image_url": f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}",
            "ai_model": opts["ai_model"],
            "should_texture": opts["should_texture"],
            "enable_pbr": opts["enable_pbr"] and opts["should_texture"],
            "should_remesh": opts["should_remesh"],
            "pose_mode": opts["pose_mode"],
            "target_formats": ["glb"],
        }
        if opts["should_remesh"]:
            body["topology"] = opts["topology"]
            body["target_polycount"] = opts["target_polycount"]
        return self._create(ctx, "image", body)

    def _create(self, ctx: Any, kind: str, body: dict[str, Any]) -> str:
        try:
            response = ctx.client.request("POST", _PATHS[kind], json=body)
        except ProviderError as exc:
            if exc.status == 422 and kind == "rig":
                raise ProviderError(
                    "Meshy could not find a humanoid pose in this model (422). Rigging works on clear, "
                    "textured, two-legged characters standing upright.", status=422) from exc
            raise
        result = response.json().get("result")
        if not isinstance(result, str) or not result:
            raise ProviderError(f"Meshy accepted the request but returned no task id: {response.text[:200]}")
        return result

    def _fetch(self, ctx: Any, task: RemoteTask) -> TaskSnapshot:
        path = _PATHS[task.key.split(":", 1)[0]]
        data = ctx.client.request("GET", f"{path}/{task.remote_id}").json()
        return snapshot(data)

    def _refresh(self, ctx: Any, asset: Asset) -> str:
        """A fresh signed URL for an asset whose link expired: re-read its task."""
        task = ctx.job().task(asset.source_task)
        snap = self._fetch(ctx, task)
        old_name = asset.url.split("?", 1)[0].rsplit("/", 1)[-1]
        for url in snap.result_urls.values():
            if url.split("?", 1)[0].rsplit("/", 1)[-1] == old_name:
                return url
        raise ProviderError(f"Meshy no longer offers {asset.name}; results are kept for 3 days")

    def cancel_remote(self, ctx: Any) -> None:
        for task in ctx.job().tasks:
            if task.remote_id and task.status.value in ("submitted",):
                path = _PATHS[task.key.split(":", 1)[0]]
                ctx.client.request("DELETE", f"{path}/{task.remote_id}")
                log.info("cancelled %s task %s on Meshy", task.key, task.remote_id)


def snapshot(data: dict[str, Any]) -> TaskSnapshot:
    """Map a Meshy task object (any type) to the common shape."""
    status = str(data.get("status", ""))
    state = _STATES.get(status)
    if state is None:
        raise ProviderError(f"Meshy reported an unknown task status {status!r}")
    urls: dict[str, str] = {}
    for name, value in (data.get("model_urls") or {}).items():
        if isinstance(value, str) and value:
            urls[name] = value
    result = data.get("result") or {}
    if isinstance(result, dict):
        for name, value in result.items():
            if isinstance(value, str) and value:
                urls[name] = value
        for name, value in (result.get("basic_animations") or {}).items():
            if isinstance(value, str) and value:
                urls[name] = value
    error = data.get("task_error") or {}
    message = error.get("message") if isinstance(error, dict) else None
    code = (error.get("code") or error.get("type")) if isinstance(error, dict) else None
    queue = data.get("preceding_tasks")
    return TaskSnapshot(
        state=state,
        progress=int(data.get("progress") or 0),
        queue_position=int(queue) if isinstance(queue, int) and state is JobState.PENDING else None,
        result_urls=urls,
        error=message or None,
        error_code=code if state is JobState.FAILED else None,
    )
