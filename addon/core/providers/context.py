"""What a provider's pipeline may use while it runs a job: the runner's ``JobContext`` as a protocol.

Providers type their ``ctx`` with ``ProviderContext`` rather than importing the runner, so the runner can
change how it keeps tasks and fetches results without the providers noticing, and mypy checks both sides
(a unit test asserts that ``runner.JobContext`` is a ``ProviderContext``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ProviderError
from ..models import Asset, GenerationRequest, Job, RemoteTask

if TYPE_CHECKING:
    from ..http import ApiClient, Pacer, Timing
    from .base import Provider, TaskSnapshot

# Looks for the task a create sent at this time made (when its answer was lost); its remote id or None.
Finder = Callable[[float], str | None]


class ProviderContext(Protocol):
    job_id: str
    request: GenerationRequest
    client: ApiClient
    provider: Provider
    pacer: Pacer
    timing: Timing
    runner: Any  # image3d.io asks it for a freshly saved key (runner.key_source)

    def job(self) -> Job:
        """The job as the journal has it now."""

    def edit(self, change: Callable[[Job], None], force: bool = False) -> Job:
        """Change the job in the journal (force: even while Blender closes)."""

    def set_stage(self, stage: str, progress: float | None = None) -> None: ...

    def notice(self, text: str | None) -> None: ...

    def input_path(self, index: int = 0) -> Path: ...

    def submit_once(self, key: str, label: str, create: Callable[[], str], find: Finder | None = None) -> str:
        """Create the remote task `key` unless the journal says it exists; its remote id."""

    def adopt_task(self, key: str, label: str, remote_id: str) -> None:
        """Record a task made elsewhere, so that it is polled and never created."""

    def known_remote_ids(self) -> set[str]: ...

    def poll(self, keys: Sequence[str], fetch: Callable[[RemoteTask], TaskSnapshot],
             on_change: Callable[[Job], None] | None = None) -> dict[str, RemoteTask]:
        """Poll the tasks until all succeed (raises as soon as one fails or is cancelled)."""

    def download_preview(self, url: str) -> None: ...

    def download_assets(self, assets: Iterable[Asset], *, progress_from: float = 0.9,
                        refresh_url: Callable[[Asset], str] | None = None) -> None:
        """Download every asset not yet on disk; a refused (expired) link is replaced by refresh_url's."""


def task_of(ctx: ProviderContext, key: str) -> RemoteTask:
    """The job's remote task `key`, where it must exist (created or adopted before)."""
    task = ctx.job().task(key)
    if task is None:
        raise ProviderError(f"The job has no {key} task (its journal entry is incomplete): press Retry")
    return task
