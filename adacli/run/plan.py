"""Stage 1 of a run, the plan: recipe -> trial tasks (seeds x optimizers x sweep points) with content keys.

The plan is pure bookkeeping: it trains nothing and touches no folder. What it fixes:

* **which trials exist.** Without a sweep, one *final* trial per optimizer and seed, seed-major (every
  optimizer of a seed trains a copy of the same initial model, so the executor builds it once per seed).
  With a sweep, first one *sweep* trial per configuration and selection seed (``sweep.seeds``: the first
  seed, or all); once an optimizer's sweep trials are in, its chosen configuration runs as a final trial
  on every seed (:meth:`Plan.final_tasks`).
* **where each trial sits** (``TrialTask.index``: the order of the trial files) and **what it is**
  (``TrialTask.key``: a content hash from :mod:`adacli.run.keys`, so a trial known from a resumed run
  folder, or shared between the sweep and the final trials, never runs twice).
* **that every optimizer can be built** with each of its configurations (on a dummy parameter), so a bad
  hyperparameter is an ``InputError`` here, not after minutes of training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adacli.errors import AdacliError, InputError
from adacli.recipe import Recipe
from adacli.run import sweep
from adacli.run.keys import (
    code_fingerprint,
    device_type,
    optimizer_fingerprint,
    recipe_slice,
    trial_key,
    versions,
)


@dataclass
class TrialTask:
    """One trial to run: the optimizer by name and concrete hyperparameters, the seed, and its identity."""

    index: int  # position in the run's plan (orders trial files)
    label: str  # label in results (``adam`` or ``adam[lr=0.01]`` for a sweep trial)
    optimizer_label: str  # the recipe optimizer's label
    name: str  # optimizer name as written in the recipe
    hparams: dict[str, Any]  # concrete hyperparameters as given (no sweep syntax left)
    seed: int
    key: str = ""  # adacli.run.keys.trial_key
    role: str = "final"  # "sweep" (selection trial) | "final" (chosen config x seed)
    config_index: int = 0


@dataclass
class Plan:
    """Every trial a recipe asks for, and the rule that turns sweep choices into final trials."""

    recipe: Recipe
    sweeps: list[sweep.OptimizerSweep]
    keys: dict[tuple[int, int, int], str]  # (optimizer index, config index, seed) -> trial key
    sweep_tasks: dict[int, list[TrialTask]] = field(default_factory=dict)  # optimizer index -> tasks
    code: str = ""  # adacli.run.keys.code_fingerprint when the plan was made

    @property
    def swept(self) -> bool:
        return any(sw.axes for sw in self.sweeps)

    @property
    def seeds(self) -> list[int]:
        return self.recipe.seed_list

    @property
    def selection_seeds(self) -> list[int]:
        return self.seeds if self.recipe.sweep.seeds == "all" else self.seeds[:1]

    @property
    def n_sweep(self) -> int:
        return sum(len(ts) for ts in self.sweep_tasks.values())

    @property
    def planned(self) -> int:
        """Trials in the run: sweep trials plus optimizers x seeds final trials (some may be reused)."""
        return self.n_sweep + len(self.sweeps) * len(self.seeds)

    def sweep_of(self, task: TrialTask) -> sweep.OptimizerSweep:
        return next(sw for sw in self.sweeps if sw.label == task.optimizer_label)

    def final_tasks(self, sw: sweep.OptimizerSweep, j: int) -> list[TrialTask]:
        """Configuration ``j`` of ``sw`` on every seed (indices after the sweep trials, seed-major)."""
        n_opt = len(self.sweeps)
        return [
            TrialTask(
                self.n_sweep + s * n_opt + sw.index,
                sw.label,
                sw.label,
                sw.name,
                sw.configs[j],
                seed,
                self.keys[(sw.index, j, seed)],
                "final",
                j,
            )
            for s, seed in enumerate(self.seeds)
        ]

    def first_tasks(self) -> list[TrialTask]:
        """What runs first: every sweep trial, or (no sweep) every final trial, seed-major."""
        if self.swept:
            return [t for sw in self.sweeps for t in self.sweep_tasks[sw.index]]
        finals = [self.final_tasks(sw, 0) for sw in self.sweeps]
        return [finals[i][s] for s in range(len(self.seeds)) for i in range(len(self.sweeps))]


def resolve_configs(sweeps: list[sweep.OptimizerSweep]) -> dict[tuple[int, int], Any]:
    """Every optimizer configuration resolved (defaults filled in) and built once on a dummy parameter:
    an unknown name or a hyperparameter its constructor rejects is an InputError before any training."""
    import torch

    from adacli.optim.registry import resolve_optimizer

    resolved = {}
    for sw in sweeps:
        for j, config in enumerate(sw.configs):
            r = resolve_optimizer(sw.name, config)
            try:
                r.build([torch.zeros(1, requires_grad=True)])
            except AdacliError:
                raise
            except Exception as e:
                raise InputError(
                    f"optimizer {sw.name!r} cannot be constructed: {e}", field=f"optimizers.{sw.index}"
                ) from e
            resolved[(sw.index, j)] = r
    return resolved


def build_plan(recipe: Recipe, device: Any) -> Plan:
    """The plan of ``recipe`` on ``device`` (a ``torch.device``: its type enters every trial key)."""
    sweeps = sweep.expand(recipe)
    resolved = resolve_configs(sweeps)
    slice_, versions_ = recipe_slice(recipe), versions()
    dtype = device_type(device)
    adacli_code = code_fingerprint()
    keys = {
        (i, j, seed): trial_key(
            slice_,
            optimizer=r.name,
            optimizer_class=r.qualname,
            hparams=r.hparams,
            seed=seed,
            device_type=dtype,
            versions_=versions_,
            code={"adacli": adacli_code, "optimizer": optimizer_fingerprint(r.cls)},
        )
        for (i, j), r in resolved.items()
        for seed in recipe.seed_list
    }
    plan = Plan(recipe=recipe, sweeps=sweeps, keys=keys)
    plan.code = adacli_code
    if plan.swept:
        index = 0
        for sw in sweeps:
            plan.sweep_tasks[sw.index] = []
            for j in range(sw.n):
                for seed in plan.selection_seeds:
                    key = keys[(sw.index, j, seed)]
                    task = TrialTask(index, sw.config_label(j), sw.label, sw.name, sw.configs[j], seed, key)
                    task.role, task.config_index = "sweep", j
                    plan.sweep_tasks[sw.index].append(task)
                    index += 1
    return plan


__all__ = ["Plan", "TrialTask", "build_plan", "resolve_configs"]
