"""Cross-workload aggregation of a suite (DESIGN.md section 4): pure functions on plain numbers.

A suite judges optimizers on several workloads at once, where raw times are not comparable (200 steps on
one workload, 2000 on another). Everything here works on *ratios within a workload* or on ranks, so every
workload weighs the same. The definitions follow AlgoPerf's published scoring (Dahl et al. 2023,
"Benchmarking Neural Network Training Algorithms", section 4.5, and its scoring code), with adacli's
seeds in the place of AlgoPerf's studies:

- **time to target** ``t[s, w]`` of optimizer ``s`` on workload ``w``: the **median over seeds** of the
  steps (or seconds) to the workload's target, a seed that never reached it counting as ``inf``: with
  one miss in three seeds the median is still the middle reached time; with two it is ``inf`` ("never");
- **performance ratio** ``r[s, w] = t[s, w] / min_s t[s, w]``; a ratio above ``TAU_MAX = 4`` counts as
  never (AlgoPerf's ``r_max``);
- **performance profile** (Dolan & Moré 2002): ``rho_s(tau)`` = the fraction of workloads with
  ``r[s, w] <= tau``, for ``tau`` in [1, 4];
- **score**: the normalized area ``B_s = 1 / (TAU_MAX - 1) * integral_1^TAU_MAX rho_s(tau) dtau``
  (0..1; 1 = fastest on every workload), computed exactly (the profile is a step function: a workload with
  ratio ``r <= 4`` adds ``(4 - r) / 3 / n_workloads``) where AlgoPerf samples the profile on a grid and
  integrates with the trapezoid rule, which converges to the same number;
- **speed-up** against a reference: the geometric mean over workloads of ``t_ref / t_s`` where a miss
  counts as the workload's budget + 1 (AlgoPerf's ``compute_speedups`` replaces ``inf`` by the budget plus
  one unit), so missing a workload costs instead of vanishing; reported with the number of workloads the
  optimizer reached. AlgoPerf prints ``t_s / t_ref`` (below 1 = faster); adacli shows its inverse, so
  that "1.7x" reads as "1.7 times as fast";
- **mean rank**: per workload rank 1 = fastest, ties (and several "never") share the average rank (not
  an AlgoPerf figure; shown beside the score);
- **win / tie / loss** per pair: per workload the four outcomes of :mod:`adacli.analysis.outcomes` on
  the per-seed times (ratio scale, 5 % margin, misses as budget + 1): ``better`` = win, ``worse`` = loss,
  ``equivalent`` = tie, plus ``undecided`` and, with one seed, ``untested``.

No I/O and no training objects: the suite module turns runs into these numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from adacli.analysis import outcomes

TAU_MAX = 4.0
#: taus at which results.json stores the profile curves (every 0.05; the score is exact, not sampled)
TAUS = [round(1.0 + 0.05 * i, 2) for i in range(int((TAU_MAX - 1.0) / 0.05) + 1)]
WTL = ("win", "tie", "loss", "undecided", "untested")

Times = Mapping[str, Mapping[str, float]]  # workload -> label -> time to target (inf = never)


def time_to_target(values: Sequence[float | None]) -> float:
    """Median over seeds, a seed that missed the target (None, non-finite) counting as ``inf``; ``inf``
    without seeds. (AlgoPerf: the median over studies of each study's time, misses as ``inf``.)"""
    if not values:
        return math.inf
    times = [float(v) if v is not None and math.isfinite(v) else math.inf for v in values]
    return float(np.median(times))


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


def speedups(
    times: Times, reference: str, censor: Mapping[str, float] | None = None
) -> dict[str, tuple[float | None, int]]:
    """(geometric-mean speed-up ``t_ref / t`` vs the reference, workloads reached) per optimizer.

    A miss counts as its workload's ``censor`` value (budget + 1 in the suite's measure), AlgoPerf's rule,
    so missing a workload costs instead of vanishing from the mean; the count is the workloads the
    optimizer reached. A workload without a censor value (or a time of 0) is left out of the mean.
    """
    out: dict[str, tuple[float | None, int]] = {}
    for label in _labels(times):
        logs, reached = [], 0
        for workload, row in times.items():
            if label not in row or reference not in row:
                continue
            mine, ref = _censored(row[label], workload, censor), _censored(row[reference], workload, censor)
            reached += math.isfinite(row[label])
            if math.isfinite(mine) and math.isfinite(ref) and mine > 0 and ref > 0:
                logs.append(math.log(ref / mine))
        out[label] = (math.exp(sum(logs) / len(logs)) if logs else None, reached)
    return out


def _censored(t: float, workload: str, censor: Mapping[str, float] | None) -> float:
    if math.isfinite(t):
        return t
    return float((censor or {}).get(workload, math.inf))


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

#: times to target compare as ratios within 5 % (DEFAULT_RULES["steps_to_target"]), one step resolution
TIME_RULE = outcomes.DEFAULT_RULES["steps_to_target"]


def workload_verdicts(
    per_seed: Mapping[str, Sequence[float]], rule: outcomes.MetricRule = TIME_RULE
) -> dict[tuple[str, str], str]:
    """One workload: for every ordered pair (a, b), a's result against b: "win" | "tie" | "loss" |
    "undecided" | "untested", from the four outcomes of :mod:`adacli.analysis.outcomes` over this
    workload's pairs (one Bonferroni family). The per-seed lists are paired by position (the same seed)
    and lower is better (censored seeds carry the budget + 1). ``rule``: :data:`TIME_RULE` with the
    workload's resolution (one step, or one step's seconds)."""
    results = outcomes.compare_pairs(
        {k: list(v) for k, v in per_seed.items()}, rule, metric="time_to_target", plan_seeds=False
    )
    out: dict[tuple[str, str], str] = {}
    for r in results:
        out[(r.a, r.b)] = outcomes.wtl(r.outcome)
        out[(r.b, r.a)] = outcomes.wtl(outcomes.flip(r.outcome))
    return out


def win_tie_loss(
    per_seed: PerSeed, rules: Mapping[str, outcomes.MetricRule] | None = None
) -> dict[str, dict[str, dict[str, int]]]:
    """``wins[a][b] = {"win": n, "tie": n, "loss": n, "undecided": n, "untested": n}``: a against b,
    counted over the workloads (``rules``: workload -> its rule, :data:`TIME_RULE` by default)."""
    labels = list(dict.fromkeys(label for row in per_seed.values() for label in row))
    wins = {a: {b: dict.fromkeys(WTL, 0) for b in labels if b != a} for a in labels}
    for workload, row in per_seed.items():
        rule = (rules or {}).get(workload, TIME_RULE)
        for (a, b), verdict in workload_verdicts(row, rule).items():
            wins[a][b][verdict] += 1
    return wins


__all__ = [
    "TAUS",
    "TAU_MAX",
    "TIME_RULE",
    "WTL",
    "mean_ranks",
    "performance_profiles",
    "ratios",
    "scores",
    "speedups",
    "time_to_target",
    "win_tie_loss",
    "workload_verdicts",
]
