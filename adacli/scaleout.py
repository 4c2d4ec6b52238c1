"""Sweeps, executors (serial, local processes, Ray) and resume: the names earlier versions exported.

All of it is one pipeline now (:mod:`adacli.pipeline`: plan -> run loop -> save); see
:mod:`adacli.plan` for the sweep/final trial plan and content keys, :mod:`adacli.schedule` for the run
loop, :mod:`adacli.save` for the run folder's results.
"""

from __future__ import annotations

from adacli import sweep
from adacli.pipeline import run_recipe
from adacli.recipe import Recipe
from adacli.save import LR_SENSITIVITY_PNG, RunOutcome
from adacli.schedule import Progress

ScaleOutcome = RunOutcome
ScaleProgress = Progress
run_scaled = run_recipe  # the same keyword interface


def wants_scaleout(
    recipe: Recipe, *, jobs: int = 1, executor: str | None = None, resume: str | None = None
) -> bool:
    """Whether a run needs more than a plain serial comparison (a sweep, workers, Ray or a resume)."""
    return (
        jobs != 1 or executor is not None or resume is not None or any(sw.axes for sw in sweep.expand(recipe))
    )


__all__ = ["LR_SENSITIVITY_PNG", "ScaleOutcome", "ScaleProgress", "run_scaled", "wants_scaleout"]
