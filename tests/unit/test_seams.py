"""The seams a new provider plugs into: the single-task pipeline (providers/polled.py), capabilities instead of
provider names (core/capabilities.py), the typed provider context, and the helpers the providers share.

The toy "sixth provider" below is the whole of what a provider of the single-task kind writes: its
declarations, its create call and its status mapping. Everything else (create once, polling, the stage
text, downloading over HTTP, a fresh link for an expired one, recovering by task id) comes from the base.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from addon.core import capabilities, declared
from addon.core.errors import InputError, ProviderError
from addon.core.http import ApiClient, ProviderConfig
from addon.core.jobcontext import JobContext
from addon.core.models import AnimationChoice, Asset, GenerationRequest, InputKind, Job, JobState, RemoteTask
from addon.core.providers import all_providers, meshy_rigging
from addon.core.providers.base import Provider, TaskSnapshot, balance_of, percent
from addon.core.providers.context import ProviderContext
from addon.core.providers.polled import SingleTaskProvider
from addon.core.runner import InputFile, JobRunner
from addon.core.store import JobStore
from tests.emulator import Emulator
from tests.unit.fault_matrix import FAST, PNG, make_glb, wait

Role = Literal["model", "rigged", "animation", "image", "preview"]
PROVIDERS_DIR = Path(__file__).resolve().parents[2] / "addon" / "core" / "providers"


def _job_context_is_a_provider_context(ctx: JobContext) -> ProviderContext:
    """Checked by mypy, not run: the runner's context has everything the providers are typed against."""
    return ctx


class ToyProvider(SingleTaskProvider):
    """A sixth provider of the single-task kind: a picture to a model, recoverable by task id."""

    id: ClassVar[str] = "toy"
    label: ClassVar[str] = "Toy"
    default_base_url: ClassVar[str] = "http://127.0.0.1:9"
    inputs: ClassVar[frozenset[InputKind]] = frozenset({"image"})
    capabilities: ClassVar[frozenset[capabilities.Capability]] = frozenset({"recover"})
    task_label: ClassVar[str] = "Toy model"

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.created: list[bytes] = []
        self.looked_up: list[str] = []
        self.polls = 0
        self.fresh_links = 0
        self.stages: list[str] = []
        emu.files.put("toy-task", "model.glb", data=make_glb("toy"))

    @staticmethod
    def auth_header(api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def creator(self, ctx: ProviderContext) -> Callable[[], str]:
        image = self.input_files(ctx)[0]

        def create() -> str:
            self.created.append(image)
            return "toy-task"

        return create

    def look_up(self, ctx: ProviderContext, remote_id: str) -> None:
        self.looked_up.append(remote_id)

    def status(self, ctx: ProviderContext, task: RemoteTask) -> TaskSnapshot:
        """Queued, running, then done; the first link handed out has already expired (403)."""
        self.polls += 1
        if self.polls == 1:
            return TaskSnapshot(state=JobState.PENDING, queue_position=2)
        if self.polls == 2:
            return TaskSnapshot(state=JobState.RUNNING, progress=50)
        ttl = -10.0 if self.polls == 3 else 600.0
        return TaskSnapshot(state=JobState.SUCCEEDED, progress=100,
                            result_urls={"glb": self.emu.files.url("toy-task", "model.glb", ttl)})

    def fresh_link(self, ctx: ProviderContext) -> str:
        self.fresh_links += 1
        return super().fresh_link(ctx)

    def stage_text(self, task: RemoteTask) -> str:
        text = super().stage_text(task)
        self.stages.append(text)
        return text


@pytest.fixture
def toy_runner(tmp_path: Path) -> Iterator[tuple[JobRunner, ToyProvider, ProviderConfig]]:
    with Emulator() as emu:
        toy = ToyProvider(emu)
        runner = JobRunner(JobStore(tmp_path / "store"), {"toy": toy}, FAST)
        try:
            yield runner, toy, ProviderConfig(base_url=emu.base_url, api_key="toy-key-0123456789")
        finally:
            runner.shutdown()
        assert not emu.errors, emu.errors[0]


def test_a_sixth_single_task_provider_needs_only_its_wire_format(
        toy_runner: tuple[JobRunner, ToyProvider, ProviderConfig]) -> None:
    runner, toy, config = toy_runner
    job = runner.submit(GenerationRequest(provider="toy", kind="image", name="hero"), config,
                        [InputFile("hero.png", PNG)])
    done = wait(runner, job.id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert toy.created == [PNG]  # created once, with the checked input
    task = done.task("model")
    assert task is not None and task.remote_id == "toy-task" and task.progress == 100
    assert toy.stages[:2] == ["Toy model: queued (2 ahead)", "Toy model: 50%"]
    # The first link had expired: the status handed out a fresh one and the file came over HTTP.
    assert toy.fresh_links == 1
    asset = done.asset("model")
    assert asset is not None and asset.role == "model" and asset.name == "Toy model" and asset.path
    assert Path(asset.path).read_bytes() == make_glb("toy")


def test_the_single_task_base_recovers_a_task_made_elsewhere(
        toy_runner: tuple[JobRunner, ToyProvider, ProviderConfig]) -> None:
    runner, toy, config = toy_runner
    toy.polls = 2  # already done: the next status is the finished one (with an expired link)
    done = wait(runner, runner.recover("toy", "toy-task", "", config).id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert toy.looked_up == ["toy-task"] and toy.created == []  # adopted, never created
    asset = done.asset("model")
    assert asset is not None and asset.path and Path(asset.path).read_bytes() == make_glb("toy")


def test_the_single_task_providers_use_the_base_pipeline() -> None:
    kinds = {pid for pid, p in all_providers().items() if isinstance(p, SingleTaskProvider)}
    assert kinds == {"rodin", "claythis", "image3d"}
    for pid in kinds:
        cls = type(all_providers()[pid])
        for name in ("run", "recover", "finish", "show_stage"):  # the shared pipeline, not a copy of it
            assert getattr(cls, name) is getattr(SingleTaskProvider, name), f"{pid} overrides {name}"


# -- capabilities ------------------------------------------------------------------------------------


def test_capabilities_agree_with_what_each_provider_does() -> None:
    for pid, provider in all_providers().items():
        assert capabilities.check(frozenset(provider.capabilities)) == provider.capabilities, pid
        cls = type(provider)
        assert provider.can("rig_mesh") == ("mesh" in provider.inputs), pid
        assert provider.can("add_animations") == ("armature" in provider.inputs), pid
        assert provider.can("animations") == bool(provider.common_animations), pid
        assert provider.can("balance") == (cls.balance is not Provider.balance), pid
        assert provider.can("recover") == (cls.recover is not Provider.recover), pid
        if provider.can("animation_catalog") or provider.can("add_animations"):
            assert provider.can("animations") and provider.can("rig"), pid
        if "character" in provider.outputs:
            assert provider.can("rig"), pid
        # The earlier flags are the capabilities under their old names.
        assert (provider.supports_rig, provider.can_recover, provider.fetches_animation_catalog) == (
            provider.can("rig"), provider.can("recover"), provider.can("animation_catalog")), pid
        assert (provider.max_rig_faces is not None) == provider.can("rig_mesh"), pid
        assert (provider.rig_kept_seconds is not None) == provider.can("add_animations"), pid
        if provider.rig_height_option is not None:
            assert provider.can("rig") and provider.rig_height_option in {o.name for o in provider.options}, pid
        assert (provider.result_front is not None) == bool({"model", "character"} & provider.outputs), pid


def test_only_known_capabilities_are_accepted() -> None:
    assert capabilities.check(frozenset({"rig", "recover"})) == {"rig", "recover"}
    with pytest.raises(ValueError, match="rig_mesch"):
        capabilities.check(frozenset({"rig_mesch"}))


def test_the_light_declarations_carry_capabilities_and_facts() -> None:
    light = declared.providers()
    for pid, provider in all_providers().items():
        mine = light[pid]
        assert mine.capabilities == provider.capabilities and mine.outputs == provider.outputs, pid
        for fact in declared.FACTS:
            assert getattr(mine, fact) == getattr(provider, fact), (pid, fact)
        for capability in capabilities.CAPABILITIES:
            assert mine.can(capability) == provider.can(capability), (pid, capability)
    # A file naming a capability nobody knows is refused when read (a typo would silently hide a button).
    entry = json.loads(declared.render(declared.snapshot()))["providers"][0]
    entry["capabilities"] = ["rig_mesch"]
    with pytest.raises(ValueError, match="unknown capabilities"):
        declared._provider(entry)


def test_every_provider_declares_its_picture_limit_on_the_base() -> None:
    assert Provider.max_image_side is None  # the default: pictures are sent as they are
    assert {p.max_image_side for p in all_providers().values()} == {4096}


def test_rig_age_is_asked_of_the_provider() -> None:
    meshy = all_providers()["meshy"]
    now = 1_000_000_000.0
    meshy.check_rig_age(now - 2 * 86400, now=now)  # two days: still kept
    with pytest.raises(InputError, match=r"rigged 3\.5 days ago and Meshy keeps rig tasks for 3 days"):
        meshy.check_rig_age(now - 3.5 * 86400, now=now)
    with pytest.raises(InputError, match="keeps rig tasks for 3 days"):  # the Blender layer's import today
        meshy_rigging.check_rig_age(now - 3.5 * 86400, now=now)
    all_providers()["rodin"].check_rig_age(now - 365 * 86400, now=now)  # keeps no rigs: nothing to refuse


# -- shared helpers ------------------------------------------------------------------------------------


def test_an_amended_snapshot_keeps_every_other_field() -> None:
    snap = TaskSnapshot(state=JobState.PENDING, progress=3, queue_position=7, result_urls={"a": "1"},
                        error="slow", error_code="E")
    linked = snap.amended(result_urls={"glb": "http://127.0.0.1/x.glb"})
    assert linked == TaskSnapshot(state=JobState.PENDING, progress=3, queue_position=7,
                                  result_urls={"glb": "http://127.0.0.1/x.glb"}, error="slow", error_code="E")
    explained = snap.amended(error="slow. Press Retry")
    assert explained.queue_position == 7 and explained.result_urls == {"a": "1"} and explained.error_code == "E"
    assert snap.amended() == snap


def test_balance_answers_are_read_once_for_all_providers() -> None:
    assert balance_of({"balance": 580}, "Toy") == 580.0
    assert balance_of({"balance": 1.5, "unit": "credits"}, "Toy") == 1.5
    for answer in ({"balance": True}, {"balance": "580"}, {}, [580], None):
        with pytest.raises(ProviderError, match="Toy answered the balance request without a balance"):
            balance_of(answer, "Toy")


def test_progress_answers_become_a_bounded_percentage() -> None:
    assert [percent(v) for v in (42, 42.9, -5, 250, True, "50", None, float("nan"), float("inf"), 1e12)] == [
        42, 42, 0, 100, 0, 0, 0, 0, 0, 0]


# -- module structure ----------------------------------------------------------------------------------


def _provider_imports() -> dict[str, set[str]]:
    """Which provider modules each provider module imports (at any level, even inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PROVIDERS_DIR.glob("*.py")):
        found: set[str] = set()
        _imports(ast.parse(path.read_text(encoding="utf-8")), found)
        graph[path.stem] = found & {p.stem for p in PROVIDERS_DIR.glob("*.py")}
    return graph


def _imports(node: ast.AST, found: set[str]) -> None:
    """Relative imports under `node`, except those only type checkers see (if TYPE_CHECKING:)."""
    if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
        for statement in node.orelse:
            _imports(statement, found)
        return
    if isinstance(node, ast.ImportFrom) and node.level == 1:
        found.update([node.module.split(".")[0]] if node.module else [alias.name for alias in node.names])
    for child in ast.iter_child_nodes(node):
        _imports(child, found)


def test_provider_modules_import_each_other_without_cycles() -> None:
    graph = _provider_imports()
    assert "meshy" not in graph["meshy_api"] and "meshy_rigging" not in graph["meshy_api"]
    assert "meshy" not in graph["meshy_rigging"]
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for imported in graph.get(module, set()) - {"__init__"}:
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        if module != "__init__":
            visit(module, ())


# -- the finished job's files, by role -------------------------------------------------------------------


def _job(provider: str, assets: list[Asset], animations: list[AnimationChoice] | None = None,
         tasks: list[RemoteTask] | None = None) -> Job:
    request = GenerationRequest(provider=provider, kind="image", name="hero", rig=True, animations=animations or [])
    return Job(id="j1", provider=provider, request=request, assets=assets, tasks=tasks or [], created_at=100.0)


def _asset(key: str, role: Role) -> Asset:
    return Asset(key=key, role=role, name=key, url=f"http://127.0.0.1/{key}.glb", source_task=key)


def test_the_files_to_import_are_found_by_role() -> None:
    providers = all_providers()
    rigged = _job("claythis", [_asset("rigged", "rigged")])
    assert providers["claythis"].main_file(rigged) == rigged.assets[0]
    model = _job("rodin", [_asset("preview", "preview"), _asset("model", "model")])
    assert providers["rodin"].main_file(model) == model.assets[1]
    assert providers["claid"].main_file(_job("claid", [_asset("image:1", "image")])) is None
    # Meshy: the animations asked for in the order asked, then the walking and running of the rig.
    choices = [AnimationChoice(action_id=92, name="Combo"), AnimationChoice(action_id=0, name="Idle")]
    job = _job("meshy", [_asset("rigged", "rigged"), _asset("anim:Walking", "animation"),
                         _asset("anim:Running", "animation"), _asset("anim:0", "animation"),
                         _asset("anim:92", "animation")], animations=choices,
               tasks=[RemoteTask(key="rig", label="Rig", remote_id="rig-1", submitted_at=50.0)])
    meshy = providers["meshy"]
    assert [a.key for a in meshy.animation_files(job)] == ["anim:92", "anim:0", "anim:Walking", "anim:Running"]
    assert meshy.main_file(job) == job.assets[0]
    assert meshy.rig_of(job) == ("rig-1", 50.0)
    assert meshy.rig_of(_job("meshy", [])) is None
    assert providers["claythis"].rig_of(rigged) is None  # Claythis's rigs cannot be built on later


def test_the_animation_library_is_asked_of_the_provider(emu: Emulator) -> None:
    meshy, rodin = all_providers()["meshy"], all_providers()["rodin"]
    client = ApiClient(ProviderConfig(base_url=emu.base_url), auth_header=lambda _key: {}, online_access=lambda: True,
                       timing=FAST)
    try:
        entries = meshy.fetch_animation_catalog(client)
        with pytest.raises(ProviderError, match="Hyper3D Rodin has no animation library"):
            rodin.fetch_animation_catalog(client)
    finally:
        client.close()
    assert entries and all(isinstance(e.action_id, int) for e in entries)
