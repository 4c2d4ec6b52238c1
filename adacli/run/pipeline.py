"""One run of a recipe: plan -> run -> save, for every executor, sweeps and resume alike.

:func:`run_recipe` is the entry point (``adacli compare`` calls it; so can any code that needs a whole
recipe run). It composes the stages, each in its own module:

1. **plan** (:mod:`adacli.run.plan`): the recipe's trial tasks with content keys; bad optimizers fail here.
2. **folder** (:mod:`adacli.run.folder`): the run folder chosen, checked (same setup when resuming, no
   foreign content) and locked; the finished trials it already holds (:mod:`adacli.run.cache`).
3. **executor** (:mod:`adacli.run.executors`): ``serial`` (in this process), ``local`` (worker processes)
   or ``ray``, started; the dataset loaded once here (and handed to the serial executor).
4. **run loop** (:mod:`adacli.run.loop`): tasks to the executor, results to ``trials/`` as they arrive,
   sweep choices as soon as their trials are in.
5. **save** (:mod:`adacli.run.save`): summary, target, sweep record -> ``results.json`` and friends.

Interrupts (:mod:`adacli.run.interrupts`): the first SIGINT or SIGTERM stops the loop, the executor is
closed (workers stopped), what finished is saved with status ``interrupted`` and :class:`RunInterrupted`
carries the outcome and the exit code (130 or 143). A later signal during that save is ignored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adacli.errors import InputError
from adacli.files import WriteError
from adacli.recipe import Recipe
from adacli.results import TrialResult
from adacli.run import store
from adacli.run.environment import environment_info
from adacli.run.executors import WorkerSetup, make_executor
from adacli.run.folder import RunFolder, open_run_folder, setup_of
from adacli.run.interrupts import Interrupted, InterruptGuard, signum_of
from adacli.run.loop import Progress, Scheduler, drive
from adacli.run.plan import Plan, TrialTask, build_plan
from adacli.run.rounds import Rounds
from adacli.run.save import Judge, RunOutcome, save_run_folder


class RunInterrupted(Interrupted):
    """Ctrl-C or SIGTERM during a run: the finished trials are saved in ``outcome.run_dir``;
    ``exit_code`` is 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(self, outcome: RunOutcome, signum: int) -> None:
        super().__init__(signum)
        self.outcome = outcome


@dataclass
class ExecutorOptions:
    """Where trials run (the CLI's ``--executor``, ``--jobs``, ``--threads``, ``--ray-address``, ...).

    ``executor="auto"`` (no ``--executor``, no ``--jobs``) is the default: see :func:`choose_executor`.
    """

    executor: str = "auto"
    jobs: int | None = None
    threads: int | None = None
    ray_address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None


def executor_options(
    *,
    jobs: int | None = None,
    executor: str | None = None,
    ray_address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The command line's --jobs/--executor/--ray-address/--threads/... as :func:`run_recipe`'s executor
    keyword arguments (bad combinations: InputError, exit 2, before any training)."""
    from adacli.errors import closest
    from adacli.recipe.options import RunOptions
    from adacli.run.executors import EXECUTORS, check_jobs

    numbers = RunOptions.parse(
        jobs=jobs, threads=threads, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial
    )
    if executor is not None and executor not in EXECUTORS:
        msg = f"unknown executor {executor!r}"
        raise InputError(msg, field="--executor", allowed=EXECUTORS, suggestion=closest(executor, EXECUTORS))
    jobs, threads = numbers.jobs, numbers.threads
    cpus_per_trial, gpus_per_trial = numbers.cpus_per_trial, numbers.gpus_per_trial
    if ray_address and executor is None:
        executor = "ray"
    if executor is None:
        executor = "auto" if jobs is None else ("local" if jobs > 1 else "serial")
    if executor == "serial" and jobs is not None and jobs > 1:
        raise InputError(
            "--executor serial runs one trial at a time; drop --jobs or use local", field="--jobs"
        )
    if executor == "local" and jobs is not None:
        check_jobs(jobs)  # an absurd --jobs is refused before anything is checked or trained
    return {
        "executor": executor,
        "jobs": jobs,
        "threads": threads,
        "ray_address": ray_address,
        "cpus_per_trial": cpus_per_trial,
        "gpus_per_trial": gpus_per_trial,
    }


def choose_executor(opts: ExecutorOptions, trials: int, device: Any) -> ExecutorOptions:
    """The executor a run uses, from the options and what it runs (``trials``, ``device``).

    The default (``auto``) on the CPU runs ``min(cores, trials)`` one-thread workers, serially in this
    process when that is one: every core busy, no two trials' OpenMP threads waiting for each other, and the
    same numbers on any core count, since every trial runs one thread. On a GPU (or MPS) the default is
    serial. ``--jobs``/``--threads``/``--executor`` override; local workers without ``--jobs`` are
    ``min(cores, trials)`` too (one per visible GPU on CUDA). Serial and local trials on the CPU run one
    torch thread unless ``--threads`` says otherwise.
    """
    from adacli.run.executors import cpu_cores, local_devices

    cpu = device.type == "cpu"
    kind, jobs = opts.executor, opts.jobs
    if kind == "auto":
        jobs = max(1, min(cpu_cores(), trials)) if cpu else 1
        kind = "local" if jobs > 1 else "serial"
    elif kind == "local" and jobs is None:
        jobs = max(1, min(cpu_cores(), trials)) if cpu else len(local_devices(str(device), 1))
    elif kind == "serial":
        jobs = 1
    threads = opts.threads
    if threads is None and cpu and kind in ("serial", "local"):
        threads = 1
    return ExecutorOptions(kind, jobs, threads, opts.ray_address, opts.cpus_per_trial, opts.gpus_per_trial)


def likely_trials(recipe: Recipe) -> int:
    """How many trials a recipe asks for at least (optimizers x seeds; a sweep adds more): enough to
    decide early whether local workers will run, before the plan (and torch) exist."""
    return len(recipe.optimizers) * len(recipe.seed_list)


def warm_up_workers(recipes: list[Recipe], options: dict[str, Any]) -> None:
    """Start the local workers' forkserver now when these recipes will probably run on local workers, so
    that its imports (torch, timm) overlap the caller's own and its checks (the preflight) instead of
    delaying the first trial (see :func:`adacli.run.executors.prestart`). Decided without importing
    torch: a recipe on ``cpu`` or ``auto`` (a GPU machine then serves it serially and the forkserver idles
    until the run ends)."""
    from adacli.run.executors import cpu_cores, prestart

    opts = ExecutorOptions(**options) if options else ExecutorOptions()
    if opts.executor == "local" or (
        opts.executor == "auto"
        and cpu_cores() > 1
        and recipes
        and max(likely_trials(r) for r in recipes) > 1
        and all(r.device in ("cpu", "auto") for r in recipes)
    ):
        prestart()


@contextlib.contextmanager
def trial_threads(recipes: list[Recipe], options: dict[str, Any]) -> Iterator[None]:
    """This process's torch threads set to what the trials will run with (on the CPU: ``--threads``, else
    1) while it checks them (the preflight's real forward/backward/step), then restored. Why: the check
    is a trial's first step, and on a busy 2-core machine two OpenMP threads make a small model's step a
    hundred times slower (0.8 s instead of 8 ms, measured), which the preflight would pay per optimizer."""
    import torch

    from adacli.train.step import resolve_device

    cpu = bool(recipes) and all(resolve_device(r.device).type == "cpu" for r in recipes)
    threads = options.get("threads") or 1
    before = torch.get_num_threads()
    if cpu and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def open_executor(recipes: list[Recipe], **options: Any) -> Any:
    """One executor for several recipes (a suite's workloads), for :func:`run_recipe`'s ``pool=``; the
    caller closes it. The options are chosen for the largest of them (:func:`choose_executor`). None when
    the recipes name different devices (each run then starts its own executor)."""
    from adacli.train.step import resolve_device

    if not recipes or len({r.device for r in recipes}) > 1:
        return None
    opts = ExecutorOptions(**options) if options else ExecutorOptions()
    first = recipes[0]
    chosen = choose_executor(opts, max(likely_trials(r) for r in recipes), resolve_device(first.device))
    setup = WorkerSetup(recipe=first.model_dump(mode="json"), device=first.device, threads=chosen.threads)
    kw = {k: v for k, v in vars(chosen).items() if k != "executor"}
    return make_executor(chosen.executor, setup, **kw)


@dataclass
class _Run:
    """Everything the stages share once the run is set up."""

    plan: Plan
    recipe_json: dict[str, Any]
    folder: RunFolder
    executor: Any
    environment: dict[str, Any]
    progress: Progress | None
    judge: Judge | None = None
    rounds: Rounds | None = None  # seeds until decided
    scheduler: Scheduler | None = None
    closed: bool = False
    borrowed: bool = False  # a suite's executor: its owner closes it, unless this run is cancelled
    chosen_by_default: bool = False

    def close_executor(self, cancel: bool) -> None:
        """Stop the executor once (workers terminated, Ray disconnected); errors while stopping after
        another error are not allowed to hide that one."""
        if not self.closed:
            self.closed = True
            if cancel or not self.borrowed:
                self.executor.close(cancel=cancel)


def _recipe_json(recipe: Recipe, recipe_path: str | Path | None) -> dict[str, Any]:
    data = recipe.model_dump(mode="json")
    return {"path": str(recipe_path), **data} if recipe_path is not None else data


def _load_data(plan: Plan, data: Any = None) -> Any:
    """The dataset (once, here, unless the preflight already loaded it); a sweep needs a validation split
    to select on."""
    from adacli.train.data import load_data

    recipe = plan.recipe
    data = data if data is not None else load_data(recipe.dataset)
    if plan.swept and data.split_size("val") == 0:
        raise InputError(
            "a sweep selects on the validation split, which is empty here: raise dataset.val_fraction",
            file=recipe.source_file,
            line=recipe.line_of("dataset"),
            field="dataset.val_fraction",
        )
    return data


def _start_executor(
    plan: Plan, recipe_json: dict[str, Any], opts: ExecutorOptions, device: Any, on_progress: Any, data: Any
) -> tuple[Any, Any]:
    """Start the executor (:func:`choose_executor`) and load the data (``data``: the preflight's, when it
    loaded it): (executor, data). Local workers get ready first, so their start overlaps the parent's data
    loading; the serial executor gets the parent's data."""
    chosen = choose_executor(opts, plan.planned, device)
    setup = WorkerSetup(recipe=recipe_json, device=plan.recipe.device, threads=chosen.threads)
    kw = {k: v for k, v in vars(chosen).items() if k != "executor"}
    ex = None
    try:
        if chosen.executor == "local":
            ex = make_executor("local", setup, **kw)
            ex.start(on_progress)
            return ex, _load_data(plan, data)
        data = _load_data(plan, data)
        ex = make_executor(chosen.executor, setup, **kw, data=data)
        ex.start(on_progress)
        return ex, data
    except BaseException:
        if ex is not None:
            with contextlib.suppress(Exception):
                ex.close(cancel=True)
        raise


def _environment(device: Any, data: Any, folder: RunFolder, recipe: Recipe, executor: Any) -> dict[str, Any]:
    from adacli.train.step import evaluation_record

    environment = environment_info(device)
    environment["torch_threads"] = executor.trial_threads  # the trials' (workers'), not this process's
    environment["data"] = data.describe()
    environment["evaluation"] = evaluation_record(data, recipe.budget.eval_batch_size)
    if folder.resumed:
        environment["resumed_from"] = str(folder.path)
    return environment


def _on_record(run: _Run) -> Any:
    def on_record(task: TrialTask, result: TrialResult, reused: bool) -> None:
        run.folder.write_trial(result, task.index)
        if run.progress is not None:
            run.progress.finished(task, result, reused)

    return on_record


def _begin(run: _Run) -> None:
    """Announce the plan (and any resume or damage notes), mark the folder as being written, and set
    up the scheduler with the finished trials the folder already holds."""
    folder, progress = run.folder, run.progress
    if progress is not None:
        progress.plan(run.plan.planned)
        if folder.resumed:
            progress.note(f"resume: {len(folder.scan.finished)} finished trial(s) in {folder.path}")
        for line in folder.warnings():
            progress.note(line)
    # a resumed folder keeps its results.json until the save: a crash before then loses nothing
    if not (folder.resumed and folder.scan.recipe):
        try:
            store.start_run(folder.path, recipe=run.recipe_json, environment=run.environment)
        except WriteError as e:  # before any training: the run folder cannot be written (exit 2)
            raise InputError(f"cannot write the run folder: {e}", file=str(folder.path)) from None
    notes = progress.note if progress is not None else None
    run.scheduler = Scheduler(run.plan, folder.scan.finished, _on_record(run), notes)


def _save(run: _Run, status: str) -> RunOutcome:
    """The save step: executor and counts into the environment, then :func:`save.save_run_folder`. A
    file the disk refuses is a WriteError (exit 1) that says where the finished trials are."""
    try:
        return _save_folder(run, status)
    except WriteError as e:
        raise _where_to_go_on(run, e) from None


def _where_to_go_on(run: _Run, e: WriteError) -> WriteError:
    where = run.folder.path
    return e.with_hint(
        f"the trials that finished are in {where / store.TRIALS_DIR}; once the disk has room, "
        f"continue with --resume {where}"
    )


def _save_folder(run: _Run, status: str) -> RunOutcome:
    sched = run.scheduler
    assert sched is not None
    run.environment["executor"] = {
        **run.executor.describe(),
        "default": run.chosen_by_default,  # chosen by adacli (no --executor, --jobs)
        "shared": run.borrowed,  # one executor for every workload of a suite
    }
    run.environment["trials_run"] = sched.ran
    run.environment["trials_reused"] = sched.reused
    return save_run_folder(
        run.folder.path,
        plan=run.plan,
        recipe_json=run.recipe_json,
        environment=run.environment,
        records=sched.ordered(),
        choices=sched.choices,
        status=status,
        ran=sched.ran,
        reused=sched.reused,
        judge=run.judge,
        seeds=run.rounds.record() if run.rounds is not None else None,
    )


def _drive_rounds(run: _Run) -> None:
    """The run loop; with seeds until decided, once per round until the design stops the run."""
    assert run.scheduler is not None
    drive(run.scheduler, run.executor)
    while run.rounds is not None:
        plan = run.rounds.next_plan(run.scheduler.ordered(), run.recipe_json, run.environment)
        if plan is None:
            return
        before = run.rounds.looks[-2]
        run.plan = plan
        run.scheduler.extend(plan)
        if run.progress is not None:
            run.progress.plan(plan.planned)
            run.progress.note(
                f"seeds until decided: {run.rounds.undecided} comparison(s) undecided at {before} seeds; "
                f"running seeds {before}..{len(plan.seeds) - 1}"
            )
        drive(run.scheduler, run.executor)


def _save_what_finished(run: _Run, error: BaseException) -> None:
    """After an error in the run loop: save what finished. When the error was the disk refusing a trial
    file, the save will likely be refused too: then the first error is the one to tell (it is re-raised
    with where the finished trials are by the caller)."""
    try:
        _save(run, "interrupted")
    except WriteError:
        if not isinstance(error, WriteError):
            raise


def _execute(run: _Run, guard: InterruptGuard) -> RunOutcome:
    """The run loop and the save. An interrupt stops the loop and saves what finished (then raises
    RunInterrupted); any other error saves too and propagates."""
    assert run.scheduler is not None
    stopped: int | None = None
    try:
        _drive_rounds(run)
    except KeyboardInterrupt as e:
        guard.hold()
        stopped = signum_of(e)
        if run.rounds is not None:
            run.rounds.stopped = "interrupted"
    except BaseException as e:
        guard.hold()
        with contextlib.suppress(Exception):
            run.close_executor(cancel=True)
        _save_what_finished(run, e)
        if isinstance(e, WriteError) and not e.hint:
            raise _where_to_go_on(run, e) from None
        raise
    guard.hold()  # from here on a signal cannot cut the stop or the save short
    run.close_executor(cancel=stopped is not None)
    outcome = _save(run, "complete" if stopped is None else "interrupted")
    if stopped is not None:
        raise RunInterrupted(outcome, stopped)
    return outcome


def _borrow(pool: Any, plan: Plan, recipe_json: dict[str, Any], on_progress: Any, data: Any) -> Any:
    """Point an executor the caller owns (a suite's) at this recipe: (the data, loaded here)."""
    data = _load_data(plan, data)
    pool.use(WorkerSetup(recipe=recipe_json, device=plan.recipe.device), data)
    pool.start(on_progress)
    return data


def run_recipe(
    recipe: Recipe,
    *,
    recipe_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    executor: str = "auto",
    jobs: int | None = None,
    threads: int | None = None,
    ray_address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float | None = None,
    resume: str | Path | None = None,
    progress: Progress | None = None,
    data: Any = None,
    judge: Judge | None = None,
    pool: Any = None,
) -> RunOutcome:
    """Run every trial of ``recipe`` (its sweep, if any, then the chosen configurations on every seed)
    and save the run folder; return what was measured.

    ``executor``: ``auto`` (the default, :func:`choose_executor`) | ``serial`` (this process) | ``local``
    (``jobs`` worker processes) | ``ray``. ``threads``: torch threads per trial (CPU default: 1).
    ``pool``: an executor the caller started and closes (:func:`open_executor`, one for every workload of
    a suite); the executor options are then its own. ``resume``: a run folder of the same recipe setup
    whose finished trials are reused (and which receives the results); ``out_dir`` may also name such a
    folder. ``data``: the dataset the preflight already loaded (else it is loaded here). ``judge``: the
    regression gate, run on a complete run before its files are written (see
    :func:`adacli.run.save.save_run_folder`). The command line's overrides are the caller's
    (``recipe.with_overrides``). Raises ``InputError`` for bad input (nothing written),
    :class:`RunInterrupted` on SIGINT/SIGTERM (finished trials saved).
    """
    from adacli.train.step import resolve_device

    opts = ExecutorOptions(executor, jobs, threads, ray_address, cpus_per_trial, gpus_per_trial)
    recipe_json = _recipe_json(recipe, recipe_path)
    with InterruptGuard() as guard:
        dev = resolve_device(recipe.device)
        rounds = Rounds.of(recipe, dev)
        plan = rounds.first_plan() if rounds is not None else build_plan(recipe, dev)
        folder = open_run_folder(recipe, setup_of(recipe_json, dev), out_dir=out_dir, resume=resume)
        run = None
        try:
            on_progress = progress.event if progress is not None else (lambda ev: None)
            if pool is not None:
                ex, data = pool, _borrow(pool, plan, recipe_json, on_progress, data)
            else:
                ex, data = _start_executor(plan, recipe_json, opts, dev, on_progress, data)
            guard.arm()  # Ray installs a SIGTERM handler of its own
            env = _environment(dev, data, folder, recipe, ex)
            run = _Run(plan, recipe_json, folder, ex, env, progress, judge, rounds)
            run.borrowed, run.chosen_by_default = pool is not None, executor == "auto"
            del data  # the workers hold their own copy
            _begin(run)
            return _execute(run, guard)
        finally:
            if run is not None:
                with contextlib.suppress(Exception):
                    run.close_executor(cancel=True)
            folder.close(wrote=(run is not None and run.scheduler is not None) or folder.resumed)


__all__ = [
    "ExecutorOptions",
    "RunInterrupted",
    "RunOutcome",
    "choose_executor",
    "executor_options",
    "likely_trials",
    "open_executor",
    "run_recipe",
    "trial_threads",
    "warm_up_workers",
]
