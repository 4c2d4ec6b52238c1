"""Where trials run: in this process (serial), in N local worker processes, or as Ray tasks.

Every executor runs the same function on a :class:`TrialTask` (:class:`TrialRunner.run`), so a trial
computes the same numbers wherever it runs: the worker loads the data itself (the splits are fixed), builds
the seed's initial model with ``torch.manual_seed(seed)`` exactly as ``adacli compare`` does, and
``run_trial`` re-seeds everything else. What may differ between executors is only the number of torch
threads (float reduction order); local workers run one intra-op thread each unless told otherwise, so
with ``threads`` equal everywhere the numbers are equal bit for bit.

**Workers start once and serve any recipe.** A task travels with its :class:`WorkerSetup` (the recipe as
JSON, the device); a worker keeps a small cache of what it loaded (:class:`RunnerCache`: datasets by
their spec, runners by setup), so one pool serves every run of a process, e.g. every workload of a suite.
Workers are started on demand, never more than ``jobs`` and never more than tasks waiting for one, so
``--jobs 100`` on a 2-trial recipe starts two. Where the platform has it, workers are forked from
multiprocessing's *forkserver* with torch, timm and the trial code already imported (one import for the
whole pool, started as early as :func:`prestart` is called); elsewhere they are spawned.

Why a hand-written local pool instead of ``ProcessPoolExecutor``: a worker killed by the OOM killer
breaks a ``ProcessPoolExecutor`` for good and hides which task it held; here the parent knows each
worker's task, so a dead worker's trial is retried once on a fresh worker (then recorded as ``failed``)
and the others go on. Workers ignore SIGINT (the parent decides what a Ctrl-C means and terminates them),
exit by themselves when the parent dies (a watchdog thread waits on the parent's sentinel, so a
``kill -9`` of the parent leaves no worker behind), and send progress and results through one
``multiprocessing`` queue that the parent renders.

Interface (used by the run loop, :mod:`adacli.run.loop`): ``start(on_progress)``, ``submit(task)``,
``slots`` (how many tasks may be outstanding), ``wait(timeout) -> [(task, result)]``, ``close(cancel)``,
``describe()``; ``use(setup)`` points later submissions at another recipe (local and Ray).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import queue as queue_mod
import signal
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adacli.errors import AdacliError, InputError
from adacli.results import TrialResult
from adacli.run.plan import TrialTask

EXECUTORS = ("serial", "local", "ray")


class ExecutorError(AdacliError):
    """The executor itself cannot go on (workers that cannot start): exit 1, finished trials saved."""

    exit_code = 1


@dataclass
class ProgressEvent:
    """What a worker reports: a trial ``start``, a training ``step``, or a ``done`` trial."""

    kind: str
    worker: str
    task_index: int
    label: str = ""
    seed: int = 0
    step: int = 0
    total: int | None = None
    loss: float | None = None


@dataclass
class WorkerSetup:
    """Everything a worker needs besides tasks (picklable: the recipe as JSON)."""

    recipe: dict[str, Any]
    device: str = "cpu"
    threads: int | None = None
    worker: str = "main"
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """What identifies the runner this setup needs: the recipe (not where it was read from) and the
        device. Threads and the worker's name are the process's, not the runner's."""
        recipe = {k: v for k, v in self.recipe.items() if k != "path"}
        blob = json.dumps([recipe, self.device], sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask: ``taskset -c 0`` gives 1)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


WORKERS_PER_CORE_CAP = 4  # more local workers than this per core only thrash (each holds torch and data)
MIN_WORKER_CAP = 16  # a GPU machine with few cores may still want a few workers per GPU


def max_local_workers() -> int:
    """The most local worker processes ``--jobs`` may ask for on this machine."""
    return max(MIN_WORKER_CAP, WORKERS_PER_CORE_CAP * cpu_cores())


def check_jobs(jobs: int) -> None:
    """``--jobs`` for local workers: >= 1 and at most :func:`max_local_workers` (InputError, exit 2)."""
    if jobs < 1:
        raise InputError(f"must be >= 1 (got {jobs})", field="--jobs")
    cap = max_local_workers()
    if jobs > cap:
        raise InputError(
            f"{jobs} local workers is more than this machine can run well: at most {cap} "
            f"({WORKERS_PER_CORE_CAP} per core on {cpu_cores()} cores, at least {MIN_WORKER_CAP}); "
            "one per core uses every core",
            field="--jobs",
        )


# --- the trial, wherever it runs -------------------------------------------------------------------


class DatasetCache:
    """Loaded datasets by spec, the most recent few kept: workloads of a suite that share a dataset
    (digits at 16 px twice) load it once per process."""

    KEPT = 3

    def __init__(self) -> None:
        self._data: OrderedDict[str, Any] = OrderedDict()

    def get(self, spec: Any) -> Any:
        from adacli.train.data import load_data

        key = spec.model_dump_json()
        if key not in self._data:
            self._data[key] = load_data(spec)
            while len(self._data) > self.KEPT:
                self._data.popitem(last=False)
        self._data.move_to_end(key)
        return self._data[key]


class TrialRunner:
    """Runs tasks in one process: loads the data once and keeps the last seeds' initial models.

    ``data``: the dataset, already loaded; else it comes from ``datasets`` (a shared cache), else it is
    loaded here."""

    MODELS_KEPT = 2

    def __init__(self, setup: WorkerSetup, data: Any = None, datasets: DatasetCache | None = None) -> None:
        from adacli.recipe import Recipe
        from adacli.train.data import load_data
        from adacli.train.step import resolve_device
        from adacli.train.trial import TrialConfig

        recipe_json = {k: v for k, v in setup.recipe.items() if k != "path"}
        self.recipe = Recipe.model_validate(recipe_json)
        self.setup = setup
        self.device = resolve_device(setup.device or self.recipe.device)
        self.config = TrialConfig.from_recipe(self.recipe, self.device)
        if data is None:
            data = (
                datasets.get(self.recipe.dataset) if datasets is not None else load_data(self.recipe.dataset)
            )
        self.data = data
        self._models: OrderedDict[int, tuple[Any, str]] = OrderedDict()

    def _initial(self, seed: int) -> tuple[Any, str]:
        from adacli.train.trial import initial_model, state_fingerprint

        if seed not in self._models:
            model = initial_model(self.recipe.model, self.data, seed)
            self._models[seed] = (model, state_fingerprint(model))
            while len(self._models) > self.MODELS_KEPT:
                self._models.popitem(last=False)
        self._models.move_to_end(seed)
        return self._models[seed]

    def run(
        self, task: TrialTask, on_step: Callable[[int, int | None, float], None] | None = None
    ) -> TrialResult:
        """Train, evaluate the final model on ``val`` (what sweeps select on), and record the task."""
        import torch

        from adacli.optim.registry import resolve_optimizer
        from adacli.train.step import evaluate
        from adacli.train.trial import run_trial

        resolved = resolve_optimizer(task.name, task.hparams)
        init, fingerprint = self._initial(task.seed)
        net = copy.deepcopy(init)
        # copy_model=False: run_trial trains ``net`` itself, so the trained model is ours to evaluate
        result = run_trial(
            net,
            self.data,
            resolved,
            self.config,
            seed=task.seed,
            label=task.label,
            on_step=on_step,
            copy_model=False,
        )
        result.extra["init_fingerprint"] = fingerprint
        result.extra["trial_key"] = task.key
        result.extra["role"] = task.role
        result.extra["optimizer_label"] = task.optimizer_label
        result.extra["config_index"] = task.config_index
        result.extra["worker"] = {
            "id": self.setup.worker,
            "pid": os.getpid(),
            "threads": torch.get_num_threads(),
        }
        if result.status != "failed" and self.data.split_size("val") > 0:
            try:
                loss, acc = evaluate(
                    net,
                    self.data,
                    "val",
                    batch_size=self.config.budget.eval_batch_size,
                    device=self.device,
                    precision=self.config.precision,
                    channels_last=self.config.channels_last,
                )
                result.extra["val"] = {
                    "split": "val",
                    "size": self.data.split_size("val"),
                    "step": result.steps_done,
                    "loss": loss,
                    "accuracy": acc,
                }
            except Exception as e:  # a model broken by divergence must not end the run
                result.extra["val_error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        return result


def failed_result(task: TrialTask, error: str) -> TrialResult:
    """A trial that could not run (worker died, task raised): recorded, not fatal for the run."""
    return TrialResult(
        label=task.label,
        optimizer=task.name,
        optimizer_class="",
        hparams=dict(task.hparams),
        seed=task.seed,
        status="failed",
        error=error[:500],
        extra={"trial_key": task.key, "role": task.role, "optimizer_label": task.optimizer_label},
    )


class RunnerCache:
    """One process's runners by setup key (the most recent few kept) over one dataset cache: a worker
    that serves several recipes keeps each one's data and initial models between its tasks."""

    KEPT = 4

    def __init__(self) -> None:
        self.datasets = DatasetCache()
        self._runners: OrderedDict[str, TrialRunner] = OrderedDict()

    def adopt(self, setup: WorkerSetup, data: Any = None) -> TrialRunner:
        """The runner of ``setup``, built on ``data`` (a dataset the caller loaded) if it is new."""
        key = setup.key()
        if key not in self._runners and data is not None:
            self._runners[key] = TrialRunner(setup, data)
        return self.runner(setup)

    def runner(self, setup: WorkerSetup) -> TrialRunner:
        key = setup.key()
        if key not in self._runners:
            self._runners[key] = TrialRunner(setup, datasets=self.datasets)
            while len(self._runners) > self.KEPT:
                self._runners.popitem(last=False)
        self._runners.move_to_end(key)
        runner = self._runners[key]
        runner.setup = setup  # the worker's name and threads as this task names them
        return runner


ProgressFn = Callable[[ProgressEvent], None]


# --- serial ----------------------------------------------------------------------------------------


class SerialExecutor:
    """Trials one after another in this process (``wait`` runs the next queued task). ``data``: the
    dataset the caller already loaded (else the runner loads it)."""

    kind = "serial"
    slots = 1

    def __init__(self, setup: WorkerSetup, data: Any = None) -> None:
        self.setup = setup
        self._data = data
        self._queue: deque[tuple[WorkerSetup, TrialTask]] = deque()
        self._cache = RunnerCache()
        self._on_progress: ProgressFn = lambda e: None
        self._threads_before: int | None = None

    def start(self, on_progress: ProgressFn) -> None:
        """Set the threads and load the runner; again: a new progress sink."""
        import torch

        self._on_progress = on_progress
        if self.setup.threads and self._threads_before is None:
            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(self.setup.threads)
        self.use(self.setup, self._data)
        self._data = None

    def use(self, setup: WorkerSetup, data: Any = None) -> None:
        """Tasks submitted from now on run with ``setup`` (``data``: its dataset, already loaded)."""
        self.setup = WorkerSetup(setup.recipe, setup.device, self.setup.threads, self.setup.worker)
        self._cache.adopt(self.setup, data)

    def submit(self, task: TrialTask) -> None:
        self._queue.append((self.setup, task))

    @property
    def outstanding(self) -> int:
        return len(self._queue)

    def wait(self, timeout: float) -> list[tuple[TrialTask, TrialResult]]:
        if not self._queue:
            return []
        setup, task = self._queue.popleft()
        runner = self._cache.runner(setup)
        w = setup.worker
        self._on_progress(ProgressEvent("start", w, task.index, task.label, task.seed))

        def on_step(step: int, total: int | None, loss: float) -> None:
            self._on_progress(ProgressEvent("step", w, task.index, task.label, task.seed, step, total, loss))

        result = runner.run(task, on_step)  # KeyboardInterrupt propagates to the caller
        return [(task, result)]

    def close(self, cancel: bool = False) -> None:
        import torch

        self._queue.clear()
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)
            self._threads_before = None

    @property
    def trial_threads(self) -> int:
        """The torch threads each trial runs with."""
        import torch

        return self.setup.threads or torch.get_num_threads()

    def describe(self) -> dict[str, Any]:
        return {"kind": "serial", "jobs": 1, "threads": self.trial_threads}


# --- local worker processes ------------------------------------------------------------------------

#: imported once by the forkserver, before it forks any worker (what a worker needs for its first trial)
PRELOAD = (
    "torch",
    "torch._dynamo",  # imported by torch's first optimizer construction: about 1 s, once per forkserver
    "timm",
    "adacli.train.data",
    "adacli.train.models",
    "adacli.optim.registry",
    "adacli.train.trial",
    __name__,
)
EXIT_PARENT_GONE = 3  # a worker's exit code when it stopped because its parent died


def _exit_with_parent() -> None:
    """In a worker: a daemon thread that ends this process as soon as the parent dies.

    multiprocessing gives every spawned or forkserver child a sentinel of its parent (a pipe whose write
    end only the parent holds): it becomes readable when the parent exits, however it exits (``kill -9``
    included). Portable, and unlike ``PR_SET_PDEATHSIG`` independent of which thread started the worker.
    """
    import multiprocessing as mp
    import threading

    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(EXIT_PARENT_GONE)

    threading.Thread(target=watch, name="adacli-parent-watch", daemon=True).start()


def _adopt(env: dict[str, str]) -> None:
    """The parent's environment as of this worker's start (a forkserver child inherits the server's,
    which is the parent's as of the server's start: a test's or a caller's later changes count)."""
    if dict(os.environ) != env:
        os.environ.clear()
        os.environ.update(env)


def _set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # only settable before any inter-op work
            torch.set_num_interop_threads(1)


def _device_of(worker: WorkerSetup, task: WorkerSetup) -> str:
    """Where a worker runs a task: its own device (its GPU of the round-robin) for a recipe that says
    ``auto`` or ``cuda``, else the device the recipe names (``cpu``, ``cuda:1``)."""
    return worker.device if task.device in ("auto", "cuda") else task.device


def _worker_main(setup: WorkerSetup, tasks: Any, events: Any, env: dict[str, str]) -> None:
    """A local worker: load ``setup``'s runner, then run ``(setup, task)`` pairs until ``None`` arrives."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates us
    _exit_with_parent()
    _adopt(env)
    w = setup.worker
    try:
        _set_threads(setup.threads)
        cache = RunnerCache()
        cache.runner(setup)  # the first recipe's data and models load while the parent plans
    except BaseException as e:
        events.put(("fatal", w, f"{type(e).__name__}: {e}".splitlines()[0][:500]))
        return
    events.put(("ready", w, os.getpid()))
    while True:
        item = tasks.get()
        if item is None:
            return
        task_setup, task = item
        try:
            runner = cache.runner(
                WorkerSetup(task_setup.recipe, _device_of(setup, task_setup), setup.threads, w)
            )
        except BaseException as e:
            events.put(("fatal", w, f"{type(e).__name__}: {e}".splitlines()[0][:500]))
            return
        events.put(("progress", ProgressEvent("start", w, task.index, task.label, task.seed)))

        def on_step(step: int, total: int | None, loss: float, task: TrialTask = task) -> None:
            events.put(
                ("progress", ProgressEvent("step", w, task.index, task.label, task.seed, step, total, loss))
            )

        try:
            result = runner.run(task, on_step)
        except BaseException as e:  # a user's optimizer raising anything, KeyboardInterrupt included
            result = failed_result(task, f"{type(e).__name__}: {e}".splitlines()[0])
        events.put(("result", w, task.index, result))


@contextlib.contextmanager
def _sigint_ignored() -> Any:
    """SIGINT ignored while a worker (or the forkserver) starts: an ignored signal stays ignored across
    ``exec`` and ``fork``, so the new process is not killed by a Ctrl-C sent to the whole process group
    (``timeout -s INT``, a terminal) while it is still importing torch; the parent decides what an
    interrupt means."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def prestart() -> str:
    """Start the process that local workers come from, now, and return the start method.

    With ``forkserver`` (Linux, macOS) the server imports :data:`PRELOAD` once, in the background, and
    every worker is a fork of it: call this as early as possible (before the parent's own imports and
    checks), and the pool's start costs next to nothing by the time the first trial is handed out.
    Elsewhere (``spawn``) there is nothing to start ahead: each worker imports torch itself.
    """
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return "spawn"
    from multiprocessing import forkserver

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    with _sigint_ignored():  # inherited by the server and by every worker it forks
        forkserver.ensure_running()
    return "forkserver"


@dataclass
class _Worker:
    name: str
    process: Any
    tasks: Any
    device: str
    started: float
    task: TrialTask | None = None
    task_setup: WorkerSetup | None = None
    ready: bool = False


class LocalExecutor:
    """Up to ``jobs`` worker processes on this machine, started as tasks need them, each with ``threads``
    torch threads (default 1); GPUs assigned round-robin (worker w uses ``devices[w % len(devices)]``:
    more jobs than GPUs puts several workers on one device)."""

    kind = "local"
    MAX_ATTEMPTS = 2  # a task whose worker died is retried once on a fresh worker

    def __init__(self, setup: WorkerSetup, jobs: int, devices: list[str], threads: int | None = None) -> None:
        check_jobs(jobs)
        self.setup = setup
        self.jobs = jobs
        self.devices = devices or ["cpu"]
        self.threads = threads or 1
        self.slots = jobs
        self.start_method = ""
        self._ctx: Any = None
        self._events: Any = None
        self._workers: list[_Worker | None] = []
        self._queue: deque[tuple[WorkerSetup, TrialTask]] = deque()
        self._attempts: dict[int, int] = {}
        self._on_progress: ProgressFn = lambda e: None
        self._startup_failures = 0
        self.peak = 0  # the most workers running at once
        self.ready_s: list[float] = []  # per worker: seconds from its start to ready
        self.deaths: list[str] = []

    def start(self, on_progress: ProgressFn) -> None:
        """Get ready to take tasks (workers start with the first tasks); again: a new progress sink."""
        import multiprocessing as mp

        self._on_progress = on_progress
        if self._ctx is None:
            self.start_method = prestart()
            self._ctx = mp.get_context(self.start_method)
            self._events = self._ctx.Queue()

    def use(self, setup: WorkerSetup, data: Any = None) -> None:
        """Tasks submitted from now on run with ``setup`` (another recipe: a suite's next workload); the
        workers load its data themselves (``data`` is for the serial executor). Worker deaths are counted
        per run."""
        self.setup = setup
        self.deaths = []

    def _spawn(self, slot: int) -> _Worker:
        name = f"w{slot}"
        device = self.devices[slot % len(self.devices)]
        setup = WorkerSetup(self.setup.recipe, device=device, threads=self.threads, worker=name)
        tasks = self._ctx.SimpleQueue()
        proc = self._ctx.Process(
            target=_worker_main, args=(setup, tasks, self._events, dict(os.environ)), name=f"adacli-{name}"
        )
        with _sigint_ignored():  # inherited: a Ctrl-C to the process group while it imports is ours
            proc.start()
        self.peak = max(self.peak, self.started + 1)
        return _Worker(name=name, process=proc, tasks=tasks, device=device, started=time.monotonic())

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w is not None]

    @property
    def trial_threads(self) -> int:
        """The torch threads each trial runs with."""
        return self.threads

    @property
    def started(self) -> int:
        """Worker processes running now."""
        return sum(w is not None for w in self._workers)

    def submit(self, task: TrialTask) -> None:
        self._queue.append((self.setup, task))
        self._dispatch()

    @property
    def outstanding(self) -> int:
        return len(self._queue) + sum(w is not None and w.task is not None for w in self._workers)

    def _idle_worker(self) -> _Worker | None:
        """An idle live worker, else a new one in the first free slot (None: ``jobs`` are busy)."""
        for w in self._workers:
            if w is not None and w.task is None and w.process.is_alive():
                return w
        for slot, w in enumerate(self._workers):
            if w is None:
                self._workers[slot] = self._spawn(slot)
                return self._workers[slot]
        if len(self._workers) < self.jobs:
            self._workers.append(self._spawn(len(self._workers)))
            return self._workers[-1]
        return None

    def _dispatch(self) -> None:
        while self._queue:
            w = self._idle_worker()
            if w is None:
                return
            w.task_setup, w.task = self._queue.popleft()
            self._attempts[w.task.index] = self._attempts.get(w.task.index, 0) + 1
            w.tasks.put((w.task_setup, w.task))

    def _handle(self, msg: tuple[Any, ...], out: list[tuple[TrialTask, TrialResult]]) -> None:
        kind = msg[0]
        if kind == "progress":
            self._on_progress(msg[1])
        elif kind == "ready":
            for w in self._workers:
                if w is not None and w.name == msg[1] and not w.ready:
                    w.ready = True
                    self.ready_s.append(round(time.monotonic() - w.started, 3))
        elif kind == "result":
            _, name, index, result = msg
            for w in self._workers:
                if w is not None and w.name == name and w.task is not None and w.task.index == index:
                    out.append((w.task, result))
                    w.task = None
        elif kind == "fatal":
            raise InputError(f"a local worker could not start: {msg[2]}", field="--executor local")

    def wait(self, timeout: float) -> list[tuple[TrialTask, TrialResult]]:
        out: list[tuple[TrialTask, TrialResult]] = []
        self._dispatch()
        deadline = time.monotonic() + timeout
        while not out:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self._handle(self._events.get(timeout=min(remaining, 0.2)), out)
            except queue_mod.Empty:
                self._reap(out)
        while True:  # whatever else is already there
            try:
                self._handle(self._events.get_nowait(), out)
            except queue_mod.Empty:
                break
        self._reap(out)
        self._dispatch()
        return out

    def _reap(self, out: list[tuple[TrialTask, TrialResult]]) -> None:
        """Free the slots of dead workers; their task is retried once (on a fresh worker), then recorded
        as failed."""
        for i, w in enumerate(self._workers):
            if w is None or w.process.is_alive():
                continue
            # a result it sent just before dying may still be in the queue
            try:
                while True:
                    self._handle(self._events.get(timeout=0.3), out)
            except queue_mod.Empty:
                pass
            code = w.process.exitcode
            why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            self._workers[i] = None
            if not w.ready:
                self._startup_failures += 1
                if self._startup_failures >= 2:
                    raise ExecutorError(
                        f"local worker processes die while starting ({why}); run with --executor serial "
                        "to see the error"
                    )
            task = w.task
            if task is None:
                continue
            self.deaths.append(f"{w.name} ({why}) during {task.label} seed {task.seed}")
            if self._attempts.get(task.index, 0) < self.MAX_ATTEMPTS:
                self._queue.appendleft((w.task_setup or self.setup, task))
            else:
                out.append((task, failed_result(task, f"worker process died ({why}), twice; not retried")))

    def close(self, cancel: bool = False) -> None:
        """Stop the workers. They hold nothing worth waiting for (every result that arrived is already
        saved; with ``cancel`` a trial in flight is abandoned), and an orderly exit of a process with torch
        loaded takes seconds, so they get SIGTERM."""
        self._queue.clear()
        workers = [w for w in self._workers if w is not None]
        for w in workers:
            if w.process.is_alive():
                w.process.terminate()
        deadline = time.monotonic() + 5.0
        for w in workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(1.0)
        self._workers = []
        if self._events is not None:
            self._events.close()
            self._events.cancel_join_thread()
            self._events = None
        self._ctx = None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "local",
            "jobs": self.jobs,
            "workers": self.peak,
            "threads_per_worker": self.threads,
            "devices": [self.devices[w % len(self.devices)] for w in range(self.peak)],
            "start_method": self.start_method,
            "worker_ready_s": self.ready_s,
            "worker_restarts": self.deaths,
        }


# --- Ray -------------------------------------------------------------------------------------------

_RAY_CACHE: RunnerCache | None = None  # per Ray worker process: the recipes it has served


def _ray_run(setup: WorkerSetup, task: TrialTask, progress_queue: Any) -> TrialResult:
    """The body of a Ray task (a Ray worker process may run many, of several recipes: runners cached)."""
    global _RAY_CACHE
    _set_threads(setup.threads)
    if _RAY_CACHE is None:
        _RAY_CACHE = RunnerCache()
    w = f"ray:{os.getpid()}"
    runner = _RAY_CACHE.runner(WorkerSetup(setup.recipe, setup.device, setup.threads, worker=w))

    def send(ev: ProgressEvent) -> None:
        with contextlib.suppress(Exception):  # progress is best effort; the result is what counts
            progress_queue.put_nowait(ev)

    send(ProgressEvent("start", w, task.index, task.label, task.seed))

    def on_step(step: int, total: int | None, loss: float) -> None:
        send(ProgressEvent("step", w, task.index, task.label, task.seed, step, total, loss))

    return runner.run(task, on_step)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(
            'the Ray executor needs Ray, which is not installed: pip install "adacli[ray]"',
            field="--executor",
        ) from None
    _no_auto_init()
    return ray


def _no_auto_init() -> None:
    """Ray's API starts a default instance (in Ray's shared temp folder, on the machine's address, never
    cleaned up) when called before ``ray.init``; adacli joins or starts one itself, so such a call is a
    bug that must raise, not silently train somewhere else."""
    with contextlib.suppress(ImportError, AttributeError):
        import importlib

        importlib.import_module("ray._private.auto_init_hook").enable_auto_connect = False


class _LocalInstance:
    """The files of a local Ray instance this run starts (a folder of its own, not Ray's shared temp
    folder) and the watchdog that removes them, with Ray's processes, if the run is killed."""

    def __init__(self) -> None:
        import tempfile

        from adacli.run import reaper

        # short: Ray's socket paths (under the folder) must fit in 107 bytes
        self.folder = Path(tempfile.mkdtemp(prefix="adacli-ray-"))
        self.watchdog = reaper.start(self.folder)

    def remove(self) -> None:
        import shutil

        from adacli.run import reaper

        shutil.rmtree(self.folder, ignore_errors=True)
        reaper.stop(self.watchdog)


def _init_local_ray(ray: Any, options: dict[str, Any]) -> None:
    """A fresh single-machine Ray instance that listens on 127.0.0.1 only.

    ``address="local"`` starts a new instance whatever ``RAY_ADDRESS`` or the cluster record of an
    earlier ``ray start`` (``ray_current_cluster`` in Ray's temp folder, possibly of a dead cluster)
    say; plain ``ray.init()`` would try to join that one and hang. Ray replaces a loopback node address
    by the machine's network address unless its "cluster mode" is off: it is switched off for this call
    (the environment variable reaches the processes Ray starts; the constant is what this process reads).
    """
    import importlib

    constants = importlib.import_module("ray._private.ray_constants")
    env_name = getattr(constants, "ENABLE_RAY_CLUSTERS_ENV_VAR", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    saved_env, saved_flag = os.environ.get(env_name), getattr(constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[env_name] = "0"
    if saved_flag is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address="local", _node_ip_address="127.0.0.1", **options)
    finally:
        if saved_env is None:
            os.environ.pop(env_name, None)
        else:
            os.environ[env_name] = saved_env
        if saved_flag is not None:
            constants.ENABLE_RAY_CLUSTER = saved_flag


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (ConnectionError) when nothing listens at ``host:port``: Ray itself retries for many
    minutes. ``auto`` and addresses without a port are left to Ray."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConnectionError(f"nothing answers at {hostport} ({e.strerror or e})") from None


class RayExecutor:
    """Each trial is a Ray task with ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs; progress comes
    back through a ``ray.util.queue.Queue`` (an actor) that workers ``put_nowait`` into."""

    kind = "ray"

    def __init__(
        self,
        setup: WorkerSetup,
        *,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        max_concurrent: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.ray = _import_ray()
        self.setup = setup
        self.address = address
        self.cpus = cpus_per_trial
        self.gpus = gpus_per_trial
        self.max_concurrent = max_concurrent
        self.threads = threads or max(1, math.floor(cpus_per_trial))
        self.slots = max_concurrent or 1
        self._owns = False
        self._local: Any = None  # a local instance: its folder and watchdog (adacli.run.reaper)
        self._refs: dict[Any, TrialTask] = {}
        self._attempted: dict[int, int] = {}
        self._on_progress: ProgressFn = lambda e: None
        self._queue: Any = None
        self._remote: Any = None
        self.cluster: dict[str, Any] = {}
        self.job_id: str | None = None

    def start(self, on_progress: ProgressFn) -> None:
        """Join or start Ray and size the slots; again (a suite's next workload): a new progress sink."""
        ray = self.ray
        self._on_progress = on_progress
        if self._remote is not None:
            return
        if not ray.is_initialized():
            self._connect()
            self._owns = True
        from ray.util.queue import Queue

        resources = ray.cluster_resources()
        self.cluster = {k: resources.get(k) for k in ("CPU", "GPU")}
        with contextlib.suppress(Exception):
            self.job_id = ray.get_runtime_context().get_job_id()
        fit = int(resources.get("CPU", 1) // max(self.cpus, 1e-9)) if self.cpus else 10**6
        if self.gpus:
            gpus = resources.get("GPU", 0)
            if gpus < self.gpus:
                raise InputError(
                    f"--gpus-per-trial {self.gpus:g}: the Ray cluster has {gpus:g} GPU(s)",
                    field="--gpus-per-trial",
                )
            fit = min(fit, int(gpus // self.gpus))
        if fit < 1:
            raise InputError(
                f"--cpus-per-trial {self.cpus:g}: the Ray cluster has {resources.get('CPU', 0):g} CPU(s)",
                field="--cpus-per-trial",
            )
        self.slots = min(fit, self.max_concurrent) if self.max_concurrent else fit
        self._queue = Queue(actor_options={"num_cpus": 0})
        self.use(self.setup)
        self._remote = ray.remote(_ray_run).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=1)

    def use(self, setup: WorkerSetup, data: Any = None) -> None:
        """Tasks submitted from now on run with ``setup`` (another recipe: a suite's next workload); Ray
        workers load its data themselves."""
        self.setup = setup
        if self._queue is None:
            return  # not connected yet: start() puts it
        # a Ray task sees only the GPUs it was given (CUDA_VISIBLE_DEVICES), numbered from 0
        device = "cuda" if setup.device.startswith("cuda") else setup.device
        self._setup_ref = self.ray.put(WorkerSetup(setup.recipe, device=device, threads=self.threads))

    def _connect(self) -> None:
        """Join ``address``, or start a fresh local instance; InputError (exit 2) when neither works."""
        ray = self.ray
        options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        try:
            if self.address is None:
                self._local = _LocalInstance()
                _init_local_ray(ray, {**options, "_temp_dir": str(self._local.folder)})
            else:
                _check_reachable(self.address)
                ray.init(address=self.address, **options)
        except (ConnectionError, ValueError, RuntimeError, OSError) as e:
            where = self.address or "a new local instance"
            why = " ".join(str(e).split())[:300]
            if e.__cause__ is not None:  # e.g. the cluster's token authentication (Ray >= 2.52)
                why += f" ({' '.join(str(e.__cause__).split())[:300]})"
            if self._local is not None:
                self._local.remove()
            raise InputError(f"cannot start or reach Ray ({where}): {why}", field="--ray-address") from None

    @property
    def trial_threads(self) -> int:
        """The torch threads each trial runs with."""
        return self.threads

    def submit(self, task: TrialTask) -> None:
        ref = self._remote.remote(self._setup_ref, task, self._queue)
        self._refs[ref] = task

    @property
    def outstanding(self) -> int:
        return len(self._refs)

    def _drain(self) -> None:
        try:
            events = self._queue.get_nowait_batch(self._queue.qsize())
        except Exception:
            events = []
        for ev in events:
            self._on_progress(ev)

    def wait(self, timeout: float) -> list[tuple[TrialTask, TrialResult]]:
        ray = self.ray
        self._drain()
        if not self._refs:
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        self._drain()
        out = []
        for ref in ready:
            task = self._refs.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as e:  # the task raised, or its worker died twice (max_retries=1)
                msg = " ".join(str(e).split())
                result = failed_result(task, f"Ray task failed: {type(e).__name__}: {msg}")
            out.append((task, result))
        return out

    def close(self, cancel: bool = False) -> None:
        ray = self.ray
        if cancel:
            for ref in list(self._refs):
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
        self._refs.clear()
        if self._queue is not None:
            with contextlib.suppress(Exception):
                self._queue.shutdown()
        if self._owns:
            ray.shutdown()
        if self._local is not None:  # its session folder goes too (it stayed in the temp folder)
            self._local.remove()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "ray",
            "address": self.address or ("local instance" if self._owns else "already initialized"),
            "session_folder": str(self._local.folder) if self._local is not None else None,
            "cpus_per_trial": self.cpus,
            "gpus_per_trial": self.gpus,
            "threads_per_trial": self.threads,
            "concurrent_trials": self.slots,
            "cluster": self.cluster,
            "job_id": self.job_id,  # one per connection: the same for every workload of a suite
            "ray": getattr(self.ray, "__version__", None),
        }


def local_devices(recipe_device: str, jobs: int) -> list[str]:
    """Devices for local workers: every visible GPU round-robin for ``auto``/``cuda``; an explicit
    ``cuda:N`` (or ``cpu``/``mps``) for all of them."""
    import torch

    if recipe_device in ("auto", "cuda") and torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if recipe_device == "auto":
        from adacli.train.step import resolve_device

        return [str(resolve_device("auto"))]
    return [recipe_device]


def make_executor(
    kind: str,
    setup: WorkerSetup,
    *,
    jobs: int | None = 1,
    threads: int | None = None,
    ray_address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float | None = None,
    data: Any = None,
) -> SerialExecutor | LocalExecutor | RayExecutor:
    """The executor for ``--executor KIND``; InputError for bad combinations. ``data``: the dataset
    already loaded in this process (used by the serial executor; other executors load their own).
    ``jobs``: local workers (default 1), or Ray's trials in flight (default: what the cluster fits)."""
    if kind not in EXECUTORS:
        from adacli.errors import closest

        raise InputError(
            f"unknown executor {kind!r}",
            field="--executor",
            allowed=EXECUTORS,
            suggestion=closest(kind, EXECUTORS),
        )
    if jobs is not None and jobs < 1:
        raise InputError(f"must be >= 1 (got {jobs})", field="--jobs")
    if ray_address and kind != "ray":
        raise InputError("--ray-address needs --executor ray", field="--ray-address")
    if kind == "serial":
        if jobs is not None and jobs > 1:
            raise InputError(
                "--executor serial runs one trial at a time; drop --jobs or use local", field="--jobs"
            )
        return SerialExecutor(WorkerSetup(setup.recipe, setup.device, threads, "main"), data)
    if kind == "local":
        return LocalExecutor(setup, jobs or 1, local_devices(setup.device, jobs or 1), threads)
    if gpus_per_trial is None:
        import torch

        dev = setup.device
        gpus_per_trial = (
            1.0 if dev.startswith("cuda") or (dev == "auto" and torch.cuda.is_available()) else 0.0
        )
    return RayExecutor(
        setup,
        address=ray_address,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        max_concurrent=jobs if jobs is not None and jobs > 1 else None,
        threads=threads,
    )


__all__ = [
    "EXECUTORS",
    "PRELOAD",
    "DatasetCache",
    "ExecutorError",
    "LocalExecutor",
    "ProgressEvent",
    "RayExecutor",
    "RunnerCache",
    "SerialExecutor",
    "TrialRunner",
    "TrialTask",
    "WorkerSetup",
    "check_jobs",
    "cpu_cores",
    "failed_result",
    "local_devices",
    "make_executor",
    "max_local_workers",
    "prestart",
]
