"""The single-task pipeline: one remote task per job, created once (or adopted by its id when recovering a
task made elsewhere), polled until it is done, and its one result file downloaded; a link that has expired
meanwhile is replaced by a fresh one from the provider.

Rodin, Claythis and image3d.io are of this kind. A new provider of it writes its wire format only:
``creator`` (read and check the inputs, return the create call), ``status`` (one status request mapped
to a ``TaskSnapshot``) and, where the link is not in the snapshot's ``result_urls[result_link]``,
``result_link`` / ``fresh_link``. Everything else (the journal's create-once rule, retries, polling,
downloads, the job's stage text) is shared.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import ClassVar, Literal

from ..errors import ProviderError
from ..models import Asset, RemoteTask
from .base import Provider, TaskSnapshot, stage_text
from .context import ProviderContext, task_of

ResultRole = Literal["model", "rigged"]


class SingleTaskProvider(Provider):
    # The task's key in the journal and its label in the job's stage ("Model: 40%").
    task_key: ClassVar[str] = "model"
    task_label: ClassVar[str] = "Model"
    # What the result file is: a static model, or a rigged (and animated) character.
    result_role: ClassVar[ResultRole] = "model"
    # The entry of the final snapshot's result_urls that holds the download link.
    result_link_name: ClassVar[str] = "glb"

    # -- what a provider of this kind writes ---------------------------------------------------------

    @abstractmethod
    def creator(self, ctx: ProviderContext) -> Callable[[], str]:
        """Read and check the job's inputs (before anything is sent) and return the create request: it
        sends the task once and returns its remote id. The runner calls it only when the journal has no
        such task yet."""

    @abstractmethod
    def status(self, ctx: ProviderContext, task: RemoteTask) -> TaskSnapshot:
        """One status request for the task, mapped to the common states."""

    def look_up(self, ctx: ProviderContext, remote_id: str) -> None:
        """Recovering: refuse a task id the provider does not know, before it is adopted (optional: else
        the first status request says so)."""

    def result_link(self, ctx: ProviderContext) -> str:
        """The finished task's download link (from its last status, kept in the journal)."""
        link = task_of(ctx, self.task_key).result_urls.get(self.result_link_name)
        if not link:
            raise ProviderError(f"{self.label} finished the {self.task_label.lower()} but gave no download link")
        return link

    def fresh_link(self, ctx: ProviderContext) -> str:
        """A new download link when the one given has expired: the status request hands out a fresh one."""
        snap = self.status(ctx, task_of(ctx, self.task_key))
        link = snap.result_urls.get(self.result_link_name)
        if not link:
            raise ProviderError(f"{self.label} no longer offers this {self.task_label.lower()}'s download link")
        return link

    def stage_text(self, task: RemoteTask) -> str:
        """The job's stage while the task runs."""
        return stage_text(self.task_label, task)

    # -- the pipeline ------------------------------------------------------------------------------

    def run(self, ctx: ProviderContext) -> None:
        if ctx.request.kind == "task":
            self.recover(ctx)
            return
        create = self.creator(ctx)
        ctx.set_stage(f"{self.task_label}: submitting", 0.0)
        ctx.submit_once(self.task_key, self.task_label, create)
        self.finish(ctx)

    def recover(self, ctx: ProviderContext) -> None:
        """The task ctx.request.options["task_id"], made elsewhere: adopted (never created), then polled
        and downloaded like one of ours."""
        remote_id = str(ctx.request.options["task_id"])
        ctx.set_stage("Looking up the task", 0.0)
        self.look_up(ctx, remote_id)
        ctx.adopt_task(self.task_key, self.task_label, remote_id)
        self.finish(ctx)

    def finish(self, ctx: ProviderContext) -> None:
        """Poll the task until it is done, then download its result."""
        ctx.poll([self.task_key], lambda task: self.status(ctx, task), on_change=lambda job: self.show_stage(ctx))
        asset = Asset(key=self.result_role, role=self.result_role, name=self.task_label, url=self.result_link(ctx),
                      source_task=self.task_key)
        ctx.download_assets([asset], refresh_url=lambda _asset: self.fresh_link(ctx))

    def show_stage(self, ctx: ProviderContext) -> None:
        task = ctx.job().task(self.task_key)
        if task is None:
            return
        progress = 0.0 if task.queue_position else 0.9 * task.progress / 100
        ctx.set_stage(self.stage_text(task), progress)
