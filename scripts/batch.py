"""Batch generation: every image of a folder to a rigged, animated character, one file per result.

In Blender, or with the PyPI ``bpy`` module::

    blender -b -P scripts/batch.py -- --provider meshy --images DIR --rig --animations Walking,Running --out DIR
    python scripts/batch.py --provider meshy --images DIR --rig --animations Walking,Running --out DIR

Inputs are the images directly in ``--images`` (PNG and JPEG go as they are; EXR, TIFF, WebP, TGA... are
converted to PNG by Marionette). Each one becomes a Marionette job; at most ``--concurrency`` jobs run at
once (default 10, the size of Meshy Pro's task queue; a job with k extra animations counts k, since Meshy
runs them as k tasks at once). Every finished job is imported into an empty scene and saved as
``OUT/<image name>.blend`` (``--format glb``: exported as ``OUT/<image name>.glb``). ``OUT/batch_summary.json``
lists what succeeded and failed; the exit code is 0 only when every input succeeded (1 if any failed,
2 when the batch could not start at all, 130 when interrupted).

Re-running is safe and free: ``OUT/batch_state.json`` maps every input (path and SHA-256 of its bytes) to
its Marionette job id, written before and right after each submit. A re-run skips inputs whose output
is done, waits for jobs Marionette's journal still knows (they resume; nothing is sent twice), and
submits only inputs that never reached Meshy. Remote failures are not resubmitted unless
``--retry-failed``. An input whose bytes changed is a new input.

``--animations``: Meshy's Walking and Running come with every rig, so they are accepted without an
animation task; other names (Meshy's library) or action ids are ordered as extra animations.

The extension: the installed Marionette (``bl_ext.user_default.marionette``, or another repository's)
is enabled if it is not already. If none is installed, the checkout's extension is built with
``scripts/build.py`` (or taken from ``--extension-zip``) and installed into the ``user_default``
repository exactly like *Install from Disk*, then enabled. That works the same in Blender and with the
PyPI ``bpy`` module, and the extension runs with the pydantic wheels it bundles; registering the bare
``addon/`` package instead would need pydantic importable, which Blender does not ship. The job journal
is Marionette's own (its user folder), so the artist's job list shows batch jobs too. While the batch
runs, Marionette's "Import When Done" preference is off (restored at the end): the batch imports each
result into its own scene.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

IN_BLENDER = "bpy" in sys.modules  # `blender -P`: bpy is there before the script runs; PyPI bpy: not yet

EXTENSION_ID = "marionette"
PREFERRED_MODULE = f"bl_ext.user_default.{EXTENSION_ID}"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".exr", ".tif", ".tiff", ".webp", ".tga", ".bmp", ".hdr",
                            ".jp2", ".j2c", ".dpx", ".cin", ".sgi", ".rgb", ".psd"})
# Animations a provider's rig always comes with: accepted by name, never ordered as tasks.
BASIC_ANIMATIONS: dict[str, frozenset[str]] = {"meshy": frozenset({"walking", "running"})}
STATE_NAME = "batch_state.json"
SUMMARY_NAME = "batch_summary.json"
STATE_VERSION = 1
POLL_SECONDS = 0.05


class BatchError(Exception):
    """The batch cannot run at all (arguments, no extension, no key...): exit code 2."""


# --------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------


def script_args(argv: Sequence[str]) -> list[str]:
    """The script's own arguments: after ``--`` when there is one (Blender's convention), else argv[1:]."""
    args = list(argv)
    if "--" in args:
        return args[args.index("--") + 1:]
    return args[1:]


def _option_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(text)
    return text


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="batch.py", description="Generate a rigged character for every image of a folder with Marionette.",
        epilog="Run as `blender -b -P scripts/batch.py -- ARGS` or `python scripts/batch.py ARGS` (PyPI bpy).")
    parser.add_argument("--provider", default="meshy", help="Marionette provider id (default: meshy)")
    parser.add_argument("--images", type=Path, required=True, help="folder of input images")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--rig", action="store_true", help="rig the characters (needed for animations)")
    parser.add_argument("--animations", default="",
                        help="comma-separated animation names or Meshy action ids, e.g. Walking,Running,Idle,92")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a provider option, e.g. --option ai_model=meshy-5 --option target_polycount=20000")
    parser.add_argument("--height", type=float, default=None, metavar="METRES",
                        help="scale every character to this height (default: the provider's, else as delivered)")
    parser.add_argument("--in-place", action="store_true",
                        help="locomotion animations (walk, run...) loop in place (the originals are kept too)")
    parser.add_argument("--concurrency", type=int, default=10,
                        help="jobs at once (default 10: Meshy Pro's queue); a job with k extra animations counts k")
    parser.add_argument("--format", choices=("blend", "glb"), default="blend", help="one .blend or .glb per result")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds to wait for one job before reporting it (it keeps running; re-run to collect)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="submit again inputs whose job failed on the provider or is unknown (pays again)")
    parser.add_argument("--extension-zip", type=Path, default=None,
                        help="when Marionette is not installed, install this zip instead of building the checkout")
    parser.add_argument("--allow-online", action="store_true",
                        help="turn on Blender's Allow Online Access for this run (needed for a real provider with "
                             "the PyPI bpy module; in Blender use --online-mode or the preference)")
    args = parser.parse_args(script_args(argv) if argv else [])
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    options: dict[str, Any] = {}
    for item in args.option:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            parser.error(f"--option takes NAME=VALUE, not {item!r}")
        options[name.strip()] = _option_value(value.strip())
    if args.height is not None:
        if not args.height > 0:
            parser.error("--height takes a positive number of metres")
        options["height"] = args.height
    if args.in_place:
        options["in_place"] = True
    args.options = options
    names = [a.strip() for a in args.animations.split(",") if a.strip()]
    if names and not args.rig:
        parser.error("--animations needs --rig (animations play on the rig)")
    basics = BASIC_ANIMATIONS.get(args.provider, frozenset())
    args.basic = [n for n in names if _norm(n) in basics]
    args.extra = [int(n) if n.isdigit() else n for n in names if _norm(n) not in basics]
    return args


def _norm(name: str) -> str:
    return name.lower().replace("_", "").replace(" ", "")


# --------------------------------------------------------------------------------------------------
# Inputs, state and summary files
# --------------------------------------------------------------------------------------------------


@dataclass
class Item:
    """One input image and what became of it."""

    path: Path
    sha256: str
    output: Path
    status: str = "pending"  # pending, succeeded, failed
    job_id: str | None = None
    error: str | None = None
    error_code: str | None = None
    earlier: bool = False  # finished in an earlier run
    actions: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return str(self.path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def collect_inputs(folder: Path, out: Path, fmt: str) -> list[Item]:
    if not folder.is_dir():
        raise BatchError(f"--images {folder} is not a folder")
    paths = sorted(p.resolve() for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise BatchError(f"no images in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    stems: dict[str, int] = {}
    for path in paths:
        stems[path.stem.lower()] = stems.get(path.stem.lower(), 0) + 1
    items = []
    for path in paths:
        name = path.stem if stems[path.stem.lower()] == 1 else f"{path.stem}_{path.suffix.lstrip('.').lower()}"
        items.append(Item(path=path, sha256=file_sha256(path), output=out / f"{name}.{fmt}"))
    return items


def write_json(path: Path, payload: Any) -> None:
    """Atomically: a kill leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class State:
    """``batch_state.json``: input path -> {sha256, job_id, status, settings, output, ...}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self.entries = dict(data["inputs"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                aside = path.with_name(f"{path.stem}.damaged-{time.strftime('%Y%m%d-%H%M%S')}.json")
                path.replace(aside)
                raise BatchError(f"{path} could not be read ({exc}); it was moved to {aside.name}. Its job ids "
                                 "are in there: look them up before re-running, or nothing is known.") from exc

    def get(self, item: Item) -> dict[str, Any] | None:
        """The entry of this input, by path; if it has no job, the entry of the same bytes under another
        path that has one (a moved file, or an identical copy: one job serves both)."""
        own = self.entries.get(item.key)
        if own is not None and own.get("sha256") != item.sha256:
            own = None
        if own is not None and own.get("job_id"):
            return own
        other = next((e for e in self.entries.values() if e.get("sha256") == item.sha256 and e.get("job_id")), None)
        return other or own

    def put(self, item: Item, **values: Any) -> None:
        entry = self.entries.setdefault(item.key, {})
        if entry.get("sha256") != item.sha256:
            entry.clear()
        entry["sha256"] = item.sha256
        entry.update(values)
        self.save()

    def save(self) -> None:
        write_json(self.path, {"version": STATE_VERSION, "inputs": self.entries})


def write_summary(out: Path, items: list[Item], args: argparse.Namespace, interrupted: bool) -> Path:
    ok = [i for i in items if i.status == "succeeded"]
    failed = [i for i in items if i.status == "failed"]
    payload = {
        "provider": args.provider,
        "format": args.format,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "interrupted": interrupted,
        "counts": {"inputs": len(items), "succeeded": len(ok), "failed": len(failed),
                   "not_finished": len(items) - len(ok) - len(failed),
                   "done_in_an_earlier_run": sum(1 for i in ok if i.earlier)},
        "succeeded": [{"input": i.key, "output": str(i.output), "job_id": i.job_id, "actions": i.actions,
                       "earlier_run": i.earlier} for i in ok],
        "failed": [{"input": i.key, "job_id": i.job_id, "error": i.error, "error_code": i.error_code}
                   for i in failed],
        "not_finished": [{"input": i.key, "job_id": i.job_id} for i in items if i.status == "pending"],
    }
    path = out / SUMMARY_NAME
    write_json(path, payload)
    return path


# --------------------------------------------------------------------------------------------------
# Progress in the terminal
# --------------------------------------------------------------------------------------------------


class Progress:
    """A one-line bar redrawn in place on a terminal; on a pipe or a log file, a line per change."""

    def __init__(self, total: int, stream: TextIO = sys.stdout) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._last = ""
        self._last_print = 0.0
        self._drawn = False

    def clear(self) -> None:
        """Take the bar off the line (before Blender prints something of its own)."""
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False

    def event(self, text: str) -> None:
        """A line that stays (submitted, finished, failed)."""
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()
        self._last = ""

    def update(self, done: int, failed: int, running: int, fraction: float, detail: str = "") -> None:
        width = 24
        filled = min(width, round(width * fraction))
        elapsed = int(time.monotonic() - self.started)
        counts = f"{done + failed}/{self.total} done ({failed} failed), {running} running"
        clock = f"{elapsed // 60:02d}:{elapsed % 60:02d}"
        bar = f"[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} {counts}  {clock}"
        now = time.monotonic()
        if self.tty:
            line = bar + (f"  {detail}" if detail else "")
            self.stream.write("\r\033[K" + line[:160])
            self.stream.flush()
            self._drawn = True
        elif counts != self._last or now - self._last_print > 30:
            self.stream.write(bar + "\n")
            self.stream.flush()
            self._last, self._last_print = counts, now

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


# --------------------------------------------------------------------------------------------------
# The extension
# --------------------------------------------------------------------------------------------------


def _installed_modules() -> list[str]:
    addon_utils: Any = importlib.import_module("addon_utils")
    found = [m.__name__ for m in addon_utils.modules(refresh=True)
             if re.fullmatch(rf"bl_ext\.[A-Za-z0-9_]+\.{EXTENSION_ID}", m.__name__)]
    return sorted(found, key=lambda name: (name != PREFERRED_MODULE, name))


def build_checkout_zip() -> Path:
    """This checkout's extension zip for this platform, built with Blender's own extension tool."""
    import bpy

    from scripts import build as builder

    utils: Any = bpy.utils
    tool = Path(utils.system_resource("SCRIPTS"), "addons_core", "bl_pkg", "cli", "blender_ext.py")
    original = builder.find_blender_ext
    if tool.is_file():  # the running Blender's own copy: found the same way in Blender and in PyPI bpy
        builder.find_blender_ext = lambda bpy_python=None: tool  # type: ignore[assignment]
    try:
        return builder.build(platforms=[builder.host_platform()])[0]
    except builder.BuildError as exc:
        raise BatchError(f"Marionette is not installed and building it from {ROOT} failed: {exc}") from exc
    finally:
        builder.find_blender_ext = original  # type: ignore[assignment]


def enable_extension(extension_zip: Path | None, say: Any) -> str:
    """Enable the installed Marionette, or install the checkout's (or the given zip) first; its module name."""
    import addon_utils
    import bpy

    enabled = {addon.module for addon in bpy.context.preferences.addons}
    installed = _installed_modules()
    for module in installed:
        if module in enabled and module in sys.modules:
            say(f"using the enabled extension {module}")
            return module
    for module in installed:
        errors: list[BaseException] = []
        addon_utils.enable(module, default_set=True, handle_error=errors.append)
        if not errors and module in sys.modules:
            say(f"enabled the installed extension {module}")
            return module
        say(f"could not enable {module}: {errors[0] if errors else 'not loaded'}")
    from tests.support import blender_install

    zip_path = extension_zip.resolve() if extension_zip else None
    if zip_path is None:
        say(f"Marionette is not installed: building it from {ROOT}")
        zip_path = build_checkout_zip()
    elif not zip_path.is_file():
        raise BatchError(f"--extension-zip {zip_path} does not exist")
    say(f"installing {zip_path.name} into the user_default repository")
    try:
        return blender_install.install_and_enable(zip_path)
    except blender_install.ExtensionInstallError as exc:
        raise BatchError(str(exc)) from exc


# --------------------------------------------------------------------------------------------------
# The batch
# --------------------------------------------------------------------------------------------------


@dataclass
class Group:
    """Inputs with the same bytes: one job serves them all (Marionette would merge them anyway)."""

    items: list[Item]
    weight: int
    job_id: str | None = None
    waiting_since: float = 0.0
    stage: str = ""
    progress: float = 0.0

    @property
    def first(self) -> Item:
        return self.items[0]


class Batch:
    def __init__(self, args: argparse.Namespace, module: str, items: list[Item], progress: Progress) -> None:
        self.args = args
        self.module = module
        self.items = items
        self.progress = progress
        self.api: Any = importlib.import_module(f"{module}.api")  # Marionette's public API, and nothing else
        self.state = State(args.out / STATE_NAME)
        self.settings = json.dumps({"provider": args.provider, "rig": args.rig,
                                    "animations": sorted(str(a) for a in args.extra),
                                    "options": args.options}, sort_keys=True)
        self.pending: deque[Group] = deque()
        self.waiting: dict[str, Group] = {}

    def check_provider(self) -> None:
        known = self.api.providers()
        if self.args.provider not in known:
            raise BatchError(f"unknown provider {self.args.provider!r}; Marionette knows {', '.join(known)}")

    # -- planning ----------------------------------------------------------------------------------

    def _known_job(self, job_id: str) -> Any | None:
        try:
            return self.api.get(job_id)
        except KeyError:
            return None

    def _adopt(self, entry: dict[str, Any], item: Item) -> str | None:
        """The job a run killed between submitting and noting the id left in Marionette's journal: named
        after this input (or an identical copy of it) and created after the intent was noted."""
        since = float(entry.get("intent_at") or 0.0) - 5.0
        names = {self._job_name(i) for i in self.items if i.sha256 == item.sha256}
        claimed = {e.get("job_id") for e in self.state.entries.values()}
        for job in self.api.find_jobs(names, provider=self.args.provider, since=since):
            if job.id not in claimed:
                return str(job.id)
        return None

    @staticmethod
    def _job_name(item: Item) -> str:
        return item.output.stem

    def plan(self) -> None:
        groups: dict[str, Group] = {}
        weight = max(1, len(self.args.extra))
        for item in self.items:
            entry = self.state.get(item)
            if entry is not None and entry.get("settings") not in (None, self.settings):
                self.progress.event(f"  {item.path.name}: other settings than its earlier job; submitting anew")
                entry = None
            job_id = entry.get("job_id") if entry else None
            if entry is not None and not job_id and entry.get("status") == "submitting":
                job_id = self._adopt(entry, item)
                if job_id:
                    self.state.put(item, job_id=job_id, status="submitted", settings=self.settings)
            if job_id:
                item.job_id = job_id
                info = self._known_job(job_id)
                if entry and entry.get("status") == "succeeded" and item.output.is_file() \
                        and entry.get("output") == str(item.output):
                    item.status, item.earlier = "succeeded", True
                    item.actions = list(entry.get("actions") or [])
                    self.progress.event(f"  {item.path.name}: done in an earlier run ({item.output.name})")
                    continue
                if info is None and not self.args.retry_failed:
                    self._fail(item, f"job {job_id} is no longer in Marionette's journal, so its result cannot "
                                     "be collected; --retry-failed submits the image again (and pays again)")
                    continue
                remote_failure = info is not None and info.state.value in ("FAILED", "CANCELED")
                if remote_failure and not self.args.retry_failed:
                    self._fail(item, f"{info.error or info.state.value} (job {job_id}; --retry-failed submits "
                                     "it again)", info.error_code)
                    continue
                if info is not None and not remote_failure:
                    group = groups.setdefault(f"job:{job_id}", Group([], weight, job_id=job_id))
                    group.items.append(item)
                    continue
                item.job_id = None
            groups.setdefault(item.sha256, Group([], weight)).items.append(item)
        for group in groups.values():
            if group.job_id:
                group.waiting_since = time.monotonic()
                self.waiting[group.job_id] = group
                self.progress.event(f"  {group.first.path.name}: waiting for job {group.job_id} "
                                    "(submitted by an earlier run)")
            else:
                self.pending.append(group)

    # -- running -----------------------------------------------------------------------------------

    def _load(self) -> int:
        return sum(g.weight for g in self.waiting.values())

    def _submit(self, group: Group) -> None:
        item = group.first
        self.progress.clear()
        for member in group.items:
            self.state.put(member, status="submitting", intent_at=time.time(), settings=self.settings,
                           job_id=None, output=str(member.output))
        animations: list[int | str] = list(self.args.extra)
        try:
            job_id = self.api.submit(self.args.provider, image=str(item.path), rig=self.args.rig,
                                     animations=animations, options=dict(self.args.options),
                                     name=self._job_name(item))
        except self.api.ConfigError as exc:
            for member in group.items:
                self.state.put(member, status="new")
            raise BatchError(str(exc)) from exc
        except self.api.MarionetteError as exc:
            for member in group.items:
                self.state.put(member, status="failed", error=str(exc))
                self._fail(member, str(exc), getattr(exc, "code", None))
            return
        existing = self.waiting.get(job_id)
        for member in group.items:
            member.job_id = job_id
            self.state.put(member, status="submitted", job_id=job_id)
        if existing is not None:  # Marionette merged an identical submit into a running job
            existing.items.extend(group.items)
            return
        group.job_id, group.waiting_since = job_id, time.monotonic()
        self.waiting[job_id] = group
        same = f" (with {len(group.items) - 1} identical file(s))" if len(group.items) > 1 else ""
        self.progress.event(f"  submitted {item.path.name}{same} -> job {job_id}")

    def _fail(self, item: Item, message: str, code: str | None = None) -> None:
        item.status, item.error, item.error_code = "failed", message, code
        self.progress.event(f"  FAILED {item.path.name}: {message}" + (f" ({code})" if code else ""))

    def _save_result(self, item: Item) -> None:
        import bpy

        item.output.parent.mkdir(parents=True, exist_ok=True)
        if self.args.format == "glb":
            exporter: Any = bpy.ops.export_scene.gltf
            known = {p.identifier for p in exporter.get_rna_type().properties}
            wanted = {"filepath": str(item.output), "export_format": "GLB", "use_selection": True,
                      "export_animations": True, "export_animation_mode": "ACTIONS", "export_skins": True,
                      "export_apply": False, "check_existing": False}
            result = exporter(**{k: v for k, v in wanted.items() if k in known})
            if "FINISHED" not in result:
                raise RuntimeError(f"the glTF export returned {result}")
        else:
            bpy.ops.wm.save_as_mainfile(filepath=str(item.output), check_existing=False, copy=True)

    def _collect(self, group: Group, info: Any) -> None:
        import bpy

        assert group.job_id is not None
        if info.state.value != "SUCCEEDED":
            for item in group.items:
                self.state.put(item, status="failed", error=info.error or info.state.value)
                self._fail(item, info.error or f"the job ended {info.state.value}", info.error_code)
            return
        self.progress.clear()
        try:
            bpy.ops.wm.read_homefile(use_empty=True)
            imported = self.api.import_result(group.job_id)
            for item in group.items:
                self._save_result(item)
        except Exception as exc:  # an import or a save failed: that input fails, the batch goes on
            message = f"{exc.__class__.__name__}: {exc}" if not isinstance(exc, self.api.MarionetteError) \
                else str(exc)
            for item in group.items:
                self.state.put(item, status="failed", error=message)
                self._fail(item, message)
            return
        for item in group.items:
            item.status, item.actions = "succeeded", list(imported.actions)
            self.state.put(item, status="succeeded", output=str(item.output), actions=item.actions)
            self.progress.event(f"  done {item.path.name} -> {item.output}")

    def run(self) -> None:
        total = len(self.items)
        while self.pending or self.waiting:
            while self.pending and (not self.waiting or self._load() + self.pending[0].weight
                                    <= self.args.concurrency):
                self._submit(self.pending.popleft())
            self.api.pump()
            detail = ""
            for job_id, group in list(self.waiting.items()):
                info = self.api.get(job_id)
                if (info.stage, info.progress) != (group.stage, group.progress):
                    group.stage, group.progress = info.stage, info.progress
                    detail = f"{group.first.path.name}: {info.stage}"
                if info.state.active:
                    stuck = self.api.stalled(job_id)
                    if stuck:
                        del self.waiting[job_id]
                        for item in group.items:
                            self._fail(item, stuck)
                    elif time.monotonic() - group.waiting_since > self.args.timeout:
                        del self.waiting[job_id]
                        for item in group.items:
                            self._fail(item, f"job {job_id} is still {info.state.value} ({info.stage}) after "
                                             f"{self.args.timeout:g} s; it keeps running: re-run to collect it")
                    continue
                del self.waiting[job_id]
                self._collect(group, info)
            done = sum(1 for i in self.items if i.status == "succeeded")
            failed = sum(1 for i in self.items if i.status == "failed")
            running = sum(len(g.items) for g in self.waiting.values())
            partial = sum(g.progress * len(g.items) for g in self.waiting.values())
            self.progress.update(done, failed, running, (done + failed + partial) / max(1, total), detail)
            if self.pending or self.waiting:
                time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def batch_preferences(module: str, allow_online: bool) -> Iterator[None]:
    """Marionette's "Import When Done" off (the batch imports each result itself), online access on if
    asked; both restored afterwards."""
    import bpy

    addon = bpy.context.preferences.addons.get(module)
    prefs = addon.preferences if addon is not None else None
    auto = getattr(prefs, "auto_import", None)
    system = bpy.context.preferences.system
    online = system.use_online_access
    if prefs is not None and auto is not None:
        prefs.auto_import = False
    if allow_online:
        system.use_online_access = True
    try:
        yield
    finally:
        if prefs is not None and auto is not None:
            prefs.auto_import = auto
        system.use_online_access = online


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    out: Path = args.out.resolve()
    args.out = out
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(0)
    say = progress.event
    try:
        items = collect_inputs(args.images.resolve(), out, args.format)
        import bpy  # noqa: F401  (the PyPI module: Blender starts here)

        module = enable_extension(args.extension_zip, say)
    except BatchError as exc:
        print(f"batch.py: {exc}", file=sys.stderr)
        return 2
    progress = Progress(len(items))
    extra = ", ".join(str(a) for a in args.extra) or "none"
    say(f"{len(items)} image(s) from {args.images} -> {out} ({args.format}); provider {args.provider}, "
        f"rig {'on' if args.rig else 'off'}, basic animations {', '.join(args.basic) or 'none'}, extra {extra}; "
        f"up to {args.concurrency} at once")
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    interrupted = False
    status = 0
    try:
        batch = Batch(args, module, items, progress)
        with batch_preferences(module, args.allow_online):
            batch.check_provider()
            batch.plan()
            batch.run()
    except KeyboardInterrupt:
        interrupted = True
        status = 130
    except BatchError as exc:
        progress.close()
        print(f"batch.py: {exc}", file=sys.stderr)
        status = 2
    finally:
        signal.signal(signal.SIGTERM, old_term)
        progress.close()
    summary = write_summary(out, items, args, interrupted)
    ok = [i for i in items if i.status == "succeeded"]
    failed = [i for i in items if i.status == "failed"]
    unfinished = [i for i in items if i.status == "pending"]
    print(f"\n{len(ok)} succeeded ({sum(1 for i in ok if i.earlier)} from an earlier run), {len(failed)} failed"
          + (f", {len(unfinished)} not finished" if unfinished else "") + f"; summary: {summary}")
    for item in failed:
        print(f"  FAILED {item.path.name}: {item.error}" + (f" ({item.error_code})" if item.error_code else ""))
    if interrupted:
        print("Interrupted. Submitted jobs keep running on the provider; run the same command again to collect "
              "them without paying twice.")
    if status == 0 and (failed or unfinished):
        status = 1
    return status


def _exit(status: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    if IN_BLENDER:
        sys.exit(status)  # Blender exits with the script's code
    # The PyPI bpy 4.2 module can crash in its exit handlers once the glTF add-on has run (see
    # tests/assets/build_character.py); everything is written by now, so skip the interpreter teardown.
    os._exit(status)


if __name__ == "__main__":
    _exit(main(sys.argv))
