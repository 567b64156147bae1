"""The data Marionette keeps about jobs. Persisted as JSON in the journal: no secrets live here."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

# "armature": more animations for a character Marionette rigged earlier (no new model, no new rig).
# "task": recover the result of a task made elsewhere, by its id (options["task_id"]).
InputKind = Literal["image", "multi_image", "text", "mesh", "armature", "task"]


class JobState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def active(self) -> bool:
        return self in (JobState.PENDING, JobState.RUNNING)


class AnimationChoice(BaseModel):
    """One animation the artist asked for: the provider's id and the name the action will get."""

    action_id: int
    name: str


class Placement(BaseModel):
    """Where the result goes in the scene, recorded at submit time (Blender-side bookkeeping)."""

    location: tuple[float, float, float] | None = None  # None: the 3D cursor at import time
    rotation_z: float = 0.0  # radians, undoes the facing correction applied on export
    source_objects: list[str] = Field(default_factory=list)  # the artist's mesh(es), hidden on import
    hide_source: bool = True
    target_armature: str | None = None  # "armature" jobs: the character that receives the animations
    height: float | None = None  # metres: scale the character to this height (None: the provider's/as delivered)
    in_place: bool = False  # locomotion actions also get an in-place copy, used in the NLA


class GenerationRequest(BaseModel):
    """What the artist asked for. Inputs are files copied into the job's folder at submit time."""

    provider: str
    kind: InputKind
    name: str
    inputs: list[str] = Field(default_factory=list)
    prompt: str | None = None
    rig: bool = False
    animations: list[AnimationChoice] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    placement: Placement = Field(default_factory=Placement)


class TaskStatus(StrEnum):
    NEW = "new"
    # Written to the journal before the create request leaves: if Blender dies before the provider's
    # answer is recorded, the next start knows the task may exist and refuses to pay for it again.
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RemoteTask(BaseModel):
    """One task on the provider (model, rig, one animation)."""

    key: str
    label: str
    remote_id: str | None = None
    status: TaskStatus = TaskStatus.NEW
    progress: int = 0
    queue_position: int | None = None
    result_urls: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
    error_code: str | None = None
    submitted_at: float | None = None


class Asset(BaseModel):
    """A result file: where it came from and where it is now."""

    key: str
    role: Literal["model", "rigged", "animation", "image", "preview"]
    name: str
    url: str
    source_task: str
    path: str | None = None
    size: int = 0


class Job(BaseModel):
    id: str
    provider: str
    request: GenerationRequest
    state: JobState = JobState.PENDING
    stage: str = "Queued"
    progress: float = 0.0
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    tasks: list[RemoteTask] = Field(default_factory=list)
    assets: list[Asset] = Field(default_factory=list)
    error: str | None = None
    error_code: str | None = None
    notice: str | None = None
    cancel_requested: bool = False
    fingerprint: str = ""
    imported: bool = False
    import_error: str | None = None
    thumbnail: str | None = None  # a picture of the result (the provider's preview, else the input image)
    images: list[str] = Field(default_factory=list)  # image datablocks loaded from an "images" result
    retries: int = 0
    collection: str | None = None
    armature: str | None = None
    objects: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)

    def task(self, key: str) -> RemoteTask | None:
        return next((t for t in self.tasks if t.key == key), None)

    def asset(self, key: str) -> Asset | None:
        return next((a for a in self.assets if a.key == key), None)

    @property
    def queue_position(self) -> int | None:
        positions = [t.queue_position for t in self.tasks if t.queue_position is not None]
        return max(positions) if positions else None

    @property
    def ready_to_import(self) -> bool:
        return self.state is JobState.SUCCEEDED and not self.imported and any(a.path for a in self.assets)


class JobInfo(BaseModel):
    """What the scripting API returns for a job: a read-only snapshot."""

    id: str
    provider: str
    name: str
    state: JobState
    stage: str
    progress: float
    queue_position: int | None
    error: str | None
    error_code: str | None
    notice: str | None
    imported: bool
    collection: str | None
    armature: str | None
    objects: list[str]
    actions: list[str]
    files: list[str]
    task_ids: dict[str, str]
    thumbnail: str | None
    images: list[str]

    @classmethod
    def of(cls, job: Job) -> JobInfo:
        return cls(
            id=job.id,
            provider=job.provider,
            name=job.request.name,
            state=job.state,
            stage=job.stage,
            progress=job.progress,
            queue_position=job.queue_position,
            error=job.error or job.import_error,
            error_code=job.error_code,
            notice=job.notice,
            imported=job.imported,
            collection=job.collection,
            armature=job.armature,
            objects=list(job.objects),
            actions=list(job.actions),
            files=[a.path for a in job.assets if a.path],
            task_ids={t.key: t.remote_id for t in job.tasks if t.remote_id},
            thumbnail=job.thumbnail,
            images=list(job.images),
        )
