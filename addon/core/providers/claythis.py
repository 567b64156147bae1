"""Claythis (https://claythis.com/docs): a picture to a rigged character carrying Quaternius animations.

Wire format (shared/reference/provider-api.md section 3):
- POST /api/3d/generate, multipart/form-data, header X-API-Key: an `image` file part (PNG/JPEG) or an
  `image_url` text part (not both), and `motions`, a JSON array of animation names (omitted: all 127).
  Answers {"success": true, "data": {"taskId": ...}}.
- GET /api/3d/generate/{task_id}/status: documented only in part (a `progress` 0-100 and a
  `downloadUrl` valid one hour; calling status again gives a fresh link). Everything else is parsed
  tolerantly, and an answer that cannot be understood fails the job saying what was in it.

The result is one GLB: the rigged character with every requested animation in it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from ..capabilities import Capability
from ..errors import InputError, ProviderError
from ..formats import sniff_bytes
from ..models import AnimationChoice, GenerationRequest, InputKind, JobState, RemoteTask
from .base import OptionSpec, Output, TaskSnapshot
from .context import ProviderContext
from .polled import ResultRole, SingleTaskProvider

GENERATE_PATH = "/api/3d/generate"
TASK_KEY = "character"
ALL_MOTIONS = 127

# The documented example names: known to work.
DOCUMENTED_MOTIONS = ("Idle_Loop_Rig", "Walk_Loop_Rig", "Jog_Fwd_Loop_Rig")

# Claythis names a motion after the Quaternius Universal Animation Library clip, plus "_Rig".
# These are the clips of the two free UAL packs (Standard 1 and 2) and a few more seen with the
# suffix; Claythis has 127, the rest are not public. Unknown names are allowed (the server decides).
_UAL_CLIPS = (
    # Universal Animation Library 1, Standard
    "A_TPose", "Crouch_Fwd_Loop", "Crouch_Idle_Loop", "Dance_Loop", "Death01", "Driving_Loop", "Fixing_Kneeling",
    "Hit_Chest", "Hit_Head", "Idle_Loop", "Idle_Talking_Loop", "Idle_Torch_Loop", "Interact", "Jog_Fwd_Loop",
    "Jump_Land", "Jump_Loop", "Jump_Start", "PickUp_Table", "Pistol_Aim_Down", "Pistol_Aim_Neutral",
    "Pistol_Aim_Up", "Pistol_Idle_Loop", "Pistol_Reload", "Pistol_Shoot", "Punch_Cross", "Punch_Jab", "Push_Loop",
    "Roll", "Roll_RM", "Sitting_Enter", "Sitting_Exit", "Sitting_Idle_Loop", "Sitting_Talking_Loop",
    "Spell_Simple_Enter", "Spell_Simple_Exit", "Spell_Simple_Idle_Loop", "Spell_Simple_Shoot", "Sprint_Loop",
    "Swim_Fwd_Loop", "Swim_Idle_Loop", "Sword_Attack", "Sword_Attack_RM", "Sword_Idle", "Walk_Formal_Loop",
    "Walk_Loop",
    # Universal Animation Library 2, Standard
    "Chest_Open", "ClimbUp_1m_RM", "Consume", "Farm_Harvest", "Farm_PlantSeed", "Farm_Watering", "Hit_Knockback",
    "Hit_Knockback_RM", "Idle_FoldArms_Loop", "Idle_Lantern_Loop", "Idle_No_Loop", "Idle_Rail_Call",
    "Idle_Rail_Loop", "Idle_Shield_Break", "Idle_Shield_Loop", "Idle_TalkingPhone_Loop", "LayToIdle", "Melee_Hook",
    "Melee_Hook_Rec", "NinjaJump_Idle_Loop", "NinjaJump_Land", "NinjaJump_Start", "OverhandThrow",
    "Shield_Dash_RM", "Shield_OneShot", "Slide_Exit", "Slide_Loop", "Slide_Start", "Sword_Block", "Sword_Dash_RM",
    "Sword_Regular_A", "Sword_Regular_A_Rec", "Sword_Regular_B", "Sword_Regular_B_Rec", "Sword_Regular_C",
    "Sword_Regular_Combo", "TreeChopping_Loop", "Walk_Carry_Loop", "Yes", "Zombie_Idle_Loop", "Zombie_Scratch",
    "Zombie_Walk_Fwd_Loop",
    # seen with the _Rig suffix in other UAL-based files
    "Hit_Stomach", "BackFlip",
)
MOTION_NAMES: tuple[str, ...] = tuple(f"{clip}_Rig" for clip in _UAL_CLIPS)
_KNOWN = {name.lower(): name for name in MOTION_NAMES}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")

# Status words, matched case-insensitively (the enum is not documented).
_WORDS: dict[JobState, frozenset[str]] = {
    JobState.PENDING: frozenset({"pending", "queued", "queue", "waiting", "submitted", "created", "accepted", "new",
                                 "scheduled", "not_started"}),
    JobState.RUNNING: frozenset({"processing", "running", "in_progress", "inprogress", "started", "generating",
                                 "rigging", "animating", "active", "working", "uploading", "exporting"}),
    JobState.SUCCEEDED: frozenset({"completed", "complete", "succeeded", "success", "successful", "done",
                                   "finished", "ready", "ok"}),
    JobState.FAILED: frozenset({"failed", "failure", "error", "errored", "rejected", "timeout", "timed_out"}),
    JobState.CANCELED: frozenset({"canceled", "cancelled", "aborted"}),
}
_STATUS_KEYS = ("status", "state", "jobStatus", "job_status", "taskStatus", "task_status", "phase")
_PROGRESS_KEYS = ("progress", "percent", "percentage", "progressPercent", "progress_percent")
_URL_KEYS = ("downloadUrl", "download_url", "downloadURL", "modelUrl", "model_url", "glbUrl", "glb_url",
             "resultUrl", "result_url", "fileUrl", "file_url", "url")
_ERROR_KEYS = ("error", "errorMessage", "error_message", "message", "reason", "detail", "failureReason")
_NESTS = ("data", "result", "output", "task", "job")


def known_motion(name: str) -> bool:
    """Whether `name` is one of the motion names Marionette knows (any name may still be sent)."""
    return name.strip().lower() in _KNOWN


def canonical_motion(name: str) -> str:
    """The known spelling of a motion name (case-insensitive match; "Idle_Loop" -> "Idle_Loop_Rig")."""
    text = name.strip()
    lower = text.lower()
    if lower in _KNOWN:
        return _KNOWN[lower]
    if f"{lower}_rig" in _KNOWN:
        return _KNOWN[f"{lower}_rig"]
    return text


def misspelt_motion(name: str) -> str | None:
    """The known motion an unknown name is a near miss of ("Idle_Lop_Rig" -> "Idle_Loop_Rig"), or None."""
    lower = name.strip().lower()
    if lower in _KNOWN or f"{lower}_rig" in _KNOWN:
        return None
    wanted = lower if lower.endswith("_rig") else f"{lower}_rig"
    for candidate in difflib.get_close_matches(wanted, list(_KNOWN), n=3, cutoff=0.8):
        if re.sub(r"\d", "", candidate) == re.sub(r"\d", "", wanted):
            continue  # Death02 next to Death01 is another motion, not a typo
        if _edits(wanted, candidate) <= 2:  # a slip of the keyboard, not another (unlisted) motion
            return _KNOWN[candidate]
    return None


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def check_motions(names: Iterable[str]) -> list[str]:
    """The motion names to send, refusing empty, malformed or misspelt ones. A name that resembles no
    known motion is allowed: Claythis has 127 motions and only some are public; the server decides."""
    result: list[str] = []
    for raw in names:
        name = canonical_motion(str(raw))
        if not _NAME.fullmatch(name):
            raise InputError(f"{raw!r} is not a motion name: Claythis motions look like Idle_Loop_Rig "
                             "(letters, digits and underscores)")
        if suggestion := misspelt_motion(name):
            raise InputError(f"Claythis has no motion {str(raw).strip()!r}: did you mean {suggestion}?")
        if name not in result:
            result.append(name)
    return result


def _flatten(body: Any) -> dict[str, Any]:
    """Top-level fields overlaid by those of the usual nested envelopes (data, result, ...)."""
    if not isinstance(body, dict):
        return {}
    merged: dict[str, Any] = {k: v for k, v in body.items() if not isinstance(v, dict)}
    for nest in _NESTS:
        inner = body.get(nest)
        if not isinstance(inner, dict):
            continue
        for key, value in _flatten(inner).items():
            # An envelope's payload (data, task, job) wins over the envelope; a result's fields only fill gaps.
            if nest in ("data", "task", "job") or merged.get(key) in (None, ""):
                merged[key] = value
    return merged


def _first(fields: Mapping[str, Any], keys: Iterable[str]) -> Any:
    lowered = {k.lower(): v for k, v in fields.items()}
    for key in keys:
        value = lowered.get(key.lower())
        if value not in (None, ""):
            return value
    return None


def _message(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        return _message(value.get("message") or value.get("error") or value.get("detail"))
    if isinstance(value, list) and value:
        return _message(value[0])
    return None


def _progress(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*", value)
        if not match:
            return None
        value = float(match.group(1))
    if not isinstance(value, int | float):
        return None
    if isinstance(value, float) and 0 < value < 1:
        value *= 100  # a fraction
    return max(0, min(100, int(value)))


def _url(fields: Mapping[str, Any], body: Any) -> str | None:
    value = _first(fields, _URL_KEYS)
    if isinstance(value, str) and value.strip():
        return value.strip()
    # A list of files: the first GLB.
    for key in ("files", "downloads", "assets", "models"):
        items = _find(body, key)
        if isinstance(items, list):
            for item in items:
                link = item if isinstance(item, str) else _first(item, _URL_KEYS) if isinstance(item, dict) else None
                if isinstance(link, str) and ".glb" in link.lower():
                    return link
    return None


def _find(body: Any, key: str) -> Any:
    if isinstance(body, dict):
        if key in body:
            return body[key]
        for nest in _NESTS:
            found = _find(body.get(nest), key)
            if found is not None:
                return found
    return None


def _describe(body: Any) -> str:
    text = json.dumps(body, separators=(",", ":"), default=str) if not isinstance(body, str) else body
    return text if len(text) <= 300 else text[:300] + "..."


def snapshot(body: Any) -> TaskSnapshot:
    """Map a Claythis status answer (of any reasonable shape) to the common states."""
    if not isinstance(body, dict):
        raise ProviderError(f"Claythis answered the status request with something unexpected: {_describe(body)}")
    fields = _flatten(body)
    word_value = _first(fields, _STATUS_KEYS)
    word = str(word_value).strip().lower().replace(" ", "_").replace("-", "_") if word_value is not None else None
    progress = _progress(_first(fields, _PROGRESS_KEYS))
    url = _url(fields, body)
    error = _message(_first(fields, _ERROR_KEYS)) or _message(body.get("error"))
    if body.get("success") is False and word is None:
        raise ProviderError(f"Claythis reported a problem with the task: {error or _describe(body)}")
    state = next((s for s, words in _WORDS.items() if word in words), None) if word else None
    if state is None:
        if word is not None and word not in ("", "none", "null", "unknown"):
            if url:
                state = JobState.SUCCEEDED
            elif progress is None or progress < 100:
                state = JobState.RUNNING  # a step name we do not know, e.g. "texturing"
            else:
                raise ProviderError(f"Claythis reported an unknown status {word_value!r} at 100% without a "
                                    f"download link: {_describe(body)}")
        elif url:
            state = JobState.SUCCEEDED
        elif progress is not None:
            state = JobState.RUNNING  # at 100% the link may come with the next answer
        else:
            raise ProviderError("Claythis answered the status request without a status, progress or download "
                                f"link: {_describe(body)}")
    if state is JobState.SUCCEEDED and not url:
        if progress is not None and progress < 100:
            state = JobState.RUNNING  # "done" with a step, not the job: keep waiting for the link
        else:
            raise ProviderError(f"Claythis says the character is ready but gave no download link: {_describe(body)}")
    if state is JobState.FAILED:
        return TaskSnapshot(state=state, progress=progress or 0, error=error or "no reason given",
                            error_code=str(word_value))
    urls = {"glb": url} if url and state is JobState.SUCCEEDED else {}
    return TaskSnapshot(state=state, progress=100 if state is JobState.SUCCEEDED else (progress or 0),
                        result_urls=urls)


def task_id(body: Any) -> str:
    """The task id from the create answer, wherever it is."""
    if isinstance(body, dict) and body.get("success") is False:
        raise ProviderError(f"Claythis refused the request: {_message(body.get('error')) or _describe(body)}")
    fields = _flatten(body)
    value = _first(fields, ("taskId", "task_id", "jobId", "job_id", "id"))
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    raise ProviderError(f"Claythis accepted the request but returned no task id: {_describe(body)}")


def _json(response: Any, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        text = (response.text or "").strip()
        raise ProviderError(f"Claythis answered the {what} with something that is not JSON: "
                            f"{text[:200] or '(empty)'}") from None


class ClaythisProvider(SingleTaskProvider):
    id: ClassVar[str] = "claythis"
    label: ClassVar[str] = "Claythis"
    default_base_url: ClassVar[str] = "https://claythis.com"
    inputs: ClassVar[frozenset[InputKind]] = frozenset({"image"})
    outputs: ClassVar[frozenset[Output]] = frozenset({"character"})
    # "rig": always, every result is rigged and animated.
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"rig", "animations", "recover"})
    task_key: ClassVar[str] = TASK_KEY
    task_label: ClassVar[str] = "Character"
    result_role: ClassVar[ResultRole] = "rigged"
    # No documented limit: larger pictures only make the upload slower and risk the body size limits.
    max_image_side: ClassVar[int | None] = 4096
    result_front: ClassVar[str | None] = "-Y"  # Quaternius characters follow glTF's convention
    motion_names: ClassVar[tuple[str, ...]] = MOTION_NAMES
    # The same names as animation choices, so name lookups (e.g. the scripting API) find them; the
    # action ids are only positions in this list: Claythis takes names.
    common_animations: ClassVar[tuple[AnimationChoice, ...]] = tuple(
        AnimationChoice(action_id=index, name=name) for index, name in enumerate(MOTION_NAMES))
    documented_motions: ClassVar[tuple[str, ...]] = DOCUMENTED_MOTIONS
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("motions", "Motions", "names", "",
                   f"Quaternius animations to include, e.g. Idle_Loop_Rig, Walk_Loop_Rig; empty for all {ALL_MOTIONS}"),
        OptionSpec("image_url", "Image URL", "string", "",
                   "Send this public image URL instead of the picture (leave empty to send the picture)"),
    )

    @staticmethod
    def auth_header(api_key: str) -> dict[str, str]:
        return {"X-API-Key": api_key}

    known_motion = staticmethod(known_motion)

    def validate(self, request: GenerationRequest) -> None:
        if request.kind == "task":
            super().validate(request)
            return
        if request.kind not in self.inputs:
            raise InputError(f"Claythis does not take {request.kind.replace('_', ' ')} input (it takes an image)")
        url = str(request.options.get("image_url") or "").strip()
        if url and not re.match(r"https?://[^\s/]+", url):
            raise InputError("Claythis needs an http(s) image URL")
        self.motions(request)

    def motions(self, request: GenerationRequest) -> list[str]:
        """The motions to ask for: the option's names, then the names of any chosen animations."""
        names = list(request.options.get("motions") or [])
        names += [choice.name for choice in request.animations]
        return check_motions(names)

    # -- pipeline ----------------------------------------------------------------------------------

    def creator(self, ctx: ProviderContext) -> Callable[[], str]:
        url = str(ctx.request.options.get("image_url") or "").strip()
        image = None if url else self.input_files(ctx)[0]
        return lambda: self._submit(ctx, image, url)

    def _submit(self, ctx: ProviderContext, image: bytes | None, url: str) -> str:
        request: GenerationRequest = ctx.request
        parts: list[tuple[str, tuple[str | None, bytes | str, str | None]]] = []
        if image is not None:
            kind = sniff_bytes(image[:32]) or "png"
            parts.append(("image", (f"image.{'jpg' if kind == 'jpeg' else kind}", image, f"image/{kind}")))
        else:
            parts.append(("image_url", (None, url, None)))
        motions = self.motions(request)
        if motions:
            parts.append(("motions", (None, json.dumps(motions), None)))
        # (Claythis's curl examples blank "Expect:"; requests never sends 100-continue, so nothing to do.)
        try:
            response = ctx.client.request("POST", GENERATE_PATH, files=parts)
        except ProviderError as exc:
            if exc.status == 400 and "motion" in str(exc).lower():
                raise ProviderError(f"Claythis refused the motion names (nothing was created): {exc}. Pick motions "
                                    "from the Claythis list in the panel.", status=400, code="unknown_motions") from exc
            raise
        return task_id(_json(response, "generation request"))

    def status(self, ctx: ProviderContext, task: RemoteTask) -> TaskSnapshot:
        """The status; its downloadUrl lasts one hour, and each status call hands out a fresh one."""
        response = ctx.client.request("GET", f"{GENERATE_PATH}/{task.remote_id or ''}/status")
        snap = snapshot(_json(response, "status request"))
        link = snap.result_urls.get("glb")
        if link and link.startswith("/"):  # a link relative to the API
            snap = snap.amended(result_urls={"glb": ctx.client.url(link)})
        return snap
