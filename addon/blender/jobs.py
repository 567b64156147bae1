"""Main-thread job actions shared by the operators, the pump and the scripting API."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bpy

from ..core.errors import ConfigError, ImportFailed, InputError
from ..core.models import AnimationChoice, GenerationRequest, InputKind, Job, JobState, Placement
from ..core.runner import InputFile
from . import exporter, session

log = logging.getLogger(__name__)

JOB_ID_PROP = "marionette_job_id"
RIG_TASK_PROP = "marionette_rig_task_id"
RIG_CREATED_PROP = "marionette_rig_created_at"
# Which provider made the rig (characters imported before this was recorded: the one that adds animations).
RIG_PROVIDER_PROP = "marionette_rig_provider"


def _ready(provider_id: str) -> session.Session:
    """The session, once the provider is known and can be reached (key, online access): else why not."""
    current = session.get()
    if provider_id not in current.providers:
        raise InputError(f"Unknown provider {provider_id!r}; known: {', '.join(current.providers)}")
    problem = current.problem(provider_id) or current.apply_download_limit()
    if problem:
        raise ConfigError(problem)
    return current


def submit(
    provider_id: str,
    *,
    kind: InputKind,
    name: str,
    files: Sequence[InputFile] = (),
    prompt: str | None = None,
    rig: bool = False,
    animations: Sequence[AnimationChoice] = (),
    options: dict[str, Any] | None = None,
    placement: Placement | None = None,
    height: float | None = None,
    in_place: bool = False,
) -> Job:
    current = _ready(provider_id)
    placement = placement or Placement()
    if height is not None and not height > 0:
        raise InputError(f"The height must be a positive number of metres, not {height!r}")
    placement = placement.model_copy(update={"in_place": in_place or placement.in_place,
                                             "height": float(height) if height is not None else placement.height})
    note = None
    if kind in ("image", "multi_image") and files:
        provider = current.providers[provider_id]
        fitted, note = exporter.fit_images([(f.name, f.data) for f in files],
                                           provider.max_image_side, provider.label)
        files = [InputFile(name, data) for name, data in fitted]
    request = GenerationRequest(provider=provider_id, kind=kind, name=name or "Character", prompt=prompt,
                                rig=rig, animations=list(animations), options=dict(options or {}),
                                placement=placement)
    current.runner.online_access = bpy.app.online_access
    job = current.runner.submit(request, current.config(provider_id), files, note=note)
    current.auto_import.add(job.id)
    return job


def submit_mesh(
    context: bpy.types.Context,
    objects: list[bpy.types.Object],
    *,
    provider_id: str | None = None,
    name: str = "",
    facing: str = "-Y",
    height: float | None = None,
    hide_original: bool = True,
    animations: Sequence[AnimationChoice] = (),
    options: dict[str, Any] | None = None,
    in_place: bool = False,
) -> Job:
    """Rig (and animate) the artist's mesh(es): exported joined to GLB, the scene untouched, with the
    provider that rigs meshes (or the one named). The result gets the height sent with it."""
    current = session.get()
    provider = current.provider_for("rig_mesh", provider_id)
    provider_id = provider.id
    problem = current.problem(provider_id)
    if problem:  # before exporting anything
        raise ConfigError(problem)
    opts = dict(options or {})
    exporter.check_meshes(objects)
    faces = exporter.face_count(context, objects)
    limit = provider.max_rig_faces
    if limit is not None and faces > limit and not opts.get("remesh_first"):
        remesh = "Turn on Remesh First (with a target polycount) or decimate" if provider.can("remesh") else "Decimate"
        raise InputError(f"{objects[0].name} has {faces:,} faces; {provider.label} rigs up to {limit:,}. "
                         f"{remesh} the mesh.")
    exported = exporter.export_meshes(context, objects, facing)
    height_option = provider.rig_height_option
    stated = round(height if height else exported.height, 3)
    if stated <= 0:
        raise InputError(f"{objects[0].name} is flat (no height): {provider.label} needs a standing character")
    if height_option:
        opts[height_option] = stated
    files = [InputFile("character.glb", exported.glb)]
    if exported.texture:
        files.append(InputFile("base_color.png", exported.texture))
    placement = Placement(location=exported.location, rotation_z=-exported.rotation_z,
                          source_objects=[o.name for o in objects], hide_source=hide_original)
    return submit(provider_id, kind="mesh", name=name or objects[0].name, files=files, rig=True,
                  animations=animations, options=opts, placement=placement, in_place=in_place)


def rigged_by_marionette(obj: bpy.types.Object | None) -> bool:
    return bool(obj is not None and obj.type == "ARMATURE" and obj.get(RIG_TASK_PROP))


def rig_provider(armature: bpy.types.Object) -> str | None:
    """The id of the provider that rigged a Marionette character, where it was recorded."""
    value = armature.get(RIG_PROVIDER_PROP)
    return str(value) if value else None


def submit_add_animations(
    armature: bpy.types.Object,
    animations: Sequence[AnimationChoice],
    *,
    provider_id: str | None = None,
    options: dict[str, Any] | None = None,
    in_place: bool = False,
) -> Job:
    """More animations for a character Marionette rigged, without rigging it again (by the provider that
    rigged it, else the one that adds animations)."""
    if not rigged_by_marionette(armature):
        raise InputError(f"{armature.name} was not rigged by Marionette: select a character it rigged")
    if not animations:
        raise InputError("Choose at least one animation to add")
    current = session.get()
    provider = current.provider_for("add_animations", provider_id or rig_provider(armature))
    created = armature.get(RIG_CREATED_PROP)
    provider.check_rig_age(float(created) if created else None)
    provider_id = provider.id
    opts = dict(options or {})
    opts["rig_task_id"] = str(armature[RIG_TASK_PROP])
    return submit(provider_id, kind="armature", name=f"{armature.name} animations", rig=True,
                  animations=animations, options=opts, placement=Placement(target_armature=armature.name),
                  in_place=in_place)


def _target_armature(job: Job) -> str:
    """The armature that receives an "armature" job's animations, even if it was renamed since."""
    rig_id = job.request.options.get("rig_task_id")
    for obj in bpy.data.objects:
        if obj.type == "ARMATURE" and rig_id and obj.get(RIG_TASK_PROP) == rig_id:
            return obj.name
    return job.request.placement.target_armature or ""


def cancel(job_id: str) -> None:
    current = session.get()
    job = current.store.get(job_id)
    config = None if current.problem(job.provider) else current.config(job.provider)
    current.runner.cancel(job_id, config)
    current.auto_import.discard(job_id)


def record_import_error(job_id: str, message: str) -> None:
    """Say on the job why its import failed (the panel shows it; api.wait stops waiting for the import)."""
    current = session.get()

    def record(j: Job) -> None:
        j.import_error = message

    current.store.update(job_id, record)
    current.runner.events.put(job_id)


def import_job(job_id: str, context: bpy.types.Context | None = None) -> Job:
    """Import a finished job's files into the current scene; on failure the scene is unchanged."""
    from . import importer  # bpy-heavy; loaded when first needed

    current = session.get()
    current.auto_import.discard(job_id)
    job = current.store.get(job_id)
    if job.state is not JobState.SUCCEEDED:
        raise InputError(f"Job {job.request.name!r} has nothing to import yet ({job.state.value.lower()})")
    provider = current.providers[job.provider]
    animations = [(asset.name, Path(asset.path)) for asset in provider.animation_files(job) if asset.path]
    ctx = context or bpy.context
    if job.request.kind == "armature":
        return _import_added_animations(job, animations, ctx)
    if any(a.role == "image" for a in job.assets):
        return _load_images(job, ctx)
    main = provider.main_file(job)
    if main is None or not main.path or not Path(main.path).is_file():
        raise InputError(f"The result files of {job.request.name!r} are missing from {current.store.job_dir(job_id)}")
    placement = job.request.placement
    location = placement.location or _xyz(ctx.scene.cursor.location)
    try:
        result = importer.import_character(Path(main.path), animations, collection_name=job.request.name,
                                           location=location, rotation_z=placement.rotation_z, context=ctx,
                                           scene_fit=scene_fit(job))
    except ImportFailed as exc:
        record_import_error(job_id, str(exc))
        raise
    if result.armature:
        armature = bpy.data.objects[result.armature]
        armature[JOB_ID_PROP] = job.id
        if rig := provider.rig_of(job):
            armature[RIG_TASK_PROP], armature[RIG_CREATED_PROP] = rig
            armature[RIG_PROVIDER_PROP] = job.provider
    if placement.hide_source:
        for name in placement.source_objects:
            source = bpy.data.objects.get(name)
            if source is not None:  # hidden, not deleted: the artist can compare and undo
                source.hide_render = True
                if source.name in ctx.view_layer.objects:
                    source.hide_set(True)

    def record(j: Job) -> None:
        j.imported, j.import_error = True, None
        j.collection, j.armature = result.collection, result.armature
        j.objects, j.actions = list(result.objects), list(result.actions)
        j.stage = "Imported"

    job = current.store.update(job_id, record)
    current.runner.events.put(job_id)
    prefs = current.preferences()
    if getattr(prefs, "mark_as_asset", False):
        mark_as_asset(job)
    if not job.thumbnail and not bpy.app.background:
        # No picture from the provider or the artist: let Blender render one. In the interface this is
        # Blender's own asynchronous preview job; without a window it would block, so it is skipped.
        target = bpy.data.objects.get(job.armature or "") or next(
            (bpy.data.objects[n] for n in job.objects if n in bpy.data.objects), None)
        if target is not None:
            target.asset_generate_preview()
    log.info("imported job %s: %s", job_id, ", ".join(result.objects))
    return job


def scene_fit(job: Job) -> Any:
    """How the job's character is fitted to the scene: the Height setting, else the height the provider
    was asked for (a rig made to a stated height), else as delivered; the provider's front."""
    from . import importer

    placement, request = job.request.placement, job.request
    height = placement.height
    stated = None
    provider = session.get().providers.get(job.provider)
    option = provider.rig_height_option if provider is not None else None
    if provider is not None and option and request.rig:  # the rig is made this tall
        spec = next((o for o in provider.options if o.name == option), None)
        stated = request.options.get(option, spec.default if spec is not None else None)
    if height is None and isinstance(stated, int | float) and stated > 0:
        height = float(stated)
    return importer.SceneFit(height=height, facing=provider.result_front if provider is not None else None,
                             recentre=placement.location is None, in_place=placement.in_place)


def _import_added_animations(job: Job, animations: list[tuple[str, Path]], ctx: bpy.types.Context) -> Job:
    from . import importer

    current = session.get()
    target = _target_armature(job)
    try:
        added = importer.add_animations(target, animations, context=ctx, in_place=job.request.placement.in_place)
    except ImportFailed as exc:
        record_import_error(job.id, str(exc))
        raise

    def record(j: Job) -> None:
        j.imported, j.import_error, j.stage = True, None, "Imported"
        j.armature, j.objects, j.actions = target, [target], added

    updated = current.store.update(job.id, record)
    current.runner.events.put(job.id)
    return updated


def _load_images(job: Job, ctx: bpy.types.Context) -> Job:
    """An "images" result (Claid scenes): load each picture, show the first in an Image Editor."""
    current = session.get()
    names: list[str] = []
    for asset in job.assets:
        if asset.role != "image" or not asset.path or not Path(asset.path).is_file():
            continue
        try:
            image = bpy.data.images.load(asset.path, check_existing=True)
        except RuntimeError as exc:
            raise ImportFailed(f"Blender could not read the picture {Path(asset.path).name}: {exc}") from exc
        image.name = f"{job.request.name} {len(names) + 1}"
        names.append(image.name)
    if not names:
        raise InputError(f"The pictures of {job.request.name!r} are missing from {current.store.job_dir(job.id)}")
    screen = ctx.screen
    for area in screen.areas if screen else ():
        if area.type == "IMAGE_EDITOR":
            area.spaces.active.image = bpy.data.images[names[0]]
            break

    def record(j: Job) -> None:
        j.imported, j.import_error, j.stage = True, None, f"Loaded {len(names)} image(s)"
        j.images = names

    updated = current.store.update(job.id, record)
    current.runner.events.put(job.id)
    return updated


def use_as_reference(image_name: str, context: bpy.types.Context) -> bpy.types.Object:
    """A reference image empty showing the picture, at the 3D cursor, selected and active."""
    image = bpy.data.images[image_name]
    empty = bpy.data.objects.new(image.name, None)
    empty.empty_display_type = "IMAGE"
    empty.data = image  # type: ignore[assignment]  # an image empty holds an Image
    empty.empty_display_size = 2.0
    empty.location = context.scene.cursor.location
    empty.rotation_euler = (1.5707963, 0.0, 0.0)  # upright, facing the front view
    context.collection.objects.link(empty)
    for obj in context.view_layer.objects:
        obj.select_set(False)
    empty.select_set(True)
    context.view_layer.objects.active = empty
    return empty


def use_as_camera_background(image_name: str, context: bpy.types.Context) -> bpy.types.Camera:
    camera = context.scene.camera
    if camera is None or camera.type != "CAMERA":
        raise InputError("The scene has no camera to put the picture behind")
    data = camera.data
    assert isinstance(data, bpy.types.Camera)
    background = data.background_images.new()
    background.image = bpy.data.images[image_name]
    data.show_background_images = True
    return data


def _xyz(vector: Any) -> tuple[float, float, float]:
    return (float(vector.x), float(vector.y), float(vector.z))


def retry(job_id: str) -> Job:
    current = session.get()
    job = current.store.get(job_id)
    problem = current.problem(job.provider)
    if problem:
        raise ConfigError(problem)
    current.runner.online_access = bpy.app.online_access
    job = current.runner.retry(job_id, current.config(job.provider))
    current.auto_import.add(job_id)
    return job


def recover(provider_id: str, task_id: str, name: str = "") -> Job:
    """Download and import the result of a task generated elsewhere, while the provider keeps it."""
    current = _ready(provider_id)
    task_id = task_id.strip()
    if not task_id:
        raise InputError("Paste the task id to recover")
    current.runner.online_access = bpy.app.online_access
    job = current.runner.recover(provider_id, task_id, name, current.config(provider_id))
    current.auto_import.add(job.id)
    return job


def mark_as_asset(job: Job) -> None:
    """Mark the imported character's collection as an asset, with the job's picture as its preview."""
    collection = bpy.data.collections.get(job.collection or "")
    if collection is None:
        return
    collection.asset_mark()
    if job.thumbnail and Path(job.thumbnail).is_file():
        with bpy.context.temp_override(id=collection):
            try:
                bpy.ops.ed.lib_id_load_custom_preview(filepath=job.thumbnail)
            except RuntimeError as exc:  # no preview is better than no asset
                log.info("no asset preview for %s: %s", collection.name, exc)
    if collection.asset_data is not None:
        collection.asset_data.description = f"Made by Marionette with {job.provider} (job {job.id})"
        collection.asset_data.tags.new("Marionette", skip_if_exists=True)


def forget(job_id: str) -> None:
    """Remove a finished job from the list (its files stay in the user folder)."""
    current = session.get()
    job = current.store.get(job_id)
    if job.state.active:
        raise InputError("Cancel the job before removing it from the list")
    current.store.remove(job_id)
