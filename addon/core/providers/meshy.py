"""Meshy (https://docs.meshy.ai): image, several images or a prompt to 3D, then auto-rigging, then one
animation task per action.

Pipeline for an image job with "Rig & animate": image-to-3d -> rigging (input_task_id) -> animations
(rig_task_id, action_id) -> download the rigged GLB, the basic walking/running GLBs and every
animation GLB. Several images (1 to 4 views of one object) go to multi-image-to-3d instead; a prompt
goes to text-to-3d twice: a preview (the mesh), then a refine (the texture; skipped when Texture is
off). Each remote task is created once (the journal remembers its id) and polled.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .. import catalog
from ..capabilities import Capability
from ..errors import InputError, ProviderError
from ..formats import sniff_bytes
from ..models import AnimationChoice, Asset, GenerationRequest, InputKind, Job, RemoteTask
from . import meshy_api, meshy_rigging
from .base import OptionSpec, Provider, TaskSnapshot, balance_of
from .context import ProviderContext, task_of

if TYPE_CHECKING:
    from ..catalog import CatalogEntry
    from ..http import ApiClient

log = logging.getLogger(__name__)

# A starting set from Meshy's animation library (action_id, name): the picker's list until the library is
# fetched (it is fetched: "animation_catalog"), and offline.
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

MAX_PROMPT = 600
MAX_VIEWS = 4

_GENERATE: frozenset[InputKind] = frozenset({"image", "multi_image", "text"})
_MESH: frozenset[InputKind] = frozenset({"mesh"})


class MeshyProvider(Provider):
    id: ClassVar[str] = "meshy"
    label: ClassVar[str] = "Meshy"
    default_base_url: ClassVar[str] = "https://api.meshy.ai"
    inputs: ClassVar[frozenset[InputKind]] = frozenset({"image", "multi_image", "text", "mesh", "armature"})
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        "rig", "animations", "animation_catalog", "rig_mesh", "add_animations", "remesh", "recover", "balance"})
    max_images: ClassVar[int] = MAX_VIEWS
    prompt_max_chars: ClassVar[int | None] = MAX_PROMPT
    # No documented limit: larger pictures only make the upload slower and risk the body size limits.
    max_image_side: ClassVar[int | None] = 4096
    max_rig_faces: ClassVar[int | None] = meshy_api.MAX_RIG_FACES
    rig_kept_seconds: ClassVar[float | None] = meshy_api.RIG_RETENTION_SECONDS
    # Meshy documents +Z (glTF's front) for its rigging input; Blender's glTF importer turns it into -Y.
    result_front: ClassVar[str | None] = "-Y"
    rig_height_option: ClassVar[str | None] = "height_meters"
    common_animations: ClassVar[tuple[AnimationChoice, ...]] = COMMON_ANIMATIONS
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("ai_model", "AI Model", "enum", "latest", "Meshy model generation",
                   items=(("latest", "Latest (Meshy 6)", "Meshy's newest model"),
                          ("meshy-6", "Meshy 6", ""), ("meshy-5", "Meshy 5", "Cheaper, older model")),
                   inputs=_GENERATE),
        OptionSpec("should_texture", "Texture", "bool", True, "Generate textures (costs more credits)",
                   inputs=_GENERATE),
        OptionSpec("enable_pbr", "PBR Maps", "bool", False, "Metallic, roughness and normal maps",
                   depends_on=("should_texture", True), inputs=_GENERATE),
        OptionSpec("should_remesh", "Remesh", "bool", False,
                   "Rebuild the topology (always on with Rig: rigging refuses models over 300,000 faces)",
                   inputs=_GENERATE),
        OptionSpec("remesh_first", "Remesh First", "bool", False,
                   "Remesh before rigging (needed over 300,000 faces; 5 credits)", inputs=_MESH),
        OptionSpec("topology", "Topology", "enum", "triangle", "Faces of the remeshed model",
                   items=(("triangle", "Triangles", ""), ("quad", "Quads", "")),
                   depends_on=("should_remesh", True), inputs=_GENERATE),
        OptionSpec("target_polycount", "Target Polycount", "int", 30000, "Faces after remeshing",
                   min=100, max=300000, inputs=_GENERATE | _MESH),
        OptionSpec("pose_mode", "Pose", "enum", "a-pose", "Generate the character in this pose (helps rigging)",
                   items=(("a-pose", "A-Pose", ""), ("t-pose", "T-Pose", ""), ("", "As In Image", "")),
                   inputs=_GENERATE),
        OptionSpec("height_meters", "Height (m)", "float", 1.7, "Character height for rigging",
                   min=0.1, max=100.0, inputs=_GENERATE | _MESH),
        OptionSpec("animation_fps", "Animation FPS", "enum", "0", "Resample the animations (Meshy post-process)",
                   items=(("0", "As Made", "Keep Meshy's frame rate"), ("24", "24", ""), ("25", "25", ""),
                          ("30", "30", ""), ("60", "60", ""))),
        OptionSpec("rig_task_id", "Rig Task", "string", "", "The Meshy rig task of the character",
                   inputs=frozenset({"armature"})),
    )

    @staticmethod
    def auth_header(api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        if request.options.get("enable_pbr") and not request.options.get("should_texture"):
            raise InputError("PBR maps need textures: turn on Texture or turn off PBR Maps")
        if request.kind == "image" and len(request.inputs) != 1 and request.inputs:
            raise InputError("Meshy image to 3D takes exactly one image")
        if request.kind == "multi_image" and request.inputs and not 1 <= len(request.inputs) <= MAX_VIEWS:
            raise InputError(f"Meshy multi-image to 3D takes 1 to {MAX_VIEWS} images, not {len(request.inputs)}")
        if request.rig and request.kind in _GENERATE and not request.options.get("should_texture", True):
            # "We currently support textured humanoid models"; auto-rigging "is not suitable for ...
            # Untextured meshes" (seed 002, Rigging API): refused here, before anything is paid.
            raise InputError("Meshy rigs textured characters only: turn on Texture (10 credits more) or turn off "
                             "Rig & animate. Nothing was sent.")
        meshy_api.check_action_ids(request.animations)

    def cost(self, request: GenerationRequest) -> float | None:
        opts = request.options
        if request.kind == "task":  # recovering a task made elsewhere creates nothing
            return None
        if request.kind == "armature":
            return 3 * len(request.animations)
        if request.kind == "mesh":
            return (5 if opts.get("remesh_first") else 0) + 5 + 3 * len(request.animations)
        new_model = opts.get("ai_model", "latest") in ("latest", "meshy-6")
        textured = bool(opts.get("should_texture", True))
        if request.kind == "text":  # preview, then refine for the texture
            model = (20 if new_model else 5) + (10 if textured else 0)
        else:  # image and multi-image cost the same
            model = (30 if textured else 20) if new_model else (15 if textured else 5)
        if not request.rig:
            return model
        return model + 5 + 3 * len(request.animations)

    def added_steps(self, request: GenerationRequest) -> list[str]:
        if request.kind in _GENERATE and request.rig and not request.options.get("should_remesh"):
            faces = int(request.options.get("target_polycount") or meshy_api.RIG_POLYCOUNT)
            return [f"Rig is on: Marionette turns on Remesh ({faces:,} faces) because Meshy's rigging refuses "
                    f"models over {meshy_api.MAX_RIG_FACES:,} faces (no extra credits in Meshy's price list). "
                    f"Should Meshy's model still be over the limit, it is remeshed before rigging "
                    f"(+{meshy_api.REMESH_CREDITS} credits)."]
        return []

    def task_cost(self, request: GenerationRequest, key: str) -> float | None:
        """Credits one remote task of this job costs (Meshy's price table, seed 002)."""
        kind = key.split(":", 1)[0]
        opts = request.options
        new_model = opts.get("ai_model", "latest") in ("latest", "meshy-6")
        textured = bool(opts.get("should_texture", True))
        prices = {"image": (30 if textured else 20) if new_model else (15 if textured else 5),
                  "preview": 20 if new_model else 5, "refine": 10, "rig": 5, "anim": 3,
                  "remesh": meshy_api.REMESH_CREDITS}
        prices["multi"] = prices["image"]
        return prices.get(kind)

    def in_estimate(self, request: GenerationRequest, key: str) -> bool:
        # A remesh is in cost() only when the artist asked for it first (the selected-mesh flow); the one
        # added when rigging refuses the model's face count is not.
        return key != "remesh" or (request.kind == "mesh" and bool(request.options.get("remesh_first")))

    # -- pipeline ----------------------------------------------------------------------------------

    def run(self, ctx: ProviderContext) -> None:
        request: GenerationRequest = ctx.request
        if request.kind == "mesh":
            meshy_api.check_catalog(ctx, request.animations)
            meshy_rigging.run_mesh(ctx)
            return
        if request.kind == "armature":
            meshy_api.check_catalog(ctx, request.animations)
            meshy_rigging.run_add_animations(ctx)
            return
        if request.kind == "task":
            self.recover(ctx)
            return
        meshy_api.check_catalog(ctx, request.animations)
        end = 0.5 if request.rig else 0.9
        if request.kind == "text":
            model_key, model_id = self._text_model(ctx, end)
        else:
            model_key = "multi" if request.kind == "multi_image" else "image"
            create = self._create_multi_task if model_key == "multi" else self._create_image_task
            ctx.set_stage("Model: submitting", 0.0)
            model_id = ctx.submit_once(model_key, "Model", lambda: create(ctx),
                                       find=lambda sent_at: meshy_api.find_created(ctx, model_key, sent_at))
            ctx.poll([model_key], lambda t: self._fetch(ctx, t),
                     on_change=lambda job: meshy_api.stage(ctx, "Model", model_key, 0.0, end))
        if preview := task_of(ctx, model_key).result_urls.get("thumbnail_url"):
            ctx.download_preview(preview)
        if not request.rig:
            url = task_of(ctx, model_key).result_urls.get("glb")
            if not url:
                raise ProviderError("Meshy finished the model but gave no GLB link")
            ctx.download_assets([Asset(key="model", role="model", name="Model", url=url, source_task=model_key)],
                                refresh_url=lambda a: self._refresh(ctx, a))
            return
        rig_id = meshy_rigging.rig_model(ctx, model_key, model_id, start=0.5, end=0.65)
        keys = meshy_rigging.animate(ctx, rig_id, request.animations, start=0.65, end=0.9)
        assets = meshy_rigging.character_assets(ctx) + meshy_rigging.animation_assets(ctx, keys)
        ctx.download_assets(assets, refresh_url=lambda a: self._refresh(ctx, a))

    # -- wire format -------------------------------------------------------------------------------

    def _create_image_task(self, ctx: ProviderContext) -> str:
        data = ctx.input_path(0).read_bytes()
        kind = sniff_bytes(data[:32])
        if kind not in ("png", "jpeg"):
            raise InputError("Meshy takes PNG or JPEG images")
        body = {"image_url": f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}",
                **_model_options(ctx.request.options, rig=ctx.request.rig)}
        return self._create(ctx, "image", body)

    def _create_multi_task(self, ctx: ProviderContext) -> str:
        files = self.input_files(ctx)
        body = {"image_urls": [meshy_api.png_data_uri(data) for data in files],
                **_model_options(ctx.request.options, rig=ctx.request.rig)}
        return self._create(ctx, "multi", body)

    def _text_model(self, ctx: ProviderContext, end: float) -> tuple[str, str]:
        """Text to 3D: the preview (mesh), then the refine (texture) unless Texture is off."""
        request: GenerationRequest = ctx.request
        opts = dict(request.options)
        prompt = (request.prompt or "").strip()
        if not prompt or len(prompt) > MAX_PROMPT:
            raise InputError(f"Meshy text to 3D needs a prompt of 1 to {MAX_PROMPT} characters")
        textured = bool(opts["should_texture"])
        mid = end / 2 if textured else end
        preview: dict[str, Any] = {"mode": "preview", "prompt": prompt, "ai_model": opts["ai_model"],
                                   "pose_mode": opts["pose_mode"], "target_formats": ["glb"],
                                   **_remesh_options(opts, rig=request.rig)}
        ctx.set_stage("Mesh: submitting", 0.0)
        preview_id = ctx.submit_once("preview", "Mesh", lambda: self._create(ctx, "preview", preview),
                                     find=lambda sent_at: meshy_api.find_created(ctx, "preview", sent_at, prompt))
        ctx.poll(["preview"], lambda t: self._fetch(ctx, t),
                 on_change=lambda job: meshy_api.stage(ctx, "Mesh", "preview", 0.0, mid))
        if not textured:
            return "preview", preview_id
        refine: dict[str, Any] = {"mode": "refine", "preview_task_id": preview_id, "ai_model": opts["ai_model"],
                                  "enable_pbr": opts["enable_pbr"], "target_formats": ["glb"]}
        ctx.set_stage("Texture: submitting", mid)
        refine_id = ctx.submit_once("refine", "Texture", lambda: self._create(ctx, "refine", refine),
                                    find=lambda sent_at: meshy_api.find_created(ctx, "refine", sent_at, prompt))
        ctx.poll(["refine"], lambda t: self._fetch(ctx, t),
                 on_change=lambda job: meshy_api.stage(ctx, "Texture", "refine", mid, end))
        return "refine", refine_id

    def _create(self, ctx: ProviderContext, kind: str, body: dict[str, Any]) -> str:
        return meshy_api.create(ctx, meshy_api.PATHS[kind], body)

    def balance(self, client: ApiClient) -> float | None:
        return balance_of(client.request("GET", meshy_api.BALANCE_PATH).json(), self.label)

    def animation_files(self, job: Job) -> list[Asset]:
        """The animations asked for (one task each), in the order asked, then the walking and running that
        come with every rig."""
        chosen = [f"{meshy_api.ANIMATION_KEY}{c.action_id}" for c in job.request.animations]
        files = [asset for key in chosen if (asset := job.asset(key)) is not None]
        return files + [a for a in job.assets if a.role == "animation" and a.key not in chosen]

    def rig_of(self, job: Job) -> tuple[str, float] | None:
        rig = job.task("rig")
        if rig is None or not rig.remote_id:
            return None
        return rig.remote_id, rig.submitted_at or job.created_at

    def fetch_animation_catalog(self, client: ApiClient) -> list[CatalogEntry]:
        return catalog.fetch_entries(client)

    def _fetch(self, ctx: ProviderContext, task: RemoteTask) -> TaskSnapshot:
        return meshy_api.fetch(ctx, task)

    def _refresh(self, ctx: ProviderContext, asset: Asset) -> str:
        """A fresh signed URL for an asset whose link expired: re-read its task."""
        if asset.source_task in ("image", "multi", "preview", "refine"):
            snap = self._fetch(ctx, task_of(ctx, asset.source_task))
            if snap.result_urls.get("glb"):
                return snap.result_urls["glb"]
        return meshy_api.refresh_url(ctx, asset)

    def recover(self, ctx: ProviderContext) -> None:
        """Find which kind of Meshy task the id is (the id does not say), then fetch its result."""
        task_id = str(ctx.request.options["task_id"])
        ctx.set_stage("Looking up the task", 0.0)
        for key, label in (("image", "Model"), ("multi", "Model"), ("refine", "Model"), ("remesh", "Remesh"),
                           ("rig", "Rig"), ("anim", "Animation")):
            try:
                data = ctx.client.request("GET", f"{meshy_api.PATHS[key]}/{task_id}").json()
            except ProviderError as exc:
                if exc.status in (400, 404):
                    continue
                raise
            self._fetch_recovered(ctx, key, label, task_id, data)
            return
        raise ProviderError(f"Meshy has no task {task_id}: results are kept for 3 days, and only the "
                            "account that made a task can see it")

    def _fetch_recovered(self, ctx: ProviderContext, key: str, label: str, task_id: str, data: Any) -> None:
        """Adopt the task found under `key`, wait for it and download its result."""
        ctx.adopt_task(key, label, task_id)
        tasks = ctx.poll([key], lambda t: self._fetch(ctx, t),
                         on_change=lambda job: meshy_api.stage(ctx, label, key, 0.0, 0.9))
        urls = tasks[key].result_urls
        if urls.get("thumbnail_url"):
            ctx.download_preview(urls["thumbnail_url"])
        if key == "rig":
            assets = meshy_rigging.character_assets(ctx)
        else:
            url = (urls.get("glb") or urls.get("animation_glb_url") or urls.get("fbx")
                   or urls.get("animation_fbx_url"))
            if not url:
                raise ProviderError(f"Meshy task {task_id} has no model file to download")
            role: Literal["rigged", "model"] = "rigged" if key == "anim" else "model"
            name = str(data.get("type") or label) if isinstance(data, dict) else label
            assets = [Asset(key=role, role=role, name=name, url=url, source_task=key)]
        ctx.download_assets(assets, refresh_url=lambda a: self._refresh(ctx, a))

    def cancel_remote(self, ctx: ProviderContext) -> None:
        meshy_api.cancel_tasks(ctx)


def _model_options(opts: dict[str, Any], *, rig: bool = False) -> dict[str, Any]:
    """The generation options image-to-3d and multi-image-to-3d share."""
    return {
        "ai_model": opts["ai_model"],
        "should_texture": opts["should_texture"],
        "enable_pbr": opts["enable_pbr"] and opts["should_texture"],
        "pose_mode": opts["pose_mode"],
        "target_formats": ["glb"],
        **_remesh_options(opts, rig=rig),
    }


def _remesh_options(opts: dict[str, Any], *, rig: bool) -> dict[str, Any]:
    """should_remesh and its settings. With Rig on it is always on: with meshy-6 should_remesh defaults
    to false and "the API returns the highest-precision triangular mesh", which rigging refuses over
    300,000 faces (seed 002). target_polycount (100 to 300,000; default 30,000) keeps it under."""
    remesh = bool(opts["should_remesh"]) or rig
    body: dict[str, Any] = {"should_remesh": remesh}
    if remesh:
        body["topology"] = opts.get("topology", "triangle")
        body["target_polycount"] = int(opts.get("target_polycount") or meshy_api.RIG_POLYCOUNT)
    return body
