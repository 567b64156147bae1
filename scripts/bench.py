"""Marionette's benchmark: ratios measured in one run on this machine, against the local emulator.

Run with a Python that has the PyPI ``bpy`` module (``/work/venvs/b50/bin/python`` or ``.venv``)::

    python scripts/bench.py            # the full run, a few minutes on 2 cores
    python scripts/bench.py --quick    # fewer samples, under a minute

It installs the extension zip exactly as ``scripts/demo.py`` does (scratch Blender user folder set
before ``import bpy``, ``install_and_enable``, ``MARIONETTE_MESHY_BASE_URL`` pointing at the emulator on
127.0.0.1) and prints one table; nothing is asserted (tests never assert on time). What is measured:

* pump: the main-thread cost of one ``api.pump()`` (the timer's tick; wall clock around the call) with 1, 10
  and 50 jobs waiting in Meshy's queue (polling at Marionette's normal pace) while a worker thread
  downloads a 200 MB file with Marionette's downloader over and over (unthrottled, the worst case), and
  for comparison with the same jobs and no download;
* download: ``core.downloads.download`` against plain ``requests`` streaming the same 200 MB file from
  the same server (both write to a file in the same folder; Marionette also fsyncs), and the peak
  memory growth while Marionette downloads it: RSS sampled every 2 ms from /proc (the goal is judged on
  this, it counts every byte of the process) and tracemalloc's peak (Python allocations, a separate run);
  then both again with the server paced at 100 MB/s like a fast real link (at loopback speed the disk is
  what gets measured: Marionette fsyncs a result that was paid for, plain requests leaves it in the page
  cache);
* import: ``blender.importer.import_character`` (every animation laid out on the one armature) against a
  bare ``bpy.ops.import_scene.gltf`` of the same GLB, one character with 1, 10 and 127 actions, built
  with ``bpy`` here from ``tests/assets/build_character.py``'s functions;
* normalisation: the same import with and without normalisation (normalize.py: unit scale, height,
  ground, bone lengths, location keys of every action scaled) of a rig delivered at object scale 0.01
  with centimetre data and 1 or 127 actions, the difference as a share of the bare glTF import;
* done -> in scene: from the emulator marking a job's last task SUCCEEDED to the character in the
  scene, with the pump called at the interval it asks for (as Blender's timer does), minus a bare
  ``requests`` download of the same files plus a bare glTF import of each;
* HTTP requests per job per minute while jobs wait in the queue (Marionette polls with backoff);
* enable at start: what enabling Marionette adds to Blender's start, as a ratio to a bare ``import bpy``,
  in Blender 4.5 LTS and 5.3 (fresh processes; ``scripts/bench_startup.py``);
* retarget: ``blender.retarget.retarget`` putting 127 animations of 60 frames (and then one) from a
  60-bone T-pose rig onto a 60-bone A-pose rig with Unreal names (``--only retarget`` runs this alone).

Timings that are compared (import, download) are the best of several alternating runs: other load on
the machine only ever adds time. The pump percentiles cannot be cleaned that way; the header shows the
load average when the run started.

The emulator runs in this process (its request log is read with ``emu.count()``/``emu.requests``); its
handler threads compete for the GIL with the pump like a busy add-on would, which makes the pump
figures pessimistic rather than flattering.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import bench_startup  # noqa: E402
from scripts.build import build, host_platform  # noqa: E402
from tests.assets.cache import ensure_assets  # noqa: E402
from tests.emulator import Emulator, bigfile  # noqa: E402
from tests.support import blender_install  # noqa: E402
from tests.support.served import emulator_assets  # noqa: E402

BIG_SIZE = 200 * 1024 * 1024
ANIMATION_COUNTS = (1, 10, 127)
NORMALISE_COUNTS = (1, 127)
PUMP_JOB_COUNTS = (1, 10, 50)
LINK_RATE = 100 * 1024 * 1024  # bytes per second: a fast real connection
IMAGE_TASK = "/openapi/v1/image-to-3d"


@dataclass(frozen=True)
class Plan:
    """How many samples each part takes; --quick shrinks them."""

    pump_seconds: float
    pump_every: float
    download_reps: int
    import_reps: dict[int, int]
    latency_reps: int
    link_reps: int = 2


FULL = Plan(pump_seconds=20.0, pump_every=0.01, download_reps=5, import_reps={1: 25, 10: 15, 127: 9}, latency_reps=3)
QUICK = Plan(pump_seconds=3.0, pump_every=0.01, download_reps=1, import_reps={1: 3, 10: 3, 127: 1}, latency_reps=1,
             link_reps=1)


@dataclass
class Row:
    metric: str
    measured: str
    goal: str = ""
    met: bool | None = None
    notes: list[str] = field(default_factory=list)


def log(text: str) -> None:
    print(f"  .. {text}", flush=True)


# --------------------------------------------------------------------------------------------------
# Test characters with N actions in one GLB (built with bpy: tests/assets/many_actions.py)
# --------------------------------------------------------------------------------------------------


def build_animation_glbs(out_dir: Path, counts: tuple[int, ...], scaled: bool = False) -> dict[int, Path]:
    """One GLB per count: the test humanoid with that many actions, each on its own NLA track.

    Like ``multi.glb`` in build_character.build_all, with the five test motions repeated under new names.
    `scaled`: delivered like Meshy's rigs, at object scale 0.01 with the data (and root motion) in cm.
    Resets the running Blender to an empty factory scene (call before installing the extension).
    """
    import bpy

    from tests.assets.many_actions import build_many_actions_glb

    result: dict[int, Path] = {}
    for count in counts:
        path = out_dir / f"character_{count}_actions{'_scaled' if scaled else ''}.glb"
        result[count] = build_many_actions_glb(path, count, scaled)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return result


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class RssSampler:
    """Peak resident set size while the block runs, sampled every 2 ms on a thread (Linux /proc)."""

    def __init__(self) -> None:
        self.start = rss_bytes()
        self.peak = self.start or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            value = rss_bytes()
            if value is not None and value > self.peak:
                self.peak = value

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int | None:
        return None if self.start is None else self.peak - self.start


def mb(value: float) -> str:
    return f"{value / (1024 * 1024):.1f} MB"


def ms(value: float) -> str:
    return f"{value * 1000:.2f} ms"


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, plan: Plan, emu: Emulator, big_url: str, work: Path, module: str,
                 assets: dict[str, Path]) -> None:
        self.plan = plan
        self.emu = emu
        self.big_url = big_url
        self.work = work
        self.assets = assets
        self.module = module
        self.api = self._mod("api")
        self.importer = self._mod("blender.importer")
        self.downloads = self._mod("core.downloads")
        self.http = self._mod("core.http")
        self.session = self._mod("blender.session").get()
        self.rows: list[Row] = []
        self._variant = 0
        self.big_files: Any = None  # the emulator's BigFiles app, to pace it like a real link

    def _mod(self, name: str) -> ModuleType:
        return importlib.import_module(f"{self.module}.{name}")

    def _options(self) -> dict[str, Any]:
        """Options that differ per job: Marionette merges identical submits made within 2 s."""
        self._variant += 1
        return {"target_polycount": 1000 + self._variant}

    def _empty_scene(self) -> None:
        import bpy

        bpy.ops.wm.read_homefile(use_empty=True)
        if self.module not in blender_install.enabled_addons():
            raise RuntimeError("reading the empty home file disabled the extension")

    # -- import ------------------------------------------------------------------------------------

    def bench_import(self, glbs: dict[int, Path]) -> None:
        import bpy

        def bare(path: Path) -> None:
            result = bpy.ops.import_scene.gltf(filepath=str(path))
            if "FINISHED" not in result:
                raise RuntimeError(f"import_scene.gltf({path.name}) returned {result}")

        def ours(path: Path) -> None:
            self.importer.import_character(path, (), collection_name="Bench", location=(0.0, 0.0, 0.0))

        def timed(fn: Callable[[Path], None], path: Path) -> float:
            self._empty_scene()
            gc.collect()
            start = time.perf_counter()
            fn(path)
            return time.perf_counter() - start

        smallest = glbs[min(glbs)]
        timed(bare, smallest)  # warm-up: first use loads the glTF add-on's modules
        timed(ours, smallest)
        for count, path in glbs.items():
            bare_times: list[float] = []
            our_times: list[float] = []
            for rep in range(self.plan.import_reps.get(count, 1)):
                pair = [(bare, bare_times), (ours, our_times)]
                for fn, into in pair if rep % 2 == 0 else reversed(pair):
                    into.append(timed(fn, path))
            actions = len(bpy.data.actions)
            bare_s, ours_s = min(bare_times), min(our_times)
            ratio = ours_s / bare_s
            self.rows.append(Row(f"import, {count} animation{'s' if count > 1 else ''}: Marionette / bare glTF",
                                 f"{ratio:.2f}  ({ours_s:.3f} s vs {bare_s:.3f} s)", "<= 1.15", ratio <= 1.15))
            log(f"import {count}: ours {[round(t, 3) for t in our_times]} s, "
                f"bare {[round(t, 3) for t in bare_times]} s ({actions} actions in the last scene)")
        self._empty_scene()

    def bench_normalise(self, glbs: dict[int, Path]) -> None:
        """Normalisation's share of a bare glTF import of the same file: the time spent in
        normalize.normalize during the import (timed around the call: on a loaded machine the difference of
        two whole imports is mostly noise), and for reference the whole import with and without it."""
        import bpy

        normalize_module: Any = self._mod("blender.normalize")
        real = normalize_module.normalize
        spent: list[float] = []

        def timed_normalize(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                spent.append(time.perf_counter() - start)

        def bare(path: Path) -> None:
            bpy.ops.import_scene.gltf(filepath=str(path))

        def without(path: Path) -> None:
            self.importer.import_character(path, (), collection_name="Bench", location=(0.0, 0.0, 0.0),
                                           scene_fit=self.importer.SceneFit(normalize=False))

        def with_it(path: Path) -> None:
            self.importer.import_character(path, (), collection_name="Bench", location=(0.0, 0.0, 0.0),
                                           scene_fit=self.importer.SceneFit(normalize=True))

        def timed(fn: Callable[[Path], None], path: Path) -> float:
            self._empty_scene()
            gc.collect()
            start = time.perf_counter()
            fn(path)
            return time.perf_counter() - start

        normalize_module.normalize = timed_normalize
        try:
            timed(with_it, glbs[min(glbs)])  # warm-up
            for count, path in glbs.items():
                times: dict[str, list[float]] = {"bare": [], "without": [], "with": []}
                spent.clear()
                runs = [("bare", bare), ("without", without), ("with", with_it)]
                for rep in range(self.plan.import_reps.get(count, 1) + 2):
                    for name, fn in runs if rep % 2 == 0 else list(reversed(runs)):
                        times[name].append(timed(fn, path))
                best = {name: min(values) for name, values in times.items()}
                share = min(spent) / best["bare"]
                self.rows.append(Row(
                    f"import, {count} animation{'s' if count > 1 else ''} of a 0.01-scale rig: normalisation's cost",
                    f"+{share * 100:.1f}% of the bare import ({min(spent) * 1000:.1f} ms in normalize, bare "
                    f"{best['bare']:.3f} s; whole import {best['with']:.3f} s with, {best['without']:.3f} s without)",
                    "<= +15%", share <= 0.15))
                log(f"normalise {count}: normalize {[round(t * 1000, 1) for t in spent]} ms, "
                    + ", ".join(f"{k} {[round(t, 3) for t in v]}" for k, v in times.items()))
        finally:
            normalize_module.normalize = real
        self._empty_scene()

    # -- download ----------------------------------------------------------------------------------

    def _marionette_download(self, dest: Path) -> Path:
        import requests

        stop, cancel = threading.Event(), threading.Event()
        with requests.Session() as session:
            path: Path = self.downloads.download(
                session, self.big_url, dest, pacer=self.http.Pacer(cancel, stop), timing=self.http.Timing(),
                online_access=lambda: False, expect=("glb",))
        return path

    def _plain_download(self, dest: Path, fsync: bool = False) -> Path:
        import requests

        with requests.get(self.big_url, stream=True, timeout=60) as response, open(dest, "wb") as fh:
            response.raise_for_status()
            for chunk in response.iter_content(1 << 20):
                fh.write(chunk)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        return dest

    def _plain_download_fsync(self, dest: Path) -> Path:
        return self._plain_download(dest, fsync=True)

    def bench_download(self) -> None:
        folder = self.work / "downloads"
        folder.mkdir(exist_ok=True)

        def timed(fn: Callable[[Path], Path], name: str) -> float:
            gc.collect()
            start = time.perf_counter()
            path = fn(folder / name)
            elapsed = time.perf_counter() - start
            if path.stat().st_size != BIG_SIZE:
                raise RuntimeError(f"{path} has {path.stat().st_size} bytes, not {BIG_SIZE}")
            path.unlink()
            return elapsed

        timed(self._plain_download, "warmup.bin")  # page cache of the served file, connection setup
        ours: list[float] = []
        plain: list[float] = []
        synced: list[float] = []
        for rep in range(self.plan.download_reps):
            runs = [(self._marionette_download, "ours.glb", ours), (self._plain_download, "plain.bin", plain),
                    (self._plain_download_fsync, "synced.bin", synced)]
            for fn, name, into in runs if rep % 2 == 0 else reversed(runs):
                into.append(timed(fn, name))
        ours_rate = BIG_SIZE / min(ours)
        plain_rate = BIG_SIZE / min(plain)
        synced_rate = BIG_SIZE / min(synced)
        ratio = ours_rate / plain_rate
        self.rows.append(Row("download 200 MB: Marionette / plain requests (throughput)",
                             f"{ratio:.2f}  ({mb(ours_rate)}/s vs {mb(plain_rate)}/s)", ">= 0.9", ratio >= 0.9,
                             notes=[f"plain requests + fsync at the end (as Marionette does): {mb(synced_rate)}/s, "
                                    f"ratio {ours_rate / synced_rate:.2f}"]))
        log(f"download seconds: ours {[round(t, 3) for t in ours]} plain {[round(t, 3) for t in plain]} "
            f"plain+fsync {[round(t, 3) for t in synced]}")
        self._download_over_a_link(timed)

        gc.collect()
        with RssSampler() as sampler:
            self._marionette_download(folder / "rss.glb").unlink()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            self._marionette_download(folder / "traced.glb").unlink()
            traced = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        growth = sampler.growth
        if growth is None:  # no /proc: judge on tracemalloc
            self.rows.append(Row("peak memory growth, Marionette downloading 200 MB",
                                 f"tracemalloc +{mb(traced)} (no RSS on this OS)", "< 64 MB", traced < 64 << 20))
        else:
            self.rows.append(Row("peak memory growth, Marionette downloading 200 MB",
                                 f"RSS +{mb(growth)}, tracemalloc peak +{mb(traced)}", "< 64 MB (both)",
                                 max(growth, traced) < 64 << 20))

    def _download_over_a_link(self, timed: Callable[[Callable[[Path], Path], str], float]) -> None:
        """The same comparison with the server paced like a fast real link: at loopback speed the disk is
        what is measured (Marionette fsyncs a paid result; plain requests leaves it in the page cache)."""
        if self.big_files is None:
            return
        self.big_files.rate = LINK_RATE
        try:
            ours: list[float] = []
            plain: list[float] = []
            for rep in range(self.plan.link_reps):
                runs = [(self._marionette_download, "ours.glb", ours), (self._plain_download, "plain.bin", plain)]
                for fn, name, into in runs if rep % 2 == 0 else reversed(runs):
                    into.append(timed(fn, name))
        finally:
            self.big_files.rate = None
        ratio = min(plain) / min(ours)
        self.rows.append(Row(f"download 200 MB over a {mb(LINK_RATE)}/s link: Marionette / plain requests",
                             f"{ratio:.2f}  ({min(ours):.2f} s vs {min(plain):.2f} s)", ">= 0.9", ratio >= 0.9))

    # -- done -> in scene --------------------------------------------------------------------------

    def bench_latency(self) -> None:
        import bpy
        import requests

        meshy = self.emu.meshy
        timing = self.session.runner.timing
        saved = (timing.poll_interval, timing.max_poll_interval, meshy.pending_polls, meshy.running_polls)
        timing.poll_interval, timing.max_poll_interval = 0.05, 0.2
        meshy.pending_polls, meshy.running_polls = 1, 2
        overheads: list[float] = []
        totals: list[float] = []
        bares: list[float] = []
        try:
            for _rep in range(self.plan.latency_reps):
                self._empty_scene()
                job_id = self.api.submit("meshy", image=str(self.assets["sample.png"]), rig=True,
                                         animations=["Idle", "Attack"], options=self._options(), name="Latency")
                in_scene = 0.0
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    interval = self.api.pump() or 0.1
                    job = self.session.store.get(job_id)
                    if job.imported:
                        in_scene = time.time()
                        break
                    if not job.state.active and not self.session.runner.is_running(job_id):
                        raise RuntimeError(f"latency job ended {job.state.value}: {job.error or job.import_error}")
                    time.sleep(interval)
                else:
                    raise RuntimeError("the latency job did not finish in 120 s")
                job = self.session.store.get(job_id)
                done = max(meshy.tasks[t.remote_id].finished_at for t in job.tasks if t.remote_id) / 1000.0
                total = in_scene - done

                # The same files with plain requests, then a bare glTF import of each into an empty scene.
                folder = self.work / f"bare_{job_id}"
                folder.mkdir()
                start = time.perf_counter()
                files = []
                for asset in job.assets:
                    target = folder / f"{asset.key.replace(':', '_')}.glb"
                    with requests.get(asset.url, timeout=60) as response:
                        response.raise_for_status()
                        target.write_bytes(response.content)
                    files.append(target)
                fetched = time.perf_counter() - start
                self._empty_scene()
                start = time.perf_counter()
                for target in files:
                    bpy.ops.import_scene.gltf(filepath=str(target))
                imported = time.perf_counter() - start
                shutil.rmtree(folder, ignore_errors=True)
                bare = fetched + imported
                totals.append(total)
                bares.append(bare)
                overheads.append(total - bare)
                log(f"latency: {total:.3f} s from done to scene; bare download {fetched:.3f} s + import "
                    f"{imported:.3f} s ({len(files)} files)")
        finally:
            timing.poll_interval, timing.max_poll_interval, meshy.pending_polls, meshy.running_polls = saved
        self._empty_scene()
        overhead = statistics.median(overheads)
        self.rows.append(Row("done -> character in scene, minus bare download + import",
                             f"{overhead:+.3f} s  ({statistics.median(totals):.3f} s - "
                             f"{statistics.median(bares):.3f} s)", "(no goal)"))

    # -- pump under load, and the polling rate -----------------------------------------------------

    @contextlib.contextmanager
    def _download_in_flight(self) -> Iterator[list[int]]:
        """A worker thread downloading the 200 MB file with Marionette's downloader, again and again."""
        stop = threading.Event()
        done: list[int] = []
        errors: list[BaseException] = []
        folder = self.work / "inflight"
        folder.mkdir(exist_ok=True)

        def run() -> None:
            while not stop.is_set():
                try:
                    self._marionette_download(folder / "big.glb").unlink()
                    done.append(BIG_SIZE)
                except BaseException as exc:
                    errors.append(exc)
                    return

        thread = threading.Thread(target=run, name="bench-download", daemon=True)
        thread.start()
        try:
            yield done
        finally:
            stop.set()
            thread.join(timeout=60)
            shutil.rmtree(folder, ignore_errors=True)
        if errors:
            raise RuntimeError(f"the background download failed: {errors[0]!r}") from errors[0]

    def _pump_samples(self, seconds: float) -> list[float]:
        samples: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            self.api.pump()
            samples.append(time.perf_counter() - start)
            time.sleep(self.plan.pump_every)
        return samples

    def bench_pump(self) -> None:
        meshy = self.emu.meshy
        meshy.pending_polls = 10**9  # every task waits in the queue for the whole measurement
        store = self.session.store
        jobs: list[str] = []
        submitted_at: dict[str, float] = {}
        results: dict[int, list[float]] = {}
        quiet: dict[int, list[float]] = {}
        self._empty_scene()
        self.api.pump()
        for count in PUMP_JOB_COUNTS:
            while len(jobs) < count:
                job_id = self.api.submit("meshy", image=str(self.assets["sample.png"]), rig=False,
                                         options=self._options(), name=f"Queued {len(jobs) + 1}")
                jobs.append(job_id)
                submitted_at[job_id] = time.time()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until every job has its task on Meshy
                self.api.pump()
                if all((task := store.get(j).task("image")) and task.remote_id for j in jobs):
                    break
                time.sleep(0.02)
            else:
                raise RuntimeError("the queued jobs were not all submitted in 60 s")
            quiet[count] = self._pump_samples(self.plan.pump_seconds / 2)
            with self._download_in_flight() as downloaded:
                results[count] = self._pump_samples(self.plan.pump_seconds)
            log(f"pump with {count} jobs: {len(results[count])} samples while {len(downloaded)} x 200 MB were "
                f"downloaded, {len(quiet[count])} without")
        measured_until = time.time()
        active = [j for j in jobs if store.get(j).state.active]
        for count, samples in results.items():
            p99 = percentile(samples, 0.99)
            alone = quiet[count]
            self.rows.append(Row(f"pump, {count} job{'s' if count > 1 else ''} active + a 200 MB download",
                                 f"p50 {ms(percentile(samples, 0.5))}  p99 {ms(p99)}  max {ms(max(samples))}",
                                 "p99 < 2 ms", p99 < 0.002,
                                 notes=[f"same jobs, no download: p50 {ms(percentile(alone, 0.5))}  "
                                        f"p99 {ms(percentile(alone, 0.99))}  max {ms(max(alone))}"]))
        # Polling rate: GETs on each job's task over the time it waited.
        per_job: list[tuple[float, int]] = []
        records = self.emu.requests
        for job_id in jobs:
            task = store.get(job_id).task("image")
            assert task is not None and task.remote_id
            path = f"{IMAGE_TASK}/{task.remote_id}"
            gets = sum(1 for r in records if r.method == "GET" and r.path == path and r.time <= measured_until)
            per_job.append((measured_until - submitted_at[job_id], gets))
        total_minutes = sum(w for w, _ in per_job) / 60.0
        total_gets = sum(g for _, g in per_job)
        longest_wait, longest_gets = max(per_job)
        poll = self.session.runner.timing
        self.rows.append(Row("HTTP requests per job per minute, waiting in the queue",
                             f"{total_gets / total_minutes:.1f} over all {len(jobs)} jobs; "
                             f"{longest_gets / (longest_wait / 60.0):.1f} for the first job ({longest_wait:.0f} s)",
                             "(no goal)",
                             notes=[f"polling every {poll.poll_interval:g} s, x1.25 per poll up to "
                                    f"{poll.max_poll_interval:g} s: {60 / poll.max_poll_interval:.0f}/min "
                                    "once settled"]))
        for job_id in active:
            self.api.cancel(job_id)
        deadline = time.monotonic() + 30
        while any(self.session.runner.is_running(j) for j in jobs) and time.monotonic() < deadline:
            self.api.pump()
            time.sleep(0.02)
        meshy.pending_polls = 2


def bench_startup_rows(zip_path: Path, runs: int) -> list[Row]:
    """Enabling Marionette / a bare `import bpy`, in each tested Blender whose venv is set up."""
    rows = []
    for venv in (".venv-bpy45", ".venv-bpy53"):
        python = ROOT / venv / "bin" / "python"
        if not python.exists():
            rows.append(Row(f"enable at start ({venv})", "not measured", f"<= {bench_startup.GOAL}", None,
                            [f"bash scripts/setup.sh {venv.removeprefix('.venv-')} first"]))
            continue
        result = bench_startup.measure(str(python), zip_path, runs)
        rows.append(Row(f"enable at start, Blender {result.blender}",
                        f"{result.ratio:.3f} ({result.enable_seconds * 1000:.0f} ms vs import bpy "
                        f"{result.bpy_seconds * 1000:.0f} ms)",
                        f"<= {bench_startup.GOAL}", result.ratio <= bench_startup.GOAL))
    return rows


# --------------------------------------------------------------------------------------------------
# Retargeting: 127 animations of 60 frames onto a 60-bone rig, and one animation
# --------------------------------------------------------------------------------------------------

RETARGET_ACTIONS = 127
RETARGET_FRAMES = 60


def _bench_humanoid(retarget: ModuleType, name: str, names: dict[str, str], a_pose: bool) -> Any:
    """A 60-bone humanoid (body, toes, fingers, twist bones, root, jaw, eyes) named by `names` (role -> name)."""
    import math

    import bpy
    from mathutils import Vector

    spine = [("hips", (0, 0, 0.92), (0, 0, 1.02), "root"), ("spine", (0, 0, 1.02), (0, 0, 1.12), "hips"),
             ("chest", (0, 0, 1.12), (0, 0, 1.26), "spine"), ("upper_chest", (0, 0, 1.26), (0, 0, 1.42), "chest"),
             ("neck", (0, 0, 1.42), (0, 0, 1.52), "upper_chest"), ("head", (0, 0, 1.52), (0, 0, 1.76), "neck"),
             ("jaw", (0, -0.02, 1.58), (0, -0.1, 1.56), "head"), ("eye.L", (0.03, -0.08, 1.66), (0.03, -0.1, 1.66),
                                                                   "head"),
             ("eye.R", (-0.03, -0.08, 1.66), (-0.03, -0.1, 1.66), "head")]
    bones: list[tuple[str, Any, Any, str | None]] = [("root", (0, 0, 0), (0, 0.2, 0), None)]
    bones += [(role, h, t, p) for role, h, t, p in spine]
    drop = math.radians(40.0) if a_pose else 0.0

    def arm(x: float) -> tuple[float, float, float]:
        dx = x - 0.18
        return (0.18 + dx * math.cos(drop), 0.0, 1.38 - dx * math.sin(drop))

    for side, sign in (("L", 1.0), ("R", -1.0)):
        def m(p: Any, sign: float = sign) -> tuple[float, float, float]:
            return (p[0] * sign, p[1], p[2])
        limb = [("shoulder", (0.05, 0, 1.38), (0.18, 0, 1.38), "upper_chest"),
                ("upper_arm", arm(0.18), arm(0.45), "shoulder"), ("upper_arm_twist", arm(0.3), arm(0.45), "upper_arm"),
                ("lower_arm", arm(0.45), arm(0.70), "upper_arm"), ("hand", arm(0.70), arm(0.78), "lower_arm"),
                ("upper_leg", (0.09, 0, 0.92), (0.09, 0, 0.50), "hips"),
                ("upper_leg_twist", (0.09, 0, 0.7), (0.09, 0, 0.5), "upper_leg"),
                ("lower_leg", (0.09, 0, 0.50), (0.09, 0, 0.10), "upper_leg"),
                ("foot", (0.09, 0, 0.10), (0.09, -0.12, 0.03), "lower_leg"),
                ("toes", (0.09, -0.12, 0.03), (0.09, -0.18, 0.03), "foot")]
        bones += [(f"{r}.{side}", m(h), m(t), p if p in ("hips", "upper_chest") else f"{p}.{side}")
                  for r, h, t, p in limb]
        for k, finger in enumerate(("thumb", "index", "middle", "ring", "pinky")):
            parent = f"hand.{side}"
            for seg in (1, 2, 3):
                a, b = arm(0.78 + 0.03 * (seg - 1)), arm(0.81 + 0.03 * (seg - 1))
                y = -0.03 + 0.015 * k
                bones.append((f"{finger}{seg}.{side}", m((a[0], y, a[2])), m((b[0], y, b[2])), parent))
                parent = f"{finger}{seg}.{side}"
    scene = bpy.context.scene
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for role, head, tail, _parent in bones:
        eb = data.edit_bones.new(names.get(role, role))
        eb.head, eb.tail = Vector(head), Vector(tail)
    for role, _head, _tail, parent_role in bones:
        if parent_role:
            data.edit_bones[names.get(role, role)].parent = data.edit_bones[names.get(parent_role, parent_role)]
    bpy.ops.object.mode_set(mode="OBJECT")
    assert len(data.bones) == 60, len(data.bones)
    return obj


def bench_retarget(module: str, rows: list[Row], reps: int) -> None:
    """Retarget 127 animations of 60 frames (and one) from a 60-bone rig onto another, named and posed
    differently (Unreal names, A-pose). The source's actions are written in bulk, not measured."""
    import bpy
    import numpy as np

    rt = importlib.import_module(f"{module}.blender.retarget")
    actions = importlib.import_module(f"{module}.blender.actions")
    bpy.ops.wm.read_homefile(use_empty=True)
    unreal = {"hips": "pelvis", "spine": "spine_01", "chest": "spine_02", "upper_chest": "spine_03",
              "neck": "neck_01", "head": "head"}
    for side, s in (("L", "l"), ("R", "r")):
        unreal.update({f"shoulder.{side}": f"clavicle_{s}", f"upper_arm.{side}": f"upperarm_{s}",
                       f"lower_arm.{side}": f"lowerarm_{s}", f"hand.{side}": f"hand_{s}",
                       f"upper_leg.{side}": f"thigh_{s}", f"lower_leg.{side}": f"calf_{s}",
                       f"foot.{side}": f"foot_{s}", f"toes.{side}": f"ball_{s}",
                       f"upper_arm_twist.{side}": f"upperarm_twist_01_{s}",
                       f"upper_leg_twist.{side}": f"thigh_twist_01_{s}"})
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            for seg in (1, 2, 3):
                unreal[f"{finger}{seg}.{side}"] = f"{finger}_0{seg}_{s}"
    source = _bench_humanoid(rt, "Source", {}, a_pose=False)
    target = _bench_humanoid(rt, "Target", unreal, a_pose=True)
    frames = np.arange(1, RETARGET_FRAMES + 1, dtype=np.float64)
    phase = np.linspace(0.0, 2.0 * np.pi, RETARGET_FRAMES)
    anim = source.animation_data_create()
    for index in range(RETARGET_ACTIONS):
        channels = []
        for k, bone in enumerate(source.data.bones):
            half = 0.3 * np.sin(phase + 0.1 * k + 0.05 * index) / 2.0
            axis = np.array([np.sin(k + index), np.cos(k), np.sin(2 * k + 1)])
            axis /= np.linalg.norm(axis)
            q = np.stack([np.cos(half), axis[0] * np.sin(half), axis[1] * np.sin(half), axis[2] * np.sin(half)])
            channels += [(bone.name, "rotation_quaternion", c, q[c]) for c in range(4)]
        channels += [("hips", "location", c, 0.02 * np.sin(phase + c)) for c in range(3)]
        action, slot = rt._write(rt.Baked(f"Motion_{index:03d}", frames, channels), f"Motion_{index:03d}", source)
        track = anim.nla_tracks.new()
        track.name = action.name
        strip = track.strips.new(action.name, 1, action)
        if slot is not None:
            strip.action_slot = slot
        track.mute = True
    times_all: list[float] = []
    times_one: list[float] = []
    one = [bpy.data.actions["Motion_000"]]
    for _ in range(reps):
        start = time.perf_counter()
        made = rt.retarget(source, target)
        times_all.append(time.perf_counter() - start)
        assert len(made) == RETARGET_ACTIONS
        start = time.perf_counter()
        rt.retarget(source, target, actions=one)
        times_one.append(time.perf_counter() - start)
    best_all, best_one = min(times_all), min(times_one)
    keys = sum(len(c.keyframe_points) for c in actions.fcurves(bpy.data.actions[made[0]],
                                                           rt._slot_for(bpy.data.actions[made[0]], None, target)))
    rows.append(Row(f"retarget {RETARGET_ACTIONS} animations x {RETARGET_FRAMES} frames, 60-bone rigs",
                    f"{best_all:.2f} s (best of {reps})", "< 10 s", best_all < 10.0,
                    notes=[f"{keys} keys per animation; T-pose source, A-pose target with Unreal names"]))
    rows.append(Row("retarget 1 animation", f"{best_one * 1000:.0f} ms (best of {reps})", "< 0.2 s",
                    best_one < 0.2))
    bpy.ops.wm.read_homefile(use_empty=True)


def print_table(rows: list[Row], header: str) -> None:
    width_metric = max(len(r.metric) for r in rows)
    width_measured = max(len(r.measured) for r in rows)
    width_goal = max(len(r.goal) for r in rows)
    print()
    print(header)
    line = f"{'metric':<{width_metric}}  {'measured':<{width_measured}}  {'goal':<{width_goal}}  result"
    print(line)
    print("-" * len(line))
    for row in rows:
        verdict = "" if row.met is None else ("met" if row.met else "NOT met")
        print(f"{row.metric:<{width_metric}}  {row.measured:<{width_measured}}  {row.goal:<{width_goal}}  {verdict}")
        for note in row.notes:
            print(f"{'':<{width_metric}}    {note}")
    print(flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples: under a minute")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (printed at the end)")
    parser.add_argument("--only", default="", metavar="STEPS",
                        help="comma-separated steps to run: startup, pump, download, import, normalisation, "
                             "latency, retarget")
    parser.add_argument("--startup-only", action="store_true", help="only the enable-at-start rows")
    parser.add_argument("--only-retarget", action="store_true", help="measure retargeting alone (--only retarget)")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    started = time.monotonic()
    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    work = Path(tempfile.mkdtemp(prefix="marionette-bench-"))
    blender_install.prepare_user_dir(work / "user")  # before `import bpy`
    for name in ("MARIONETTE_POLL_INTERVAL", "MARIONETTE_RETRY_BASE", "MARIONETTE_MESHY_API_KEY", "MARIONETTE_HOME"):
        os.environ.pop(name, None)  # Marionette's own pacing is part of what is measured

    print("Marionette benchmark" + (" (--quick)" if args.quick else ""), flush=True)
    log("test assets and the extension zip")
    assets = ensure_assets()
    zip_path = build(platforms=[host_platform()])[0]
    wanted = {s.strip() for s in args.only.split(",") if s.strip()} | ({"retarget"} if args.only_retarget else set())
    startup_rows: list[Row] = []
    if not wanted or "startup" in wanted:
        log("enable at start (fresh Blender processes)")
        startup_rows = bench_startup_rows(zip_path, runs=3 if args.quick else 7)
    if args.startup_only:
        print_table(startup_rows, f"enable at start; {time.monotonic() - started:.0f} s")
        return 0
    import bpy

    log("characters with 1, 10 and 127 actions (bpy)")
    glbs = build_animation_glbs(work / "glbs", ANIMATION_COUNTS) if not wanted or "import" in wanted else {}
    scaled_glbs = (build_animation_glbs(work / "glbs", NORMALISE_COUNTS, scaled=True)
                   if not wanted or "normalisation" in wanted else {})
    big_path = bigfile.write_glb(work / "big.glb", BIG_SIZE)

    rows: list[Row] = []
    try:
        with Emulator(assets=emulator_assets(assets)) as emu:
            emu.meshy.balance = 10**9  # credits are not what is measured
            big = bigfile.mount(emu, {"big.glb": big_path})
            os.environ["MARIONETTE_MESHY_BASE_URL"] = emu.base_url
            module = blender_install.install_and_enable(zip_path)
            bench = Bench(plan, emu, big.url("big.glb"), work, module, assets)
            bench.big_files = big
            steps: list[tuple[str, Callable[[], None]]] = [
                ("pump under load", bench.bench_pump),
                ("download", bench.bench_download),
                ("import", lambda: bench.bench_import(glbs)),
                ("normalisation", lambda: bench.bench_normalise(scaled_glbs)),
                ("done -> in scene", bench.bench_latency),
                ("retarget", lambda: bench_retarget(module, bench.rows, 1 if args.quick else 3)),
            ]
            keys = ("pump", "download", "import", "normalisation", "latency", "retarget")
            for (label, step), key in zip(steps, keys, strict=True):
                if wanted and key not in wanted:
                    continue
                log(label)
                step()
            rows = bench.rows + startup_rows
            blender_install.uninstall(module)
    finally:
        if args.keep:
            print(f"scratch folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    order = ["pump", "download", "peak memory", "import", "normalis", "done", "HTTP", "enable", "retarget"]
    rows.sort(key=lambda r: next(i for i, prefix in enumerate(order) if r.metric.startswith(prefix)))
    cpu = os.cpu_count() or 0
    load = f"load average {load_at_start:.2f} at start; " if load_at_start is not None else ""
    header = (f"bpy {bpy.app.version_string}, Python {platform.python_version()}, {platform.system()} "
              f"{platform.machine()}, {cpu} CPU{'s' if cpu != 1 else ''}; {load}emulator on 127.0.0.1; "
              f"{'quick' if args.quick else 'full'} run in {time.monotonic() - started:.0f} s")
    print_table(rows, header)
    return 0


if __name__ == "__main__":
    status = main()
    # The bpy 4.2 module build can crash in its exit handlers once the glTF exporter has run (see
    # tests/assets/build_character.py): everything is printed, so skip the interpreter teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
