"""``adacli step-test`` as one call: what to test (names, a recipe read and checked), then the checks.

A recipe is read and checked as ``compare`` reads it (exit 2 before anything runs); the checks
themselves are :mod:`adacli.ci.steptest`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from adacli.errors import InputError

FUSED_CHOICES = ("auto", "yes", "no")


def step_test(
    optimizers: Sequence[str],
    recipe_file: str | None,
    *,
    fused: str = "auto",
    on_check: Callable[[Any], None] | None = None,
) -> Any:
    """Plan and run the step-test: an ``adacli.ci.steptest.StepTestReport`` (InputError for bad input)."""
    from adacli.ci import steptest

    if fused not in FUSED_CHOICES:
        raise InputError(f"unknown value {fused!r}", field="--fused", allowed=FUSED_CHOICES)
    recipe = None
    if recipe_file is not None:
        from adacli.recipe import load_recipe
        from adacli.run.preflight import check_environment

        recipe = load_recipe(recipe_file)
        check_environment(recipe, recipe_file)
    plan = steptest.plan_step_test(optimizers, recipe)
    return steptest.run_step_test(plan, fused=fused, on_check=on_check)  # type: ignore[arg-type]


__all__ = ["FUSED_CHOICES", "step_test"]
