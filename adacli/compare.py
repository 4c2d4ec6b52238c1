"""``adacli compare`` as a library call: a recipe run on the in-process (serial) executor.

A comparison is one run of the pipeline (:mod:`adacli.pipeline`: plan -> run -> save) with the
``serial`` executor: for each seed the initial model is built once (``torch.manual_seed``) and every
optimizer of that seed trains a copy of it, so "same initial weights" holds by construction (the
weights' fingerprint is stored with every trial, ``extra["init_fingerprint"]``). Sweeps, ``--jobs``,
Ray and ``--resume`` are the same pipeline with other options; this module keeps the names earlier
versions exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adacli.pipeline import RunInterrupted, run_recipe
from adacli.plan import apply_overrides, build_plan
from adacli.recipe import Recipe
from adacli.runfolder import default_run_dir
from adacli.save import RunOutcome
from adacli.schedule import Progress

CompareOutcome = RunOutcome
CompareInterrupted = RunInterrupted  # a KeyboardInterrupt: Ctrl-C (exit 130) or SIGTERM (143)


@dataclass
class PlannedTrial:
    """One entry of a plain comparison's plan: which optimizer (resolved), label and seed."""

    index: int
    label: str
    seed: int
    resolved: Any  # adacli.optim.registry.ResolvedOptimizer


def plan_trials(recipe: Recipe) -> list[PlannedTrial]:
    """Seeds x optimizers, seed-major, every optimizer resolved and built once on a dummy tensor (so bad
    hyperparameters fail here, InputError); a sweep's configurations are :mod:`adacli.plan`'s business."""
    from adacli.optim.registry import resolve_optimizer

    plan = build_plan(recipe, "cpu")
    return [
        PlannedTrial(t.index, t.label, t.seed, resolve_optimizer(t.name, t.hparams))
        for t in plan.first_tasks()
    ]


def run_compare(
    recipe: Recipe,
    *,
    recipe_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    device: str | None = None,
    seeds: int | None = None,
    steps: int | None = None,
    progress: Progress | None = None,
) -> RunOutcome:
    """Run every trial of ``recipe`` in this process and save the run folder (see
    :func:`adacli.pipeline.run_recipe`, which takes the executor options too)."""
    return run_recipe(
        recipe,
        recipe_path=recipe_path,
        out_dir=out_dir,
        device=device,
        seeds=seeds,
        steps=steps,
        progress=progress,
    )


__all__ = [
    "CompareInterrupted",
    "CompareOutcome",
    "PlannedTrial",
    "apply_overrides",
    "default_run_dir",
    "plan_trials",
    "run_compare",
]
