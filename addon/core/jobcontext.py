"""The context a provider's pipeline runs in (``providers.context.ProviderContext``): one job's journal
record, its create-once task ledger (ledger.py) and its result fetcher (fetcher.py), put together.

It takes from the runner only what a job needs: the journal and the event queue, the submit-time note,
the online-access switch and the download limit (both read when used), and the runner itself for the
one thing a provider asks it (image3d.io: a freshly saved key, ``runner.key_source``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .fetcher import ResultFetcher
from .http import ApiClient, Pacer
from .ledger import Finder, JobRecord, TaskLedger
from .models import Asset, GenerationRequest, Job, RemoteTask
from .providers.base import Provider, TaskSnapshot

if TYPE_CHECKING:
    from .runner import JobRunner


class JobContext:
    """What a provider's pipeline uses to talk to the outside world while staying resumable."""

    def __init__(self, runner: JobRunner, job_id: str, provider: Provider, client: ApiClient,
                 pacer: Pacer) -> None:
        self.runner = runner
        self.job_id = job_id
        self.provider = provider
        self.client = client
        self.pacer = pacer
        self.timing = runner.timing
        self.record = JobRecord(runner.store, runner.events, job_id, pacer, note=lambda: runner.note(job_id))
        self.request: GenerationRequest = self.record.job().request
        self.job_dir: Path = runner.store.job_dir(job_id)
        self.tasks = TaskLedger(self.record, provider, self.timing)
        self.results = ResultFetcher(self.record, provider, client.session, self.timing, self.job_dir,
                                     online_access=runner.online_access_now,
                                     max_bytes=lambda: runner.max_download_bytes)

    # -- the job's journal entry -------------------------------------------------------------------

    def job(self) -> Job:
        return self.record.job()

    def edit(self, change: Callable[[Job], None], force: bool = False) -> Job:
        return self.record.edit(change, force)

    def set_stage(self, stage: str, progress: float | None = None) -> None:
        self.record.set_stage(stage, progress)

    def notice(self, text: str | None) -> None:
        self.record.notice(text)

    def input_path(self, index: int = 0) -> Path:
        return Path(self.request.inputs[index])

    # -- remote tasks ------------------------------------------------------------------------------

    def submit_once(self, key: str, label: str, create: Callable[[], str], find: Finder | None = None) -> str:
        return self.tasks.submit_once(key, label, create, find)

    def adopt_task(self, key: str, label: str, remote_id: str) -> None:
        self.tasks.adopt_task(key, label, remote_id)

    def known_remote_ids(self) -> set[str]:
        return self.tasks.known_remote_ids()

    def poll(self, keys: Sequence[str], fetch: Callable[[RemoteTask], TaskSnapshot],
             on_change: Callable[[Job], None] | None = None) -> dict[str, RemoteTask]:
        return self.tasks.poll(keys, fetch, on_change)

    # -- results -----------------------------------------------------------------------------------

    def download_preview(self, url: str) -> None:
        self.results.download_preview(url)

    def download_assets(self, assets: Iterable[Asset], *, progress_from: float = 0.9,
                        refresh_url: Callable[[Asset], str] | None = None) -> None:
        self.results.download_assets(assets, progress_from=progress_from, refresh_url=refresh_url)
