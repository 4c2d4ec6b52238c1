"""A suite's figures across workloads, from each workload's trials (DESIGN.md section 4): pure functions.

Per workload, each label's per-seed time to target (steps or seconds, the suite's ``measure``), with the
censoring rule for seeds that missed; across workloads, the profiles, scores, speed-ups, ranks and
win/tie/loss of :mod:`adacli.analysis.suite_stats`. Reads trial records and targets, writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adacli.analysis import metrics, suite_stats
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
    and the censoring value "budget + 1 step" the paired tests use for it."""
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
    steps = max((t.steps_done for t in trials), default=0)
    if measure == "steps":
        return out, float(steps + 1)
    seconds = max((t.train_seconds for t in trials), default=0.0)
    return out, seconds + (seconds / steps if steps else 1.0)


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def aggregate(
    workloads: Sequence[WorkloadFigures], labels: Sequence[str], reference: str, measure: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-workload records and the cross-workload figures (over the complete workloads)."""
    records: list[dict[str, Any]] = []
    times: dict[str, dict[str, float]] = {}
    paired: dict[str, dict[str, list[float]]] = {}
    for w in workloads:
        rec: dict[str, Any] = {"name": w.name, "status": w.status}
        if w.status == "complete" and w.target is not None:
            per_seed, censor = per_seed_times(w.trials, w.target, w.seeds, labels, measure)
            times[w.name] = {lbl: suite_stats.time_to_target(v) for lbl, v in per_seed.items()}
            paired[w.name] = {lbl: [censor if x is None else x for x in v] for lbl, v in per_seed.items()}
            rec["target"] = w.target.value
            rec["times"] = {lbl: _finite_or_none(t) for lbl, t in times[w.name].items()}
            rec["per_seed"] = per_seed
            rec["censored_as"] = censor
        records.append(rec)
    if not times:
        return records, {}
    speed = suite_stats.speedups(times, reference)
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
        "wins": suite_stats.win_tie_loss(paired),
        "n_workloads": len(times),
    }


__all__ = ["WorkloadFigures", "aggregate", "per_seed_times"]
