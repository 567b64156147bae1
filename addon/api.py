"""Scripting API, for the Python console and `blender -b -P` scripts::

    from bl_ext.user_default.marionette import api
    job_id = api.submit(PROVIDER_ID, image="/path/hero.png", rig=True, animations=["Idle", 92])
    # PROVIDER_ID: a provider id from the README (each provider says what it takes and gives)
    info = api.wait(job_id, timeout=900)      # pumps the same timer callback the UI uses
    print(info.state, info.objects, info.actions)

Every function runs on the main thread. Errors are MarionetteError subclasses with a clear message
(`api.MarionetteError`; `api.ConfigError` when a key, a URL or online access is missing). A script that
drives several jobs itself calls `api.pump()` in its loop (as `wait` does), and finds the jobs of an
earlier run with `api.find_jobs` (scripts/batch.py does both).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import bpy

from .blender import exporter, library, session, timer
from .blender import jobs as _jobs
from .core.errors import ConfigError, InputError, MarionetteError
from .core.models import AnimationChoice, InputKind, JobInfo, JobState
from .core.providers.base import Provider
from .core.runner import InputFile

__all__ = [
    "ConfigError", "InputError", "JobInfo", "JobState", "MarionetteError", "add_animations", "cancel", "export",
    "find_jobs", "get", "import_result", "jobs", "providers", "pump", "recover", "retarget", "retry", "stalled",
    "submit", "wait",
]

ImageArg = str | Path | bpy.types.Image


def submit(
    provider: str,
    *,
    image: ImageArg | list[ImageArg] | None = None,
    mesh: Any = None,
    prompt: str | None = None,
    rig: bool = False,
    animations: Iterable[int | str] = (),
    options: dict[str, Any] | None = None,
    name: str | None = None,
) -> str:
    """Start a job and return its id. The result is imported into the current scene when ready
    (during `wait`, or by the timer in the interface)."""
    current = session.get()
    if provider not in current.providers:
        raise InputError(f"Unknown provider {provider!r}; known: {', '.join(current.providers)}")
    prov = current.providers[provider]
    options = dict(options or {})
    height, in_place = _scene_fit_options(options)
    given = [x for x in (image, mesh, prompt) if x is not None]
    if len(given) != 1:
        raise InputError("Give exactly one of image=, mesh= or prompt=")
    files: list[InputFile] = []
    kind: InputKind
    if image is not None:
        images = image if isinstance(image, list) else [image]
        if not images:
            raise InputError("image= is an empty list")
        for item in images:
            files.append(InputFile(*_image_file(item)))
        kind = "multi_image" if len(images) > 1 else "image"
        default_name = Path(files[0].name).stem
    elif mesh is not None:
        if height is not None:
            options.setdefault("height_meters", height)
        return _submit_mesh(provider, mesh, rig=rig, animations=_animations(prov, animations),
                            options=options, name=name, in_place=in_place)
    else:
        kind, default_name = "text", (prompt or "Character")[:40]
    job = _jobs.submit(provider, kind=kind, name=name or default_name, files=files, prompt=prompt,
                       rig=rig, animations=_animations(prov, animations), options=options, height=height,
                       in_place=in_place)
    return job.id


def _scene_fit_options(options: dict[str, Any]) -> tuple[float | None, bool]:
    """Take the Blender-side options out of `options`: height (metres, the imported character's height)
    and in_place (locomotion actions loop on the spot)."""
    height = options.pop("height", None)
    if height is not None:
        try:
            height = float(height)
        except (TypeError, ValueError) as exc:
            raise InputError(f"height is in metres (a number), not {height!r}") from exc
        if not height > 0:
            raise InputError(f"height must be a positive number of metres, not {height!r}")
    return height, bool(options.pop("in_place", False))


def _submit_mesh(provider: str, mesh: Any, *, rig: bool, animations: list[AnimationChoice],
                 options: dict[str, Any], name: str | None, in_place: bool = False) -> str:
    """mesh= is an object, an object name, or a list of them (one character made of several meshes).
    Blender-side settings ride in options: facing ("-Y", "+Y", "+X", "-X"), hide_original (bool);
    height_meters defaults to the mesh's world-space height."""
    items = mesh if isinstance(mesh, list | tuple) else [mesh]
    objects = []
    for item in items:
        obj = bpy.data.objects.get(item) if isinstance(item, str) else item
        if _deleted(obj):
            raise InputError("mesh= is an object that was deleted from this file; pass a mesh that is in it")
        if not isinstance(obj, bpy.types.Object):
            raise InputError(f"mesh= takes mesh objects or their names; {item!r} is not an object in this file")
        objects.append(obj)
    facing = str(options.pop("facing", "-Y"))
    if facing not in exporter.FACING_ROTATION:
        raise InputError(f"facing must be one of {', '.join(exporter.FACING_ROTATION)}, not {facing!r}")
    hide = bool(options.pop("hide_original", True))
    height = options.pop("height_meters", None)
    job = _jobs.submit_mesh(bpy.context, objects, provider_id=provider, name=name or "", facing=facing,
                            height=float(height) if height else None, hide_original=hide,
                            animations=animations, options=options, in_place=in_place)
    return job.id


def add_animations(armature: Any, animations: Iterable[int | str], options: dict[str, Any] | None = None) -> str:
    """More animations for a character Marionette rigged (an object or its name), without rigging again.
    Returns the new job's id; `wait` on it and the actions land on that armature."""
    obj = bpy.data.objects.get(armature) if isinstance(armature, str) else armature
    if not isinstance(obj, bpy.types.Object):
        raise InputError(f"{armature!r} is not an object in this file")
    prov = session.get().provider_for("add_animations", _jobs.rig_provider(obj))
    options = dict(options or {})
    _height, in_place = _scene_fit_options(options)
    return _jobs.submit_add_animations(obj, _animations(prov, animations), provider_id=prov.id, options=options,
                                       in_place=in_place).id


def export(armature: Any, path: str | Path, preset: str = "godot") -> str:
    """Write a character (an armature object or its name) for a game engine with every action as its own
    animation: preset "unreal" (FBX), "unity" (FBX) or "godot" (GLB, also for the web). Returns the path
    written (the preset's extension is added when missing)."""
    from .blender import engine_export

    obj = bpy.data.objects.get(armature) if isinstance(armature, str) else armature
    if not isinstance(obj, bpy.types.Object):
        raise InputError(f"{armature!r} is not an object in this file")
    return str(engine_export.export(obj, path, preset))


def _deleted(obj: Any) -> bool:
    """True for a Blender object whose data was removed (any access raises ReferenceError)."""
    if not isinstance(obj, bpy.types.ID):
        return False
    try:
        obj.name  # noqa: B018
    except ReferenceError:
        return True
    return False


def retarget(source: Any, target: Any, actions: Iterable[Any] | None = None, bone_map: Any = None,
             in_place: bool = False) -> list[str]:
    """Put the actions of `source` (an armature or its name; default: its active action and every NLA
    strip's) on `target` (the artist's armature) as new baked actions, one NLA track each, the first
    active; returns their names. `bone_map`: None (automatic), {source bone: target bone}, a BoneMap or a
    preset file path. `in_place` drops the horizontal travel. Bad input raises InputError, changing nothing."""
    from .blender import retarget as _retarget

    return _retarget.retarget(source, target, actions=actions, bone_map=bone_map, in_place=in_place)


def _image_file(item: ImageArg) -> tuple[str, bytes]:
    if isinstance(item, bpy.types.Image):
        return exporter.image_bytes(item)
    if isinstance(item, str | Path):
        return exporter.file_bytes(Path(bpy.path.abspath(str(item))))
    raise InputError(f"image= takes a file path or a bpy.types.Image, not {type(item).__name__}")


def _animations(provider: Provider, wanted: Iterable[int | str]) -> list[AnimationChoice]:
    def norm(text: str) -> str:
        return text.lower().replace("_", "").replace(" ", "")

    if isinstance(wanted, str | bytes):
        raise InputError(f"animations= takes a list of names or ids, e.g. animations=[{wanted!r}], not a "
                         "single string")
    by_name = {norm(c.name): c for c in provider.common_animations}
    by_id = {c.action_id: c for c in provider.common_animations}
    chosen: list[AnimationChoice] = []
    for item in wanted:
        if isinstance(item, bool):
            raise InputError(f"Not an animation: {item!r}")
        if isinstance(item, int):
            choice = by_id.get(item) or AnimationChoice(action_id=item,
                                                        name=library.name_of(item) or f"Action_{item}")
        elif norm(str(item)) in by_name:
            choice = by_name[norm(str(item))]
        elif (found := library.lookup(str(item))) is not None:
            choice = found
        else:
            known = ", ".join(c.name for c in provider.common_animations)
            raise InputError(f"Unknown animation {item!r}; give an action id or one of: {known}")
        if choice not in chosen:
            chosen.append(choice)
    return chosen


def retry(job_id: str) -> JobInfo:
    """Run a failed or cancelled job again; finished provider tasks are reused, not paid again."""
    return JobInfo.of(_jobs.retry(job_id))


def recover(provider: str, task_id: str, name: str | None = None) -> str:
    """Download and import the result of a task made elsewhere, by its id. Returns the new job's id."""
    return _jobs.recover(provider, task_id, name or "").id


def get(job_id: str) -> JobInfo:
    return JobInfo.of(session.get().store.get(job_id))


def jobs() -> list[JobInfo]:
    """Every job of Marionette's journal (this Blender's and other windows' on the same user folder), oldest
    first."""
    return [JobInfo.of(job) for job in session.get().store.all()]


def find_jobs(name: str | Iterable[str] | None = None, *, provider: str | None = None,
              since: float | None = None) -> list[JobInfo]:
    """The jobs of the journal, oldest first, named `name` (or any of several names), of `provider`, created
    at or after `since` (seconds since the epoch, as `time.time()`); each filter only when given."""
    names = None if name is None else {name} if isinstance(name, str) else set(name)
    return [JobInfo.of(job) for job in session.get().store.all()
            if (names is None or job.request.name in names) and (provider is None or job.provider == provider)
            and (since is None or job.created_at >= since)]


def providers() -> list[str]:
    """The ids of the providers Marionette knows."""
    return list(session.get().providers)


def stalled(job_id: str) -> str | None:
    """Why an unfinished job is not being worked on (Marionette could not resume it: a missing key, online
    access off...), or None: it is running, it has ended, or the jobs of earlier sessions are not resumed
    yet (the first `pump` does that)."""
    current = session.get()
    if not current.resumed or current.runner.is_running(job_id):
        return None
    job = current.store.get(job_id)
    if not job.state.active:
        return None
    problem = current.problem(job.provider)
    return (f"job {job_id} cannot continue: {problem}" if problem
            else f"job {job_id} is {job.state.value} but Marionette is not working on it")


def pump() -> float | None:
    """One tick of Marionette's timer (what Blender's timer runs in the interface): takes in the jobs'
    progress, applies background results, imports finished jobs of this session. Timers do not fire in
    background mode (`blender -b`, the bpy module): a script that waits on jobs itself calls this in its
    loop. Returns the seconds until the pump wants to run again (None once Marionette is disabled)."""
    return timer.pump()


def cancel(job_id: str) -> None:
    _jobs.cancel(job_id)


def import_result(job_id: str) -> JobInfo:
    """Import a finished job (again, if it was imported already) into the current scene."""
    return JobInfo.of(_jobs.import_job(job_id))


def wait(job_id: str, timeout: float = 600.0, on_change: Callable[[JobInfo], None] | None = None) -> JobInfo:
    """Pump Marionette until the job has ended (and, when it succeeded in this session, was imported).

    `on_change` is called with the job's info whenever its stage changes (for progress output).
    Returns the job's info whatever its end state; raises TimeoutError if it is still running.
    """
    current = session.get()
    deadline = time.monotonic() + timeout
    last_stage = None
    while True:
        pump()
        job = current.store.get(job_id)
        if on_change is not None and (job.stage, job.state) != last_stage:
            last_stage = (job.stage, job.state)
            on_change(JobInfo.of(job))
        settled = not job.state.active and not current.runner.is_running(job_id)
        prefs = current.preferences()
        auto = bool(getattr(prefs, "auto_import", True)) if prefs is not None else True
        awaiting_import = (auto and job.state is JobState.SUCCEEDED and job_id in current.auto_import
                           and not job.imported and not job.import_error)
        if settled and not awaiting_import:
            return JobInfo.of(job)
        if time.monotonic() > deadline:
            raise TimeoutError(f"Marionette job {job_id} is still {job.state.value} after {timeout:g} s "
                               f"({job.stage})")
        time.sleep(0.02)
