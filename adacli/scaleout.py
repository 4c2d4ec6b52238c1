"""A comparison at scale: sweeps, executors (serial, local processes, Ray) and resume, in one loop.

``adacli compare`` hands a run here when the recipe sweeps a hyperparameter or when ``--jobs``,
``--executor`` or ``--resume`` is given (a plain serial comparison stays in :mod:`adacli.compare`; both
produce the same run folder and the same per-trial numbers).

The plan, per recipe optimizer (see :mod:`adacli.sweep`):

1. **sweep trials**: every configuration on the selection seeds (``sweep.seeds``: the first seed, or all);
2. as soon as an optimizer's sweep trials are all in, **select** its configuration on the ``val`` split;
3. **final trials**: the chosen configuration on every seed. Their summary is the comparison table.

Without a sweep, step 3 alone runs (every optimizer x seed). Every trial is keyed by a content hash
(:mod:`adacli.trialcache`), so a trial that is already known is never run twice: the chosen
configuration's sweep trial on the selection seed *is* its final trial for that seed, and ``--resume``
reuses every finished trial of the run folder. Each trial is written to ``trials/`` the moment it
arrives (``report.write_trial``); Ctrl-C saves what finished and raises ``CompareInterrupted``.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from adacli import metrics, report, sweep, trialcache, verdict
from adacli.compare import CompareInterrupted, CompareOutcome, apply_overrides, default_run_dir
from adacli.errors import InputError
from adacli.executors import ProgressEvent, TrialTask, WorkerSetup, make_executor
from adacli.recipe import Recipe
from adacli.results import TrialResult

LR_SENSITIVITY_PNG = "lr_sensitivity.png"


class ScaleProgress(Protocol):
    """What the run reports to (``sweep_report.WorkersProgress`` implements it)."""

    def plan(self, total: int) -> None: ...
    def event(self, ev: ProgressEvent) -> None: ...
    def finished(self, task: TrialTask, result: TrialResult, reused: bool) -> None: ...
    def note(self, text: str) -> None: ...


@dataclass
class ScaleOutcome(CompareOutcome):
    """A :class:`CompareOutcome` plus the sweep (as stored in results.json) and what ran vs was reused."""

    sweep: dict[str, Any] | None = None
    ran: int = 0  # trials run by this invocation
    reused: int = 0  # trials taken from the run folder (resume) or shared between sweep and final


def wants_scaleout(
    recipe: Recipe, *, jobs: int = 1, executor: str | None = None, resume: str | None = None
) -> bool:
    """Whether ``compare`` should run through this module rather than the plain serial loop."""
    return (
        jobs != 1 or executor is not None or resume is not None or any(sw.axes for sw in sweep.expand(recipe))
    )


def _resume_dir(resume: str | Path, out_dir: str | Path | None) -> Path:
    run_dir = Path(resume)
    if not run_dir.is_dir():
        raise InputError("run folder to resume not found", file=str(run_dir), field="--resume")
    if not (run_dir / report.RESULTS_FILE).is_file() and not (run_dir / report.TRIALS_DIR).is_dir():
        raise InputError(
            f"not an adacli run folder (no {report.RESULTS_FILE} nor {report.TRIALS_DIR}/)",
            file=str(run_dir),
            field="--resume",
        )
    if out_dir is not None and Path(out_dir).resolve() != run_dir.resolve():
        raise InputError("--resume writes into the folder it resumes; drop --out", field="--out")
    return run_dir


def run_scaled(
    recipe: Recipe,
    *,
    recipe_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    executor: str = "serial",
    jobs: int = 1,
    threads: int | None = None,
    ray_address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float | None = None,
    resume: str | Path | None = None,
    progress: ScaleProgress | None = None,
    device: str | None = None,
    seeds: int | None = None,
    steps: int | None = None,
) -> ScaleOutcome:
    """Run the recipe's sweep (if any) and final trials on an executor; save and return the run.

    ``executor``: ``serial`` | ``local`` (``jobs`` worker processes) | ``ray``. ``threads``: torch threads
    per trial (default: this process's for serial, cores // jobs for local, cpus_per_trial for Ray).
    ``resume``: a run folder whose finished trials are reused (and which receives the results).
    Raises ``CompareInterrupted`` on Ctrl-C (finished trials saved) and ``InputError`` for bad input.
    """
    from adacli.data import load_data
    from adacli.optim.registry import resolve_optimizer
    from adacli.trial import resolve_device

    recipe = apply_overrides(recipe, device=device, seeds=seeds, steps=steps)
    sweeps = sweep.expand(recipe)
    swept = any(sw.axes for sw in sweeps)
    dev = resolve_device(recipe.device)
    resolved = {
        (sw.index, j): resolve_optimizer(sw.name, c) for sw in sweeps for j, c in enumerate(sw.configs)
    }
    if resume is not None:
        run_dir = _resume_dir(resume, out_dir)
        cache = trialcache.finished_trials(run_dir)
    else:
        run_dir = Path(out_dir) if out_dir is not None else default_run_dir(recipe)
        cache = {}

    recipe_json = recipe.model_dump(mode="json")
    if recipe_path is not None:
        recipe_json = {"path": str(recipe_path), **recipe_json}
    setup = WorkerSetup(recipe=recipe_json, device=recipe.device, threads=threads)
    ex = make_executor(
        executor,
        setup,
        jobs=jobs,
        threads=threads,
        ray_address=ray_address,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
    )
    on_progress = progress.event if progress is not None else (lambda ev: None)
    early = ex.kind == "local"  # spawn now: the workers' imports overlap the parent's data loading
    if early:
        ex.start(on_progress)
    try:
        data = load_data(recipe.dataset)
        if swept and data.split_size("val") == 0:
            raise InputError(
                "a sweep selects on the validation split, which is empty here: raise dataset.val_fraction",
                file=recipe.source_file,
                line=recipe.line_of("dataset"),
                field="dataset.val_fraction",
            )
    except BaseException:
        ex.close(cancel=True)
        raise

    slice_ = trialcache.recipe_slice(recipe)
    versions = trialcache.versions()
    dtype = trialcache.device_type(dev)

    def key(sw: sweep.OptimizerSweep, j: int, seed: int) -> str:
        r = resolved[(sw.index, j)]
        return trialcache.trial_key(
            slice_,
            optimizer=r.name,
            optimizer_class=r.qualname,
            hparams=r.hparams,
            seed=seed,
            device_type=dtype,
            versions_=versions,
        )

    seed_list = recipe.seed_list
    selection_seeds = seed_list if recipe.sweep.seeds == "all" else seed_list[:1]
    n_opt = len(sweeps)
    sweep_tasks: dict[int, list[TrialTask]] = {}
    index = 0
    if swept:
        for sw in sweeps:
            sweep_tasks[sw.index] = []
            for j in range(sw.n):
                for seed in selection_seeds:
                    t = TrialTask(
                        index,
                        sw.config_label(j),
                        sw.label,
                        sw.name,
                        sw.configs[j],
                        seed,
                        key(sw, j, seed),
                        "sweep",
                        j,
                    )
                    sweep_tasks[sw.index].append(t)
                    index += 1
    n_sweep = index
    planned = n_sweep + n_opt * len(seed_list)

    def final_tasks(sw: sweep.OptimizerSweep, j: int) -> list[TrialTask]:
        return [
            TrialTask(
                n_sweep + s * n_opt + sw.index,
                sw.label,
                sw.label,
                sw.name,
                sw.configs[j],
                seed,
                key(sw, j, seed),
                "final",
                j,
            )
            for s, seed in enumerate(seed_list)
        ]

    environment = report.environment_info(dev)
    environment["data"] = data.describe()
    del data  # workers load their own copy

    # --- the loop -----------------------------------------------------------------------------------
    results: dict[int, tuple[TrialTask, TrialResult]] = {}
    done: dict[str, TrialResult] = dict(cache)
    inflight: dict[str, list[TrialTask]] = {}
    pending: deque[TrialTask] = deque()
    choices: dict[int, sweep.Choice] = {}
    counts = {"ran": 0, "reused": 0}
    prog = progress

    def record(task: TrialTask, result: TrialResult, reused: bool) -> None:
        extra = dict(result.extra)
        extra.update(
            trial_key=task.key,
            role=task.role,
            optimizer_label=task.optimizer_label,
            config_index=task.config_index,
        )
        if task.role == "sweep":
            sw = sweeps[_opt_index(task)]
            extra["sweep"] = {"config": sw.swept_values(task.config_index), "n_configs": sw.n}
        elif swept:
            sw = sweeps[_opt_index(task)]
            extra["sweep"] = {"chosen": sw.swept_values(task.config_index), "n_configs": sw.n}
        if reused:
            extra["reused"] = result.label if result.label != task.label else True
        r = dataclasses.replace(result, label=task.label, extra=extra)
        results[task.index] = (task, r)
        counts["reused" if reused else "ran"] += 1
        report.write_trial(run_dir, r, index=task.index)
        if prog is not None:
            prog.finished(task, r, reused)
        if task.role == "sweep":
            sw = sweeps[_opt_index(task)]
            mine = sweep_tasks[sw.index]
            if sw.index not in choices and all(t.index in results for t in mine):
                by_config: dict[int, list[TrialResult]] = {}
                for t in mine:
                    by_config.setdefault(t.config_index, []).append(results[t.index][1])
                choice = sweep.select(sw, by_config, recipe.sweep.metric)
                choices[sw.index] = choice
                if prog is not None:
                    sc = choice.scores[choice.index]
                    acc = f"{sc.val_accuracy:.2f}%" if sc.val_accuracy is not None else "n/a"
                    prog.note(f"{sw.label}: chose {sweep.format_values(choice.chosen)} (val acc {acc})")
                for ft in final_tasks(sw, choice.index):
                    schedule(ft)

    def schedule(task: TrialTask) -> None:
        # a stored trial without validation figures (saved by a plain `adacli compare`) cannot be a
        # selection trial: that one runs again
        usable = task.key in done and (task.role != "sweep" or sweep.val_of(done[task.key]) is not None)
        if usable:
            record(task, done[task.key], True)
        elif task.key in inflight:
            inflight[task.key].append(task)
        else:
            inflight[task.key] = []
            pending.append(task)

    def _opt_index(task: TrialTask) -> int:
        return next(sw.index for sw in sweeps if sw.label == task.optimizer_label)

    def arrived(task: TrialTask, result: TrialResult) -> None:
        if result.status in trialcache.FINISHED:
            done[task.key] = result
        waiters = inflight.pop(task.key, [])
        record(task, result, False)
        for w in waiters:
            if result.status in trialcache.FINISHED:
                record(w, result, True)
            else:
                inflight[w.key] = []
                pending.append(w)

    def save(status: str) -> ScaleOutcome:
        ordered = [results[i] for i in sorted(results)]
        finals = [r for t, r in ordered if t.role == "final"]
        target = metrics.resolve_target(finals, recipe.target)
        summaries = metrics.summarize(finals, target)
        analysis = verdict.analyze(finals, summaries, target, reference=recipe.reference)
        sweep_info = (
            _sweep_info(recipe, sweeps, choices, [r for t, r in ordered if t.role == "sweep"], environment)
            if swept
            else None
        )
        environment["executor"] = ex.describe()
        environment["trials_run"] = counts["ran"]
        environment["trials_reused"] = counts["reused"]
        if resume is not None:
            environment["resumed_from"] = str(run_dir)
        report.save_run(
            run_dir,
            recipe=recipe_json,
            environment=environment,
            trials=finals,
            summaries=summaries,
            target=target,
            status=status,
            plot=bool(finals),
            extra={**({"sweep": sweep_info} if sweep_info is not None else {}), **analysis.to_dict()},
        )
        if sweep_info is not None and sweep_info["trials"]:
            from adacli.sweep_report import plot_lr_sensitivity

            plot_lr_sensitivity(sweep_info, run_dir / LR_SENSITIVITY_PNG)
        return ScaleOutcome(
            run_dir,
            finals,
            summaries,
            target,
            status,
            planned,
            environment,
            analysis,
            sweep_info,
            counts["ran"],
            counts["reused"],
        )

    report.start_run(run_dir, recipe=recipe_json, environment=environment)
    if prog is not None:
        prog.plan(planned)
        if resume is not None:
            prog.note(f"resume: {len(cache)} finished trial(s) in {run_dir}")
    try:
        if not early:
            ex.start(on_progress)
        if swept:
            for sw in sweeps:
                for t in sweep_tasks[sw.index]:
                    schedule(t)
        else:
            for s in range(len(seed_list)):
                for sw in sweeps:
                    ft = final_tasks(sw, 0)[s]
                    choices[sw.index] = sweep.Choice(sw, 0, [])
                    schedule(ft)
        while pending or ex.outstanding:
            while pending and ex.outstanding < ex.slots:
                ex.submit(pending.popleft())
            for task, result in ex.wait(0.2):
                arrived(task, result)
    except KeyboardInterrupt:
        ex.close(cancel=True)
        raise CompareInterrupted(save("interrupted")) from None
    except BaseException:
        ex.close(cancel=True)
        if results:
            save("interrupted")
        raise
    ex.close()
    return save("complete")


def _sweep_info(
    recipe: Recipe,
    sweeps: list[sweep.OptimizerSweep],
    choices: dict[int, sweep.Choice],
    sweep_trials: list[TrialResult],
    environment: dict[str, Any],
) -> dict[str, Any]:
    """What results.json keeps about the sweep: rule, per optimizer the grid, scores and choice, and
    every sweep trial."""
    seed_list = recipe.seed_list
    by_opt: dict[str, dict[int, list[TrialResult]]] = {}
    for t in sweep_trials:
        by_opt.setdefault(t.extra.get("optimizer_label", ""), {}).setdefault(
            int(t.extra.get("config_index", 0)), []
        ).append(t)
    optimizers = []
    for sw in sweeps:
        choice = choices.get(sw.index)
        scores = (
            choice.scores
            if choice is not None and choice.scores
            else sweep.score_configs(sw, by_opt.get(sw.label, {}))
        )
        optimizers.append(
            {
                "label": sw.label,
                "name": sw.name,
                "n_configs": sw.n,
                "fixed": sw.fixed,
                "axes": sw.axes,
                "chosen_index": None if choice is None else choice.index,
                "chosen": None if choice is None else choice.chosen,
                "val_accuracy": None if choice is None else scores[choice.index].val_accuracy,
                "val_loss": None if choice is None else scores[choice.index].val_loss,
                "note": None if choice is None else choice.note,
                "configs": [dataclasses.asdict(s) for s in scores],
            }
        )
    counts = [sw.n for sw in sweeps]
    return {
        "split": sweep.SPLIT,
        "val_size": (environment.get("data") or {}).get("val_size"),
        "metric": recipe.sweep.metric,
        "tie_break": "val_loss" if recipe.sweep.metric == "val_accuracy" else "val_accuracy",
        "seed_policy": recipe.sweep.seeds,
        "selection_seeds": seed_list if recipe.sweep.seeds == "all" else seed_list[:1],
        "seeds": seed_list,
        "equal_budget": recipe.sweep.equal_budget,
        "budgets_differ": len(set(counts)) > 1,
        "optimizers": optimizers,
        "trials": [t.to_dict() for t in sweep_trials],
    }


__all__ = ["LR_SENSITIVITY_PNG", "ScaleOutcome", "ScaleProgress", "run_scaled", "wants_scaleout"]
