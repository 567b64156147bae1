"""What every provider declares (inputs, options, prices) and the pipeline helpers they share.

The panel and the API read these declarations; nothing outside a provider's own module knows its
wire format.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..errors import InputError
from ..models import AnimationChoice, GenerationRequest, InputKind, JobState

OptionKind = Literal["enum", "bool", "int", "float", "string"]


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

    def check(self, value: Any) -> Any:
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
            if self.kind == "int" and int(value) != value:
                raise InputError(f"Option {self.name} must be a whole number, not {value!r}")
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise InputError(f"Option {self.name} must be between {self.min:g} and {self.max:g}, not {value}")
            value = int(value) if self.kind == "int" else float(value)
        elif not isinstance(value, str):
            raise InputError(f"Option {self.name} must be text, not {value!r}")
        return value


@dataclass(frozen=True)
class TaskSnapshot:
    """A provider task's status, mapped to the common states."""

    state: JobState
    progress: int = 0
    queue_position: int | None = None
    result_urls: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    error_code: str | None = None


class Provider(ABC):
    id: ClassVar[str]
    label: ClassVar[str]
    default_base_url: ClassVar[str]
    key_label: ClassVar[str] = "API Key"
    inputs: ClassVar[frozenset[InputKind]]
    options: ClassVar[tuple[OptionSpec, ...]] = ()
    supports_rig: ClassVar[bool] = False
    common_animations: ClassVar[tuple[AnimationChoice, ...]] = ()

    @staticmethod
    @abstractmethod
    def auth_header(api_key: str) -> dict[str, str]: ...

    def resolve_options(self, given: dict[str, Any], kind: InputKind) -> dict[str, Any]:
        """Defaults filled in, every value checked; unknown names refused with the list of known ones."""
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
        if request.kind not in self.inputs:
            accepted = ", ".join(sorted(self.inputs))
            raise InputError(f"{self.label} does not take {request.kind.replace('_', ' ')} input "
                             f"(it takes {accepted})")
        if request.rig and not self.supports_rig:
            raise InputError(f"{self.label} cannot rig a model")
        if request.animations and not request.rig:
            raise InputError("Animations need the model to be rigged: turn on Rig & animate")

    def cost(self, request: GenerationRequest) -> float | None:
        """Credits the request will spend, from the provider's documented prices."""
        return None

    @abstractmethod
    def run(self, ctx: Any) -> None:
        """Drive the job to its result files. Must be resumable: ctx remembers submitted tasks."""

    def cancel_remote(self, ctx: Any) -> None:  # noqa: B027 - optional for providers without cancel
        """Cancel the job's unfinished tasks on the provider, where it can."""
