"""A suite's figures across workloads, from each workload's trials (DESIGN.md section 4): pure functions.

Per workload, each label's per-seed time to target (steps or seconds, the suite's ``measure``), with the
censoring rule for seeds that missed (the one of ``compare``); across workloads, AlgoPerf's profiles,
scores and speed-ups (misses as budget + 1), mean ranks and win/tie/loss from the four outcomes
(:mod:`adacli.analysis.suite_stats`). Reads trial records and targets, writes nothing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adacli.analysis import metrics, outcomes, suite_stats
from adacli.results import Target, TrialResult


@dataclass
class WorkloadFigures:
    """What the suite statistics read of one workload: its status and, when complete, its trials."""

    name: str
    status: str  # pending | complete | interrupted
    trials: Sequence[TrialResult] = ()
    target: Target | None = None
    seeds: Sequence[int] = ()


def per_seed_times(
    trials: Sequence[TrialResult], target: Any, seeds: Sequence[int], labels: Sequence[str], measure: str
) -> tuple[dict[str, list[float | None]], float]:
    """Per label, the time to target of each seed (None = censored: missed, diverged, failed or absent),
    and the censoring value the paired outcomes and the speed-ups use for it: budget + 1 step, or the
    run's longest training time + one step (:func:`adacli.analysis.metrics.censor_values`, the rule of
    ``compare`` too)."""
    by_key = {(t.label, t.seed): t for t in trials}
    out: dict[str, list[float | None]] = {}
    for label in labels:
        row: list[float | None] = []
        for seed in seeds:
            t = by_key.get((label, seed))
            if t is None or not metrics.usable(t):
                row.append(None)
            elif measure == "steps":
                steps = metrics.steps_to_target(t, target)
                row.append(None if steps is None else float(steps))
            else:
                row.append(metrics.seconds_to_target(t, target))
        out[label] = row
    steps_censor, seconds_censor = metrics.censor_values(trials)
    return out, steps_censor if measure == "steps" else seconds_censor


def time_rule(trials: Sequence[TrialResult], measure: str) -> outcomes.MetricRule:
    """The W/T/L rule of a workload: times as ratios within 5 %, resolved to one step (or one median
    step time in seconds)."""
    step_times = [t.train_seconds / t.steps_done for t in trials if metrics.usable(t) and t.steps_done]
    resolution = 1.0 if measure == "steps" else (statistics.median(step_times) if step_times else 0.0)
    return outcomes.with_rule(suite_stats.TIME_RULE, resolution=resolution)


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def aggregate(
    workloads: Sequence[WorkloadFigures], labels: Sequence[str], reference: str, measure: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-workload records and the cross-workload figures (over the complete workloads)."""
    records: list[dict[str, Any]] = []
    times: dict[str, dict[str, float]] = {}
    paired: dict[str, dict[str, list[float]]] = {}
    censors: dict[str, float] = {}
    rules: dict[str, outcomes.MetricRule] = {}
    for w in workloads:
        rec: dict[str, Any] = {"name": w.name, "status": w.status}
        if w.status == "complete" and w.target is not None:
            seeds = sorted({t.seed for t in w.trials}) or list(w.seeds)  # seeds until decided: those run
            per_seed, censor = per_seed_times(w.trials, w.target, seeds, labels, measure)
            times[w.name] = {lbl: suite_stats.time_to_target(v) for lbl, v in per_seed.items()}
            paired[w.name] = {lbl: [censor if x is None else x for x in v] for lbl, v in per_seed.items()}
            censors[w.name], rules[w.name] = censor, time_rule(w.trials, measure)
            rec["target"] = w.target.value
            rec["times"] = {lbl: _finite_or_none(t) for lbl, t in times[w.name].items()}
            rec["per_seed"] = per_seed
            rec["censored_as"] = censor
        records.append(rec)
    if not times:
        return records, {}
    speed = suite_stats.speedups(times, reference, censor=censors)
    return records, {
        "profiles": {
            "measure": measure,
            "taus": suite_stats.TAUS,
            "curves": suite_stats.performance_profiles(times),
        },
        "scores": suite_stats.scores(times),
        "ranks": suite_stats.mean_ranks(times),
        "speedups": {lbl: s for lbl, (s, _n) in speed.items()},
        "speedup_workloads": {lbl: n for lbl, (_s, n) in speed.items()},
        "wins": suite_stats.win_tie_loss(paired, rules),
        "n_workloads": len(times),
    }


__all__ = ["WorkloadFigures", "aggregate", "per_seed_times"]
