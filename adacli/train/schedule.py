"""The learning-rate schedule of a trial: the recipe's ``schedule`` as a multiplier and a ``LambdaLR``.

Every optimizer of a run gets the schedule built the same way (fairness), and a constant learning rate
builds no scheduler at all, so it costs nothing per step. Preflight steps the same scheduler once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from adacli.recipe import ScheduleSpec


def lr_factor(schedule: ScheduleSpec | None, step: int, progress: float) -> float:
    """The learning-rate multiplier before optimizer step ``step + 1``.

    ``progress`` in [0, 1] is how far the budget is spent after warm-up (steps for step/epoch budgets,
    the training clock for a time budget), so cosine/linear/step schedules end where the budget ends.
    """
    if schedule is None:
        return 1.0
    if step < schedule.warmup_steps:
        return (step + 1) / schedule.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    lo = schedule.min_lr_ratio
    if schedule.name == "cosine":
        return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule.name == "linear":
        return 1.0 - (1.0 - lo) * p
    if schedule.name == "step":
        if schedule.step_size is not None:
            return schedule.gamma ** ((step - schedule.warmup_steps) // schedule.step_size)
        return schedule.gamma ** min(2, int(p * 3))  # no step_size: decay at 1/3 and 2/3 of the budget
    return 1.0


def build_scheduler(
    opt: torch.optim.Optimizer,
    schedule: ScheduleSpec | None,
    total: int | None,
    seconds: float | None,
    clock: Callable[[], float] | None = None,
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """A LambdaLR from the recipe's schedule (None when the lr is constant: no per-step cost at all).

    Progress is steps over the budget for a step or epoch budget (``total``); for a time budget
    (``seconds``) it is the training ``clock`` over the budget, read when ``sched.step()`` computes the
    next factor. Step 0's factor is computed as the scheduler is built, before the clock runs: progress 0.
    """
    if schedule is None or (schedule.name == "constant" and not schedule.warmup_steps):
        return None
    warm = schedule.warmup_steps

    def factor(i: int) -> float:
        if total is not None:
            p = (i - warm) / max(1, total - warm)
        else:
            p = (clock() / seconds) if (seconds and clock is not None and i > 0) else 0.0
        return lr_factor(schedule, i, p)

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
