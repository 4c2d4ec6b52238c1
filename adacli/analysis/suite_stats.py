"""Cross-workload aggregation of a suite (DESIGN.md section 4): pure functions on plain numbers.

A suite judges optimizers on several workloads at once, where raw times are not comparable (200 steps
on one workload, 2000 on another). Everything here works on *ratios within a workload* or on ranks, so
every workload weighs the same:

- **time to target** of an optimizer on a workload: the mean over its seeds of steps (or seconds) to the
  workload's target; a seed that never reached it makes the whole entry ``inf`` ("never"): an optimizer
  that sometimes fails is not as fast as its lucky seeds;
- **performance profile** (Dolan & Moré 2002): ``rho(tau)`` = fraction of workloads whose time is within
  ``tau`` x the best optimizer's time on that workload, for ``tau`` in [1, TAU_MAX]; misses and ratios
  above TAU_MAX count as never;
- **score**: the area under the profile over [1, TAU_MAX] divided by ``TAU_MAX - 1`` (0..1, as AlgoPerf):
  1 = fastest on every workload. Computed exactly (the profile is a step function): a workload with
  ratio ``r <= TAU_MAX`` adds ``(TAU_MAX - r) / (TAU_MAX - 1) / n_workloads``;
- **speed-up** against a reference: the geometric mean over the workloads where both reached the target
  of ``t_reference / t_optimizer`` (> 1: faster than the reference), with the number of such workloads;
- **mean rank**: per workload, rank 1 = fastest, ties (never included) share the average rank;
- **win / tie / loss** per pair: per workload a paired test over the seeds (:func:`adacli.stats.paired_test`,
  Holm-adjusted over the pairs of that workload); win = significantly faster, loss = significantly slower,
  tie = no significant difference.

No I/O and no training objects: the suite module turns runs into these numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations

TAU_MAX = 4.0
#: taus at which results.json stores the profile curves (every 0.05; the score is exact, not sampled)
TAUS = [round(1.0 + 0.05 * i, 2) for i in range(int((TAU_MAX - 1.0) / 0.05) + 1)]

Times = Mapping[str, Mapping[str, float]]  # workload -> label -> time to target (inf = never)


def time_to_target(values: Sequence[float | None]) -> float:
    """Mean over seeds; ``inf`` when any seed never reached the target (None) or there is no seed."""
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return math.inf
    return sum(float(v) for v in values if v is not None) / len(values)


def ratios(times: Times) -> dict[str, dict[str, float]]:
    """Per workload, each optimizer's time over the best time there (``inf`` = never, or nobody did)."""
    out: dict[str, dict[str, float]] = {}
    for workload, row in times.items():
        best = min(row.values(), default=math.inf)
        out[workload] = {
            label: (t / best if best > 0 else (1.0 if t == 0 else math.inf))
            if math.isfinite(t) and math.isfinite(best)
            else math.inf
            for label, t in row.items()
        }
    return out


def _labels(times: Times) -> list[str]:
    return list(dict.fromkeys(label for row in times.values() for label in row))


def performance_profiles(times: Times, taus: Sequence[float] = TAUS) -> dict[str, list[float]]:
    """rho(tau) per optimizer at each tau: the fraction of workloads with ratio <= tau (<= TAU_MAX)."""
    r = ratios(times)
    n = len(r)
    out: dict[str, list[float]] = {}
    for label in _labels(times):
        rs = [row.get(label, math.inf) for row in r.values()]
        out[label] = [sum(x <= tau and x <= TAU_MAX for x in rs) / n if n else 0.0 for tau in taus]
    return out


def scores(times: Times) -> dict[str, float]:
    """The normalized area under each profile over [1, TAU_MAX] (exact; 0..1)."""
    r = ratios(times)
    n = len(r)
    out: dict[str, float] = {}
    for label in _labels(times):
        rs = [row.get(label, math.inf) for row in r.values()]
        area = sum((TAU_MAX - x) / (TAU_MAX - 1.0) for x in rs if x <= TAU_MAX)
        out[label] = area / n if n else 0.0
    return out


def speedups(times: Times, reference: str) -> dict[str, tuple[float | None, int]]:
    """(geometric-mean speed-up vs the reference, number of workloads both reached) per optimizer."""
    out: dict[str, tuple[float | None, int]] = {}
    for label in _labels(times):
        logs = [
            math.log(row[reference] / row[label])
            for row in times.values()
            if label in row
            and reference in row
            and math.isfinite(row[label])
            and math.isfinite(row[reference])
            and row[label] > 0
            and row[reference] > 0
        ]
        out[label] = (math.exp(sum(logs) / len(logs)) if logs else None, len(logs))
    return out


def mean_ranks(times: Times) -> dict[str, float]:
    """Mean over workloads of each optimizer's rank (1 = fastest; ties and nevers share the average)."""
    from scipy.stats import rankdata

    labels = _labels(times)
    sums = dict.fromkeys(labels, 0.0)
    for row in times.values():
        values = [row.get(label, math.inf) for label in labels]
        for label, rank in zip(labels, rankdata(values, method="average"), strict=True):
            sums[label] += float(rank)
    n = len(times)
    return {label: sums[label] / n if n else math.nan for label in labels}


PerSeed = Mapping[str, Mapping[str, Sequence[float]]]  # workload -> label -> per-seed times (paired)


def workload_verdicts(per_seed: Mapping[str, Sequence[float]]) -> dict[tuple[str, str], str]:
    """One workload: for every ordered pair (a, b), "win" | "tie" | "loss" of a against b.

    The per-seed lists are paired by position (the same seed) and lower is better (censored seeds carry
    the budget + 1 step). Paired test per pair, Holm-adjusted over this workload's pairs.
    """
    from adacli.analysis.stats import holm_adjust, paired_test

    pairs = list(combinations(per_seed, 2))
    tests = holm_adjust(
        [
            paired_test(list(per_seed[a]), list(per_seed[b]), labels=(a, b), higher_is_better=False)
            for a, b in pairs
        ],
        higher_is_better=False,
    )
    out: dict[tuple[str, str], str] = {}
    for (a, b), t in zip(pairs, tests, strict=True):
        verdict = {"a": "win", "b": "loss"}.get(t.better or "", "tie")
        out[(a, b)] = verdict
        out[(b, a)] = {"win": "loss", "loss": "win", "tie": "tie"}[verdict]
    return out


def win_tie_loss(per_seed: PerSeed) -> dict[str, dict[str, dict[str, int]]]:
    """``wins[a][b] = {"win": n, "tie": n, "loss": n}``: a against b, counted over the workloads."""
    labels = list(dict.fromkeys(label for row in per_seed.values() for label in row))
    wins = {a: {b: {"win": 0, "tie": 0, "loss": 0} for b in labels if b != a} for a in labels}
    for row in per_seed.values():
        for (a, b), verdict in workload_verdicts(row).items():
            wins[a][b][verdict] += 1
    return wins


__all__ = [
    "TAUS",
    "TAU_MAX",
    "mean_ranks",
    "performance_profiles",
    "ratios",
    "scores",
    "speedups",
    "time_to_target",
    "win_tie_loss",
    "workload_verdicts",
]
