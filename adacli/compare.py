"""A comparison: recipe -> trial plan (seeds x optimizers) -> serial executor -> metrics -> run folder.

Why it is shaped this way (DESIGN.md sections 1, 4, 5):

* The plan runs **seed-major**: for each seed the initial model is created once (``torch.manual_seed``)
  and every optimizer of that seed trains a copy of it, so "same initial weights" holds by construction;
  the fingerprint of those weights is stored with every trial (``extra["init_fingerprint"]``).
* Everything that can be wrong with the input is checked before the first step (optimizer names and
  hyperparameters are resolved *and* constructed on a dummy parameter), so a typo costs no training.
* Each finished trial is written to the run folder at once (``report.write_trial``); a Ctrl-C then
  saves a summary of what finished (status ``interrupted``) and raises :class:`CompareInterrupted`
  (a ``KeyboardInterrupt``), which the CLI turns into exit code 130.
* This module formats nothing: progress goes through the optional ``progress`` object
  (``report.CompareProgress`` or anything with the same methods).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from adacli import metrics, report, verdict
from adacli.recipe import Recipe
from adacli.results import OptimizerSummary, Target, TrialResult
from adacli.trial import TrialConfig, initial_model, resolve_device, run_trial, state_fingerprint


class Progress(Protocol):
    """What the executor reports to (``report.CompareProgress`` implements it)."""

    def trial_started(self, index: int, total: int, label: str, seed: int) -> None: ...
    def step(self, step: int, total_steps: int | None, loss: Any) -> None: ...
    def trial_finished(self, result: TrialResult) -> None: ...


@dataclass
class PlannedTrial:
    """One entry of the plan: which optimizer (resolved), under which label, with which seed."""

    index: int
    label: str
    seed: int
    resolved: Any  # adacli.optim.registry.ResolvedOptimizer


@dataclass
class CompareOutcome:
    """What a comparison produced (also what was saved in ``run_dir``)."""

    run_dir: Path
    trials: list[TrialResult]
    summaries: list[OptimizerSummary]
    target: Target
    status: str = "complete"  # complete | interrupted
    planned: int = 0
    environment: dict[str, Any] = field(default_factory=dict)
    verdict: verdict.Verdict | None = None  # the statistics stage's comparisons, best sets, power line


class CompareInterrupted(KeyboardInterrupt):
    """Ctrl-C during a comparison: the finished trials are saved in ``outcome.run_dir``."""

    def __init__(self, outcome: CompareOutcome) -> None:
        super().__init__(f"interrupted after {len(outcome.trials)}/{outcome.planned} trials")
        self.outcome = outcome


def apply_overrides(
    recipe: Recipe, *, device: str | None = None, seeds: int | None = None, steps: int | None = None
) -> Recipe:
    """The recipe with the CLI's overrides applied (``--steps`` replaces any steps/epochs/seconds budget).

    Re-validated through the pydantic models, so a bad override is reported like a bad recipe value.
    """
    data = recipe.model_dump()
    if device is not None:
        data["device"] = device
    if seeds is not None:
        data["seeds"] = seeds
    if steps is not None:
        data["budget"].update(steps=steps, epochs=None, seconds=None)
    if device is None and seeds is None and steps is None:
        return recipe
    from pydantic import ValidationError

    from adacli.errors import InputError

    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InputError(f"bad command-line override: {err['msg']}", field=where) from None


def plan_trials(recipe: Recipe) -> list[PlannedTrial]:
    """Seeds x optimizers, seed-major; resolves every optimizer and builds it once on a dummy tensor
    so that bad hyperparameters fail here (InputError), not after minutes of training."""
    from adacli.optim.registry import assign_labels, resolve_optimizer

    labels = assign_labels(recipe.optimizers)
    resolved = []
    for i, spec in enumerate(recipe.optimizers):
        r = resolve_optimizer(spec.name, spec.hparams)
        try:
            r.build([torch.zeros(1, requires_grad=True)])
        except Exception as e:
            from adacli.errors import AdacliError, InputError

            if isinstance(e, AdacliError):
                raise
            raise InputError(
                f"optimizer {spec.name!r} cannot be constructed: {e}", field=f"optimizers.{i}"
            ) from e
        resolved.append(r)
    plan = []
    for seed in recipe.seed_list:
        for label, r in zip(labels, resolved, strict=True):
            plan.append(PlannedTrial(index=len(plan), label=label, seed=seed, resolved=r))
    return plan


def default_run_dir(recipe: Recipe, root: str | Path = "runs") -> Path:
    """``runs/<name>/<YYYYmmdd-HHMMSS>/`` (a numeric suffix when two runs start in the same second)."""
    base = Path(root) / recipe.name / time.strftime("%Y%m%d-%H%M%S")
    path, n = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{n}")
        n += 1
    return path


def _summarize(trials: list[TrialResult], recipe: Recipe) -> tuple[list[OptimizerSummary], Target]:
    target = metrics.resolve_target(trials, recipe.target)
    return metrics.summarize(trials, target), target


def run_compare(
    recipe: Recipe,
    *,
    recipe_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    device: str | None = None,
    seeds: int | None = None,
    steps: int | None = None,
    progress: Progress | None = None,
) -> CompareOutcome:
    """Run every planned trial of ``recipe`` and save the run folder; return what was measured.

    Overrides (``device``, ``seeds``, ``steps``) are applied to the recipe first, and the run folder's
    ``results.json`` stores the recipe as run. Raises :class:`CompareInterrupted` on Ctrl-C after saving
    the finished trials, and ``InputError`` for bad input found before training.
    """
    from adacli.data import load_data

    recipe = apply_overrides(recipe, device=device, seeds=seeds, steps=steps)
    dev = resolve_device(recipe.device)
    plan = plan_trials(recipe)
    data = load_data(recipe.dataset)
    config = TrialConfig.from_recipe(recipe, dev)

    run_dir = Path(out_dir) if out_dir is not None else default_run_dir(recipe)
    recipe_json = recipe.model_dump(mode="json")
    if recipe_path is not None:
        recipe_json = {"path": str(recipe_path), **recipe_json}
    environment = report.environment_info(dev)
    environment["data"] = data.describe()
    report.start_run(run_dir, recipe=recipe_json, environment=environment)

    trials: list[TrialResult] = []
    on_step = progress.step if progress is not None else None
    try:
        model = None
        fingerprint = ""
        current_seed = None
        for p in plan:
            if p.seed != current_seed:
                model = initial_model(recipe.model, data, p.seed)
                fingerprint = state_fingerprint(model)
                current_seed = p.seed
            if progress is not None:
                progress.trial_started(p.index, len(plan), p.label, p.seed)
            assert model is not None
            result = run_trial(model, data, p.resolved, config, seed=p.seed, label=p.label, on_step=on_step)
            result.extra["init_fingerprint"] = fingerprint
            report.write_trial(run_dir, result, index=p.index)
            trials.append(result)
            if progress is not None:
                progress.trial_finished(result)
    except KeyboardInterrupt:
        status = "interrupted"
    else:
        status = "complete"

    summaries, target = _summarize(trials, recipe)
    analysis = verdict.analyze(trials, summaries, target, reference=recipe.reference)
    report.save_run(
        run_dir,
        recipe=recipe_json,
        environment=environment,
        trials=trials,
        summaries=summaries,
        target=target,
        status=status,
        plot=bool(trials),
        extra=analysis.to_dict(),
    )
    outcome = CompareOutcome(run_dir, trials, summaries, target, status, len(plan), environment, analysis)
    if status == "interrupted":
        raise CompareInterrupted(outcome)
    return outcome


__all__ = [
    "CompareInterrupted",
    "CompareOutcome",
    "PlannedTrial",
    "apply_overrides",
    "default_run_dir",
    "plan_trials",
    "run_compare",
]
