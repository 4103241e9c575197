"""Many bags for ``bevfusion-ros evaluate``: what to replay, and where.

What: each BAG argument is a bag (a rosbag2 folder), a folder holding bags (every bag below it, in
path order), or a manifest: a YAML file listing bags relative to itself, each with an optional time
range and tags such as weather or route, for the report's per-tag breakdown::

    bags:
      - path: drives/2026-11-03_ring
        tags: {weather: rain, route: ring}
        start_s: 30      # seconds from the bag's first message (optional)
        end_s: 630       # (optional)
      - drives/2026-11-04_highway

With ``slice_s``, a bag longer than that becomes slices of that many seconds, each its own task
(``tools.eval.bag_replay`` says how a slice sees what a whole-bag replay sees at its edges).

Where: one task after another in this process, or one Ray task each (the ``[fleet]`` extra) on a
local instance of ``workers`` workers or on the cluster at ``ray_address``. Ray retries a task
whose worker is lost once; a task that fails comes back as its bag's error and the rest still score;
Ctrl-C cancels what is running and the finished tasks are scored.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from bevfusion_ros.core.errors import BevFusionError, ConfigError, DependencyError
from bevfusion_ros.core.yamlfile import load_yaml
from bevfusion_ros.tools.eval.bag_replay import Tick, replay_task
from bevfusion_ros.tools.eval.records import BagOutcome, BagTask
from bevfusion_ros.tools.eval.scoring import Mapper, in_order

if TYPE_CHECKING:
    from bevfusion_ros.core.model import ModelSpec
    from bevfusion_ros.tools.eval.runs import EvaluationOptions

MANIFEST_KEYS = ("path", "start_s", "end_s", "tags")
MANIFEST_SUFFIXES = (".yaml", ".yml")
BAG_METADATA = "metadata.yaml"  # what makes a folder a rosbag2 bag
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
TICK_INTERVAL_S = 0.5  # how often a Ray worker reports its frames to the progress bar
R = TypeVar("R")
Score = Callable[["FleetRun", Mapper], R]  # what the evaluation makes of the outcomes


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        msg = f"evaluating on several workers needs Ray: pip install 'bevfusion_ros[fleet]' ({exc})"
        raise DependencyError(msg) from None
    return ray


def ray_installed() -> bool:
    try:
        import_ray()
    except DependencyError:
        return False
    return True


# -- what to replay ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BagEntry:
    path: Path
    tags: Mapping[str, str] = field(default_factory=dict)
    start_s: float | None = None
    end_s: float | None = None


def read_manifest(path: Path) -> list[BagEntry]:
    data = load_yaml(path, "manifest", ConfigError)
    items = data.get("bags") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        msg = f"manifest {path}: expected a non-empty list under 'bags:' (each a path, or a mapping of {MANIFEST_KEYS})"
        raise ConfigError(msg)
    entries = []
    for k, item in enumerate(items):
        where = f"manifest {path}: bags[{k}]"
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            msg = f"{where}: expected a path or a mapping with 'path' (keys: {', '.join(MANIFEST_KEYS)})"
            raise ConfigError(msg)
        unknown = sorted(set(item) - set(MANIFEST_KEYS))
        if unknown:
            msg = f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(MANIFEST_KEYS)}"
            raise ConfigError(msg)
        times = {}
        for key in ("start_s", "end_s"):
            value = item.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                msg = f"{where}: {key} must be a number of seconds >= 0, got {value!r}"
                raise ConfigError(msg)
            times[key] = None if value is None else float(value)
        if times["start_s"] is not None and times["end_s"] is not None and times["end_s"] <= times["start_s"]:
            msg = f"{where}: end_s ({times['end_s']}) must be after start_s ({times['start_s']})"
            raise ConfigError(msg)
        tags = item.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(v, (str, int, float, bool)) for v in tags.values()):
            msg = f"{where}: tags must map names to plain values, e.g. {{weather: rain, route: ring}}"
            raise ConfigError(msg)
        bag = Path(item["path"])
        entries.append(
            BagEntry(
                bag if bag.is_absolute() else path.parent / bag, {str(k): str(v) for k, v in tags.items()}, **times
            )
        )
    return entries


def bag_entries(paths: tuple[Path, ...]) -> list[BagEntry]:
    """The BAG arguments as bags: a bag, every bag under a folder, a manifest's bags; a path that is
    none of these stays a bag, for the replay to say what is wrong with it."""
    entries: list[BagEntry] = []
    for p in paths:
        if p.is_file() and p.suffix in MANIFEST_SUFFIXES and p.name != BAG_METADATA:
            entries += read_manifest(p)
        elif p.is_dir() and not (p / BAG_METADATA).is_file():
            found = sorted(m.parent for m in p.rglob(BAG_METADATA))
            if not found:
                msg = f"{p} is neither a bag nor a folder holding bags (no {BAG_METADATA} below it)"
                raise ConfigError(msg)
            entries += [BagEntry(b) for b in found]
        else:
            entries.append(BagEntry(p))
    return entries


def _labels(paths: list[Path]) -> list[str]:
    """Short unique names for the report: the folder name, with as many parents as tell them apart."""
    parts = [p.resolve().parts for p in paths]
    depth = 1
    while depth < max((len(x) for x in parts), default=1):
        labels = ["/".join(x[-depth:]) for x in parts]
        if len(set(labels)) == len(set(map(tuple, parts))):
            return labels
        depth += 1
    return [str(p) for p in paths]


def plan(options: EvaluationOptions) -> list[BagTask]:
    """The tasks, in fleet order: each bag, or each slice of it, within its manifest time range."""
    from bevfusion_ros.tools.bags.replay import BagTopics

    entries = bag_entries(options.bags)
    if options.slice_s < 0 or (options.slice_s and options.max_frames):
        msg = "--slice-s must be >= 0 and cannot be combined with --max-frames (which counts per bag)"
        raise ConfigError(msg)
    labels = _labels([e.path for e in entries])
    tasks: list[BagTask] = []
    for entry, label in zip(entries, labels, strict=True):
        try:
            info = BagTopics.read(entry.path)
        except BevFusionError:  # the replay says what is wrong with it, for this bag alone
            tasks.append(BagTask(entry.path, len(tasks), label, entry.tags))
            continue
        clouds = info.of_type(POINTCLOUD2)
        frames = max((info.count(t) for t in clouds), default=0)
        duration = max(1, info.end_ns - info.start_ns)
        start = None if entry.start_s is None else info.start_ns + round(entry.start_s * 1e9)
        end = None if entry.end_s is None else info.start_ns + round(entry.end_s * 1e9)
        span = ""
        if entry.start_s is not None or entry.end_s is not None:
            span = f"[{entry.start_s or 0:g}-{'' if entry.end_s is None else f'{entry.end_s:g}'}s]"
        lo, hi = start if start is not None else info.start_ns, end if end is not None else info.end_ns
        pieces = max(1, math.ceil((hi - lo) / (options.slice_s * 1e9))) if options.slice_s else 1
        for k in range(pieces):
            a = start if k == 0 else lo + (hi - lo) * k // pieces
            b = end if k == pieces - 1 else lo + (hi - lo) * (k + 1) // pieces
            share = frames * (min(hi, info.end_ns) - max(lo, info.start_ns)) / duration / pieces
            tasks.append(BagTask(entry.path, len(tasks), label + span, entry.tags, a, b, max(1, round(share)), span))
    if options.max_frames:
        tasks = [replace(t, expected_frames=min(t.expected_frames, options.max_frames)) for t in tasks]
    per_label = Counter(t.label for t in tasks)
    if len(per_label) > 1:
        tasks = [replace(t, score_alone=per_label[t.label] == 1) for t in tasks]
    return tasks


# -- where to replay it --------------------------------------------------------------------------
@dataclass
class FleetRun:
    outcomes: list[BagOutcome]
    workers: int
    address: str | None  # the cluster joined, None for this process or a local instance
    interrupted: bool = False


def worker_count(options: EvaluationOptions) -> int:
    if options.workers is not None:
        if options.workers < 1:
            msg = f"--workers must be >= 1, got {options.workers}"
            raise ConfigError(msg)
        return options.workers
    return (os.cpu_count() or 1) if ray_installed() else 1


def execute(options: EvaluationOptions, tasks: list[BagTask], base_spec: ModelSpec, score: Score[R]) -> R:
    """Runs the tasks here or on Ray, then ``score``s what came back while the workers are still
    there to compute the scores in parallel."""
    workers = worker_count(options)
    if options.ray_address is None and (workers == 1 or len(tasks) == 1):
        return score(_inline(options, tasks, base_spec), in_order)
    return _on_ray(options, tasks, base_spec, workers, score)


def _bar(options: EvaluationOptions, tasks: list[BagTask]) -> Any:
    if not options.progress:
        return None
    from tqdm import tqdm

    # no monitor thread: a Ctrl-C landing while the bar holds tqdm's lock left the thread waiting on
    # it, and the interpreter's exit waiting on the thread (seen in test_fleet)
    tqdm.monitor_interval = 0
    return tqdm(total=sum(t.expected_frames for t in tasks), desc="evaluate", unit="frame", dynamic_ncols=True)


def _inline(options: EvaluationOptions, tasks: list[BagTask], base_spec: ModelSpec) -> FleetRun:
    bar = _bar(options, tasks)
    tick: Tick | None = bar.update if bar is not None else None
    outcomes: list[BagOutcome] = []
    interrupted = False
    try:
        for task in tasks:
            outcomes.append(replay_task(options, task, base_spec, tick, raise_errors=len(tasks) == 1))
    except KeyboardInterrupt:
        if not outcomes:
            raise
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    return FleetRun(outcomes, 1, None, interrupted)


class FrameCounter:
    """A Ray actor the workers tell of their frames, for the driver's progress bar."""

    def __init__(self) -> None:
        self.frames = 0

    def add(self, n: int) -> None:
        self.frames += n

    def value(self) -> int:
        return self.frames


def replay_on_worker(options: EvaluationOptions, task: BagTask, base_spec: ModelSpec, counter: Any) -> BagOutcome:
    """One Ray task: ``replay_task`` with its frames counted to ``counter`` every TICK_INTERVAL_S."""
    lock = threading.Lock()
    state = {"frames": 0, "last": time.monotonic()}

    def tick(n: int) -> None:
        with lock:
            state["frames"] += n
            if time.monotonic() - state["last"] >= TICK_INTERVAL_S:
                counter.add.remote(state["frames"])
                state["frames"], state["last"] = 0, time.monotonic()

    try:
        return replay_task(options, task, base_spec, tick, raise_errors=False)
    finally:
        if state["frames"]:
            counter.add.remote(state["frames"])


def _on_ray(options: EvaluationOptions, tasks: list[BagTask], base_spec: ModelSpec, workers: int, score: Score[R]) -> R:
    ray = import_ray()
    from ray.exceptions import RayError, RayTaskError

    cores = os.cpu_count() or 1
    local = options.ray_address is None
    # ONNX Runtime threads per worker, so N workers do not oversubscribe the cores: on a local
    # instance the cores shared out, on a cluster one (each task reserves as many Ray CPUs)
    threads = options.backend_threads or (max(1, cores // workers) if local else 1)
    env = {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    # a program that already runs Ray (a notebook, a test session) lends its instance; else one is
    # started here, and stopped at the end
    owned = not ray.is_initialized()
    if owned:
        where: dict[str, Any] = {"address": options.ray_address}
        if local:
            where = {"num_cpus": workers * threads, "include_dashboard": False}
        try:
            ray.init(**where, log_to_driver=False, configure_logging=False, runtime_env={"env_vars": env})
        except (ConnectionError, RuntimeError, ValueError) as exc:
            hint = ""
            if not local and os.environ.get("RAY_AUTH_MODE") != "token":
                hint = " (a cluster with token authentication, Ray's default, needs RAY_AUTH_MODE=token and its token)"
            msg = f"cannot start or join Ray at {options.ray_address or 'a local instance'}: {exc}{hint}"
            raise ConfigError(msg) from None
    worker_options = replace(options, backend_threads=threads, progress=False)
    outcomes: list[BagOutcome] = []
    interrupted = False
    bar = _bar(options, tasks)
    try:
        counter = ray.remote(num_cpus=0)(FrameCounter).remote()
        replay = ray.remote(replay_on_worker).options(
            num_cpus=threads, max_retries=1, retry_exceptions=False, runtime_env={"env_vars": env}
        )
        model = ray.put(base_spec)
        refs = {replay.remote(worker_options, t, model, counter): t for t in tasks}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=TICK_INTERVAL_S)
                for ref in ready:
                    task = refs[ref]
                    try:
                        outcomes.append(ray.get(ref))
                    except RayTaskError as exc:  # our code raised on the worker: that bag's error
                        outcomes.append(BagOutcome(task, error=f"its worker raised {exc.cause!r}"))
                    except RayError as exc:  # the worker was lost, and again on its retry
                        outcomes.append(BagOutcome(task, error=f"its worker was lost twice ({type(exc).__name__})"))
                if bar is not None:
                    bar.n = min(bar.total, ray.get(counter.value.remote()))
                    bar.refresh()
        except KeyboardInterrupt:
            interrupted = True
            for ref in pending:
                ray.cancel(ref, force=True)
        if bar is not None:
            bar.close()
            bar = None

        def on_workers(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
            remote = ray.remote(fn).options(num_cpus=threads)
            return list(ray.get([remote.remote(item) for item in items]))

        # after a Ctrl-C, which reached the workers too, what finished is scored here
        return score(
            FleetRun(outcomes, workers, options.ray_address, interrupted), in_order if interrupted else on_workers
        )
    finally:
        if bar is not None:
            bar.close()
        if owned:
            ray.shutdown()
