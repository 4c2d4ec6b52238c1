"""Seeds until decided: a run as rounds of more seeds, stopped by the group-sequential design.

``seeds: {min, max, step, until: decided}`` runs ``min`` seeds, then looks at the primary comparisons
with the reference (:func:`adacli.analysis.verdict.undecided_pairs`, at the design's level for this look)
and, while some are undecided and fewer than ``max`` seeds have run, plans ``step`` more seeds. A round is
nothing but a larger plan of the same recipe: its tasks keep the smaller plan's indices and content keys,
so the run loop, every executor, the run folder and ``--resume`` treat them like any other trials (a
resumed run replays the same looks on the stored trials and stops where the first one did). Why the
rounds stopped (``decided``, ``max``, ``interrupted``) goes to results.json ``seeds``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adacli.analysis import metrics, sequential, verdict
from adacli.recipe import Recipe
from adacli.results import TrialResult
from adacli.run.plan import Plan, TrialTask, build_plan


@dataclass
class Rounds:
    """The rounds of one seeds-until-decided run: its design and the seeds run at each look so far."""

    recipe: Recipe
    device: Any
    design: sequential.Design
    looks: list[int] = field(default_factory=list)
    stopped: str | None = None  # decided | max | interrupted
    undecided: int = 0  # primary comparisons still undecided at the last look

    @classmethod
    def of(cls, recipe: Recipe, device: Any) -> Rounds | None:
        """The rounds of ``recipe``, or None when it runs a fixed number of seeds."""
        plan = recipe.seed_plan
        if plan is None:
            return None
        design = sequential.Design(plan.min, plan.max, plan.round_size, spending=plan.spending)
        return cls(recipe, device, design, [plan.min])

    def first_plan(self) -> Plan:
        return build_plan(self.recipe.with_seeds(self.looks[0]), self.device)

    def record(self) -> dict[str, Any]:
        """What results.json ``seeds`` starts from (:meth:`adacli.analysis.verdict.Settings.of_run`)."""
        looks = list(self.looks)
        return {"mode": "sequential", **self.design.describe(), "looks": looks, "stopped": self.stopped}

    def next_plan(
        self,
        records: list[tuple[TrialTask, TrialResult]],
        recipe_json: dict[str, Any],
        environment: dict[str, Any],
    ) -> Plan | None:
        """After a round: the plan with the next round's seeds, or None (and why) when the run stops."""
        finals = [r for t, r in records if t.role == "final"]
        settings = verdict.Settings.of_run(recipe_json, environment, self.record())
        target = metrics.resolve_target(finals, self.recipe.target, reference=self.recipe.reference)
        self.undecided = len(verdict.undecided_pairs(finals, target, settings))
        if not self.undecided:
            self.stopped = "decided"
            return None
        if self.looks[-1] >= self.design.n_max:
            self.stopped = "max"
            return None
        self.looks.append(min(self.design.n_max, self.looks[-1] + self.design.step))
        return build_plan(self.recipe.with_seeds(self.looks[-1]), self.device)


__all__ = ["Rounds"]
