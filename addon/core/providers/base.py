"""What every provider declares (inputs, options, prices, capabilities, per-provider facts) and the helpers
their pipelines share.

The panel and the API read these declarations; nothing outside a provider's own module knows its
wire format. What a provider can do is asked by capability (``provider.can("rig_mesh")``, see
``core/capabilities.py``), never by its id. Providers whose job is one remote task build on
``polled.SingleTaskProvider``.
"""

from __future__ import annotations

import json
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..capabilities import Capability
from ..errors import InputError, ProviderError
from ..formats import sniff_bytes
from ..models import AnimationChoice, Asset, GenerationRequest, InputKind, Job, JobState, RemoteTask

if TYPE_CHECKING:
    from ..catalog import CatalogEntry
    from ..http import ApiClient
    from .context import ProviderContext

# "ints": a short list of whole numbers (e.g. a bounding box), "names": a list of names (e.g. motions).
# Both also accept text ("100, 200, 150" or a JSON array), so a plain text field can carry them, and
# both default to "" (not set).
OptionKind = Literal["enum", "bool", "int", "float", "string", "ints", "names"]
# What a provider's result is: a static model, a rigged (and animated) character, or 2D images.
Output = Literal["model", "character", "images"]

_SPLIT = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class OptionSpec:
    """One provider option as the panel shows it and the API accepts it."""

    name: str
    label: str
    kind: OptionKind
    default: Any
    description: str = ""
    items: tuple[tuple[str, str, str], ...] = ()
    min: float | None = None
    max: float | None = None
    # Shown only when another option has this value, e.g. ("should_remesh", True).
    depends_on: tuple[str, Any] | None = None
    inputs: frozenset[InputKind] | None = None  # None: every input kind
    length: int | None = None  # "ints": exactly this many values
    # The panel offers a button that fills the option from the scene: "selection_bbox" = the selected
    # objects' bounding box as [width (Y), height (Z), length (X)] proportions.
    fill_from: str | None = None

    def check(self, value: Any) -> Any:
        if self.kind == "ints":
            return self._check_ints(value)
        if self.kind == "names":
            return self._check_names(value)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise InputError(f"Option {self.name} must be true or false, not {value!r}")
        elif self.kind == "enum":
            allowed = [item[0] for item in self.items]
            if value not in allowed:
                raise InputError(f"Option {self.name} must be one of {', '.join(allowed)}, not {value!r}")
        elif self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(f"Option {self.name} must be a number, not {value!r}")
            if not math.isfinite(value):
                raise InputError(f"Option {self.name} must be a finite number, not {value!r}")
            if self.kind == "int" and int(value) != value:
                raise InputError(f"Option {self.name} must be a whole number, not {value!r}")
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise InputError(f"Option {self.name} must be between {self.min:g} and {self.max:g}, not {value}")
            value = int(value) if self.kind == "int" else float(value)
        elif not isinstance(value, str):
            raise InputError(f"Option {self.name} must be text, not {value!r}")
        return value

    def _items(self, value: Any) -> list[Any] | None:
        """The list behind a list option's value; None when it is not set."""
        if value is None:
            return None
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            if text.startswith("["):
                try:
                    parsed = json.loads(text)
                except ValueError:
                    raise InputError(f"Option {self.name} is not a valid list: {value!r}") from None
                if not isinstance(parsed, list):
                    raise InputError(f"Option {self.name} must be a list, not {value!r}")
                return parsed
            return [part for part in _SPLIT.split(text) if part]
        if isinstance(value, list | tuple):
            return list(value)
        raise InputError(f"Option {self.name} must be a list, not {value!r}")

    def _check_ints(self, value: Any) -> list[int] | None:
        items = self._items(value)
        if items is None:
            return None
        numbers: list[int] = []
        for item in items:
            if isinstance(item, str) and re.fullmatch(r"[+-]?\d+", item.strip()):
                item = int(item)
            if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item) \
                    or int(item) != item:
                raise InputError(f"Option {self.name} takes whole numbers, not {item!r}")
            numbers.append(int(item))
        if self.length is not None and len(numbers) != self.length:
            raise InputError(f"Option {self.name} takes {self.length} numbers, not {len(numbers)}")
        for number in numbers:
            if (self.min is not None and number < self.min) or (self.max is not None and number > self.max):
                low = "" if self.min is None else f" at least {self.min:g}"
                high = "" if self.max is None else f" at most {self.max:g}"
                joined = " and".join(x for x in (low, high) if x)
                raise InputError(f"Option {self.name}: every number must be{joined}, not {number}")
        return numbers

    def _check_names(self, value: Any) -> list[str]:
        items = self._items(value)
        if items is None:
            return []
        names: list[str] = []
        for item in items:
            if not isinstance(item, str):
                raise InputError(f"Option {self.name} takes names, not {item!r}")
            name = item.strip()
            if name and name not in names:
                names.append(name)
        return names


@dataclass(frozen=True)
class TaskSnapshot:
    """A provider task's status, mapped to the common states."""

    state: JobState
    progress: int = 0
    queue_position: int | None = None
    result_urls: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    error_code: str | None = None

    def amended(self, *, result_urls: dict[str, str] | None = None, error: str | None = None) -> TaskSnapshot:
        """This snapshot with its links and/or its error message replaced; every other field (state,
        progress, queue position, error code) kept."""
        snap = self
        if result_urls is not None:
            snap = replace(snap, result_urls=dict(result_urls))
        if error is not None:
            snap = replace(snap, error=error)
        return snap


def stage_text(label: str, task: RemoteTask) -> str:
    """A remote task's line in the job's stage: its place in the provider's queue, else its progress."""
    if task.queue_position:
        return f"{label}: queued ({task.queue_position} ahead)"
    return f"{label}: {task.progress}%"


def percent(value: Any) -> int:
    """A progress answer as a whole percentage, 0 to 100; 0 for anything that is not a finite number (a
    wrong-typed progress must not cost a finished result: it is only a progress bar)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1e9 < value < 1e9:
        return 0
    return max(0, min(100, int(value)))


def balance_of(data: Any, label: str, field_name: str = "balance") -> float:
    """The number in a balance answer's `field_name`, or a ProviderError saying what came instead."""
    value = data.get(field_name) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProviderError(f"{label} answered the balance request without a balance: {str(data)[:200]}")
    return float(value)


def rig_age_check(label: str, kept_seconds: float | None, created_at: float | None, now: float | None = None) -> None:
    """An InputError when a rig made at `created_at` is older than the provider keeps rigs (kept_seconds)."""
    if not created_at or kept_seconds is None:
        return
    age = (now or time.time()) - created_at
    if age > kept_seconds:
        raise InputError(f"This character was rigged {age / 86400:.1f} days ago and {label} keeps rig tasks for "
                         f"{kept_seconds / 86400:g} days: rig it again to add animations.")


class Provider(ABC):
    id: ClassVar[str]
    label: ClassVar[str]
    default_base_url: ClassVar[str]
    key_label: ClassVar[str] = "API Key"
    inputs: ClassVar[frozenset[InputKind]]
    options: ClassVar[tuple[OptionSpec, ...]] = ()
    # What the provider can do (core/capabilities.py); callers ask can(...), never the provider's id.
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    # The animations offered before (or instead of) a fetched library; non-empty with "animations".
    common_animations: ClassVar[tuple[AnimationChoice, ...]] = ()
    # What the result is (the Blender side imports a model/character, or loads images).
    outputs: ClassVar[frozenset[Output]] = frozenset({"model", "character"})
    # Most images a "multi_image" job takes ("image" jobs take exactly one).
    max_images: ClassVar[int] = 1
    # Longest prompt the provider accepts (None: no documented limit).
    prompt_max_chars: ClassVar[int | None] = None
    # What balance() counts.
    balance_unit: ClassVar[str] = "credits"
    # A create answered 5xx may still have made the task: it is sent again on Marionette's own only when the
    # provider's document says to retry such an answer (image3d.io: "500 ... Retry after a few seconds").
    create_retries_server_errors: ClassVar[bool] = False
    # Longest side of a picture sent; larger ones are downscaled on the Blender side, and the job says so
    # (None: sent as they are).
    max_image_side: ClassVar[int | None] = None
    # Most faces a mesh may have to be rigged ("rig_mesh"; None: no documented limit).
    max_rig_faces: ClassVar[int | None] = None
    # How long the provider keeps a rig that "add_animations" builds on (None: no documented limit).
    rig_kept_seconds: ClassVar[float | None] = None
    # Which way the characters in its result files look once Blender's importers converted them ("-Y",
    # "+X", ...; None: not known). glTF's front (+Z) becomes Blender's -Y.
    result_front: ClassVar[str | None] = None
    # The option that states how tall a rigged result is made (None: the provider does not take one).
    rig_height_option: ClassVar[str | None] = None

    @staticmethod
    @abstractmethod
    def auth_header(api_key: str) -> dict[str, str]: ...

    def can(self, capability: Capability) -> bool:
        """Whether the provider declares `capability`."""
        return capability in self.capabilities

    # The capability flags under their earlier names, read by the Blender layer and the runner.
    @property
    def supports_rig(self) -> bool:
        return self.can("rig")

    @property
    def can_recover(self) -> bool:
        """Results of a task made elsewhere can be fetched by its id."""
        return self.can("recover")

    @property
    def fetches_animation_catalog(self) -> bool:
        """The animation list can be fetched (else it is the built-in common_animations)."""
        return self.can("animation_catalog")

    def check_rig_age(self, created_at: float | None, now: float | None = None) -> None:
        """Refuse, before anything is paid, to add animations to a rig older than the provider keeps rigs."""
        rig_age_check(self.label, self.rig_kept_seconds, created_at, now)

    def resolve_options(self, given: dict[str, Any], kind: InputKind) -> dict[str, Any]:
        """Defaults filled in, every value checked; unknown names refused with the list of known ones."""
        if kind == "task":  # recovering needs the task id and nothing else
            return {"task_id": str(given.get("task_id") or "").strip()}
        known = {spec.name: spec for spec in self.options}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise InputError(f"{self.label} has no option {', '.join(unknown)}; "
                             f"its options are {', '.join(sorted(known))}")
        resolved: dict[str, Any] = {}
        for spec in self.options:
            if spec.inputs is not None and kind not in spec.inputs:
                continue
            resolved[spec.name] = spec.check(given.get(spec.name, spec.default))
        return resolved

    def validate(self, request: GenerationRequest) -> None:
        """Refuse what cannot work before anything is sent or spent."""
        if request.kind == "task":
            if not self.can_recover:
                raise InputError(f"{self.label} results cannot be recovered by task id")
            if not str(request.options.get("task_id") or "").strip():
                raise InputError("Paste the task id to recover")
            return
        if request.kind not in self.inputs:
            accepted = ", ".join(sorted(self.inputs))
            raise InputError(f"{self.label} does not take {request.kind.replace('_', ' ')} input "
                             f"(it takes {accepted})")
        if request.rig and not self.supports_rig:
            raise InputError(f"{self.label} cannot rig a model")
        if request.animations and not request.rig:
            raise InputError("Animations need the model to be rigged: turn on Rig & animate")
        self.check_prompt(request)

    def check_prompt(self, request: GenerationRequest) -> None:
        """A text job needs a prompt; no prompt may be longer than the provider takes."""
        prompt = (request.prompt or "").strip()
        if request.kind == "text" and not prompt:
            raise InputError(f"{self.label} needs a prompt describing the model")
        limit = self.prompt_max_chars
        if limit is not None and len(prompt) > limit:
            raise InputError(f"{self.label} takes prompts of up to {limit} characters (this one has {len(prompt)})")

    def image_count(self, kind: InputKind) -> tuple[int, int]:
        """(fewest, most) images a job of this input kind takes."""
        if kind == "image":
            return 1, 1
        if kind == "multi_image":
            return 1, self.max_images
        return 0, 0

    def check_files(self, kind: InputKind, files: Sequence[bytes]) -> None:
        """Refuse a wrong number of images, or images that are not PNG/JPEG, before anything is sent.

        For image kinds only. The runner calls it at submit, on the files before they are copied into
        the job's folder; pipelines call it again (input_files) on the copies before their first request.
        """
        if kind not in ("image", "multi_image"):
            return
        low, high = self.image_count(kind)
        if not low <= len(files) <= high:
            wanted = f"{low}" if low == high else f"{low} to {high}"
            raise InputError(f"{self.label} takes {wanted} image{'s' if high > 1 else ''}, not {len(files)}")
        for index, data in enumerate(files):
            if sniff_bytes(data[:32]) not in ("png", "jpeg"):
                raise InputError(f"{self.label} takes PNG or JPEG images; image {index + 1} is neither")

    def input_files(self, ctx: ProviderContext) -> list[bytes]:
        """The job's input files, checked with check_files."""
        request: GenerationRequest = ctx.request
        files = [ctx.input_path(i).read_bytes() for i in range(len(request.inputs))]
        self.check_files(request.kind, files)
        return files

    def balance(self, client: ApiClient) -> float | None:
        """The account's remaining credits (in balance_unit), or None when the provider has no such call.

        Blocking HTTP: call it from a worker thread, never from Blender's main thread.
        """
        return None

    def cost(self, request: GenerationRequest) -> float | None:
        """Credits the request will spend, from the provider's documented prices."""
        return None

    def added_steps(self, request: GenerationRequest) -> list[str]:
        """What Marionette adds to this request on its own to meet a documented rule of the provider (and
        what it costs), for the panel, the cost estimate and the job's note. Empty: nothing added."""
        return []

    def key_warning(self, api_key: str) -> str | None:
        """A warning about the key before a submit (e.g. a token about to expire), or None."""
        return None

    def key_status(self, api_key: str) -> str | None:
        """A line about the key for the preferences and the panel (e.g. how long a token has left)."""
        return None

    def task_cost(self, request: GenerationRequest, key: str) -> float | None:
        """Credits the job's remote task `key` costs (None: not known per task)."""
        return None

    def in_estimate(self, request: GenerationRequest, key: str) -> bool:
        """Whether cost(request) counts the remote task `key` (False for a step added on the way, which a
        Retry that reuses it does not take off the estimate)."""
        return True

    # -- the finished job's files, for the importer (by role, not by the provider's task keys) -------------

    def main_file(self, job: Job) -> Asset | None:
        """The file to import as the result: the rigged character, else the model."""
        return next((a for a in job.assets if a.role == "rigged"), None) or next(
            (a for a in job.assets if a.role == "model"), None)

    def animation_files(self, job: Job) -> list[Asset]:
        """The animation files in the order they are imported: the ones asked for first, in the order
        asked, then any that come with the result. By default the order they were recorded in."""
        return [a for a in job.assets if a.role == "animation"]

    def rig_of(self, job: Job) -> tuple[str, float] | None:
        """The remote rig an "add_animations" job can build on later (its id, when it was made), or None."""
        return None

    def fetch_animation_catalog(self, client: ApiClient) -> list[CatalogEntry]:
        """The provider's animation library ("animation_catalog"; blocking HTTP: a worker thread's call)."""
        raise ProviderError(f"{self.label} has no animation library to fetch")

    @abstractmethod
    def run(self, ctx: ProviderContext) -> None:
        """Drive the job to its result files. Must be resumable: ctx remembers submitted tasks."""

    def recover(self, ctx: ProviderContext) -> None:
        """Fetch the result of the task ctx.request.options["task_id"], made elsewhere."""
        raise ProviderError(f"{self.label} results cannot be recovered by task id")

    def cancel_remote(self, ctx: ProviderContext) -> None:  # noqa: B027 - optional for providers without cancel
        """Cancel the job's unfinished tasks on the provider, where it can."""
