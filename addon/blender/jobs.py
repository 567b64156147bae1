"""Main-thread job actions shared by the operators, the pump and the scripting API."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bpy

from ..core.errors import ConfigError, ImportFailed, InputError
from ..core.models import AnimationChoice, GenerationRequest, InputKind, Job, JobState
from ..core.runner import InputFile
from . import session, timer

log = logging.getLogger(__name__)

JOB_ID_PROP = "marionette_job_id"
RIG_TASK_PROP = "marionette_rig_task_id"


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
) -> Job:
    current = session.get()
    if provider_id not in current.providers:
        raise InputError(f"Unknown provider {provider_id!r}; known: {', '.join(current.providers)}")
    problem = current.problem(provider_id)
    if problem:
        raise ConfigError(problem)
    request = GenerationRequest(provider=provider_id, kind=kind, name=name or "Character", prompt=prompt,
                                rig=rig, animations=list(animations), options=dict(options or {}))
    current.runner.online_access = bpy.app.online_access
    job = current.runner.submit(request, current.config(provider_id), files)
    current.auto_import.add(job.id)
    timer.ensure_running()
    return job


def cancel(job_id: str) -> None:
    current = session.get()
    job = current.store.get(job_id)
    config = None if current.problem(job.provider) else current.config(job.provider)
    current.runner.cancel(job_id, config)
    current.auto_import.discard(job_id)
    timer.ensure_running()


def import_job(job_id: str, context: bpy.types.Context | None = None) -> Job:
    """Import a finished job's files into the current scene; on failure the scene is unchanged."""
    from . import importer  # bpy-heavy; loaded when first needed

    current = session.get()
    current.auto_import.discard(job_id)
    job = current.store.get(job_id)
    if job.state is not JobState.SUCCEEDED:
        raise InputError(f"Job {job.request.name!r} has nothing to import yet ({job.state.value.lower()})")
    main = job.asset("rigged") or job.asset("model")
    if main is None or not main.path or not Path(main.path).is_file():
        raise InputError(f"The result files of {job.request.name!r} are missing from {current.store.job_dir(job_id)}")
    chosen = [f"anim:{c.action_id}" for c in job.request.animations]
    basics = [a.key for a in job.assets if a.role == "animation" and a.key not in chosen]
    animations = []
    for key in chosen + basics:
        asset = job.asset(key)
        if asset and asset.path:
            animations.append((asset.name, Path(asset.path)))
    ctx = context or bpy.context
    try:
        result = importer.import_character(Path(main.path), animations, collection_name=job.request.name,
                                           location=tuple(ctx.scene.cursor.location), context=ctx)
    except ImportFailed as exc:
        message = str(exc)
        current.store.update(job_id, lambda j: setattr(j, "import_error", message))
        current.runner.events.put(job_id)
        raise
    if result.armature:
        armature = bpy.data.objects[result.armature]
        armature[JOB_ID_PROP] = job.id
        rig = job.task("rig")
        if rig and rig.remote_id:
            armature[RIG_TASK_PROP] = rig.remote_id

    def record(j: Job) -> None:
        j.imported, j.import_error = True, None
        j.collection, j.armature = result.collection, result.armature
        j.objects, j.actions = list(result.objects), list(result.actions)
        j.stage = "Imported"

    job = current.store.update(job_id, record)
    current.runner.events.put(job_id)
    log.info("imported job %s: %s", job_id, ", ".join(result.objects))
    return job


def forget(job_id: str) -> None:
    """Remove a finished job from the list (its files stay in the user folder)."""
    current = session.get()
    job = current.store.get(job_id)
    if job.state.active:
        raise InputError("Cancel the job before removing it from the list")
    current.store.remove(job_id)
