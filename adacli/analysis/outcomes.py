"""Four outcomes per pair of optimizers on one metric, practical margins, and families of comparisons.

A p-value answers "is there a difference?"; a reader wants "which one should I use?". Each pair ``(a, b)``
of labels on a metric therefore gets one of:

* ``better`` / ``worse``: the interval of the paired difference (or ratio) excludes "no difference";
  ``a`` is better (or worse) than ``b`` in the metric's direction;
* ``equivalent``: the interval lies inside ``± margin``, the metric's practical margin (two one-sided
  tests, TOST, read off the same interval);
* ``undecided``: neither; ``seeds_to_decide`` says how many seeds would decide it with 80 % power if the
  observed difference and spread held;
* ``untested``: fewer than two paired seeds, values only.

Significance comes first: an interval that excludes 0 and also lies inside the margin is ``better`` /
``worse`` (its size is in the interval). So "equivalent" never hides a significant difference.

**One interval decides everything.** The comparisons of one metric form a *family* (every pair of labels
by default). Each interval has level ``1 - alpha / m`` for the family's ``m`` tested pairs (Bonferroni),
so with 95 % confidence *all* of a family's intervals hold at once, and every outcome read off them
(better, worse, equivalent) is right at once: the family-wise rate of any wrong outcome is at most 5 %.
``p_adjusted`` is the matching Bonferroni p-value, so an interval excludes 0 exactly when
``p_adjusted < 0.05``. Holm's step-down test rejects a little more often, but its only intervals that
agree with it are uninformative for the rejected pairs (Strassburger & Bretz 2008), so a table could not
show a "*" and an interval that agree; Bonferroni's can.

**Scales.** Accuracy-like metrics compare differences ``a - b`` in their unit; times and losses compare
ratios ``a / b`` (a t-test of ``log a - log b``; the interval is exponentiated back), because a margin of
"5 % of the reference's time" is a ratio, speed-ups are ratios, and a ratio interval can never go below 0.
A ratio metric with a value <= 0 on some seed falls back to differences, with the margin taken relative to
``|mean(b)|``.

Pure numbers: imports :mod:`adacli.analysis.stats` and numpy/scipy only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from adacli.analysis import stats
from adacli.analysis.stats import ALPHA, Outcome, PairedResult

Scale = Literal["difference", "ratio"]
OUTCOMES: tuple[str, ...] = ("better", "worse", "equivalent", "undecided", "untested")


@dataclass(frozen=True)
class MetricRule:
    """How one metric is compared: its direction, scale, practical margin, resolution and range.

    ``margin`` is in the metric's unit on the difference scale (0.5 = half an accuracy point) and relative
    on the ratio scale (0.05 = within 5 % either way: the ratio interval inside ``[1/1.05, 1.05]``).
    ``resolution`` is the smallest step a value can move (one test image = ``100 / n_test`` points, one
    step); 0 for a continuous metric. ``lower`` / ``upper`` bound the metric's values (accuracy 0..100,
    times >= 0): mean intervals are clipped to them, difference intervals to ``[lower - upper, upper -
    lower]``.
    """

    higher_is_better: bool
    scale: Scale = "difference"
    margin: float = 0.0
    resolution: float = 0.0
    lower: float | None = None
    upper: float | None = None
    unit: str = ""


#: Default rules. Margins: half an accuracy point (1.8 test images of the digits set's 359; below the
#: seed-to-seed spread of typical small runs, above rounding), 5 % of the reference for times, step costs
#: and losses (a difference below 5 % rarely changes a choice of optimizer and is within the run-to-run
#: noise of wall-clock timing), 0.02 nats for the loss gap (its values are typically 0.05-0.2).
DEFAULT_RULES: dict[str, MetricRule] = {
    "final_test_accuracy": MetricRule(True, "difference", 0.5, lower=0.0, upper=100.0, unit="pts"),
    "best_test_accuracy": MetricRule(True, "difference", 0.5, lower=0.0, upper=100.0, unit="pts"),
    "generalization_gap": MetricRule(False, "difference", 0.5, lower=-100.0, upper=100.0, unit="pts"),
    "loss_gap": MetricRule(False, "difference", 0.02),
    "steps_to_target": MetricRule(False, "ratio", 0.05, resolution=1.0, lower=0.0, unit="steps"),
    "seconds_to_target": MetricRule(False, "ratio", 0.05, lower=0.0, unit="s"),
    "final_train_loss": MetricRule(False, "ratio", 0.05, lower=0.0),
    "mean_train_loss": MetricRule(False, "ratio", 0.05, lower=0.0),
    "step_time_ms": MetricRule(False, "ratio", 0.05, lower=0.0, unit="ms"),
    "optimizer_step_ms": MetricRule(False, "ratio", 0.05, lower=0.0, unit="ms"),
}


def outcome_codes(
    lo: np.ndarray, hi: np.ndarray, margin: float | np.ndarray, higher_is_better: bool
) -> np.ndarray:
    """The outcomes of ``a`` against ``b`` (indices into :data:`OUTCOMES`) from intervals ``[lo, hi]`` of
    ``a - b`` (or of ``log(a / b)``) and the margin on that scale: significance first, then equivalence,
    else undecided. Vectorized: the sequential simulation and a real run share this one rule."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    codes = np.full(lo.shape, OUTCOMES.index("undecided"))
    codes[(-np.asarray(margin) < lo) & (hi < margin)] = OUTCOMES.index("equivalent")
    up, down = ("better", "worse") if higher_is_better else ("worse", "better")
    codes[lo > 0.0] = OUTCOMES.index(up)
    codes[hi < 0.0] = OUTCOMES.index(down)
    return codes


def outcome_of(lo: float, hi: float, margin: float, higher_is_better: bool) -> Outcome:
    """:func:`outcome_codes` of one interval, as a word."""
    return OUTCOMES[int(outcome_codes(np.array(lo), np.array(hi), margin, higher_is_better))]  # type: ignore[return-value]


def flip(outcome: Outcome | None) -> Outcome | None:
    """The outcome of ``b`` against ``a``."""
    return {"better": "worse", "worse": "better"}.get(outcome or "", outcome)  # type: ignore[return-value]


@dataclass
class _Pair:
    """One pair's data on its test scale: differences ``d`` and their rounding variance."""

    a: str
    b: str
    x: np.ndarray
    y: np.ndarray
    scale: Scale
    margin: float  # on the test scale (log(1 + m) for ratios)
    floor: float
    censored: int


def _prepare(a: str, b: str, x: np.ndarray, y: np.ndarray, rule: MetricRule, censored: int) -> _Pair:
    if rule.scale == "ratio" and x.size and (x > 0).all() and (y > 0).all():
        floor = float(stats.log_ratio_floor(x, y, rule.resolution))
        return _Pair(a, b, x, y, "ratio", math.log1p(rule.margin), floor, censored)
    margin = rule.margin
    if rule.scale == "ratio":  # a value <= 0: differences, the margin relative to the mean of b
        margin = rule.margin * abs(float(y.mean()) if y.size else 0.0)
    return _Pair(a, b, x, y, "difference", margin, stats.difference_floor(rule.resolution), censored)


def _diffs(p: _Pair) -> np.ndarray:
    return np.log(p.x) - np.log(p.y) if p.scale == "ratio" else p.x - p.y


def compare_pairs(
    rows: Mapping[str, Sequence[float | None]],
    rule: MetricRule,
    *,
    metric: str = "",
    pairs: Sequence[tuple[str, str]] | None = None,
    family: str | None = None,
    alpha: float = ALPHA,
    alpha_pair: float | Mapping[tuple[str, str], float] | None = None,
    censored: Mapping[str, set[int]] | None = None,
    plan_seeds: bool = True,
) -> list[PairedResult]:
    """Compare labels paired by seed on one metric: one :class:`~adacli.analysis.stats.PairedResult` per pair.

    ``rows`` maps each label to one value per seed (same positions = same seeds; None for a missing seed).
    ``pairs`` defaults to every pair of labels in row order (``a`` above ``b``); they form one family of
    ``m`` tested pairs, each judged at ``alpha_pair = alpha / m`` (Bonferroni) unless ``alpha_pair`` is
    given (a number, or one per pair: a sequential design's nominal levels). ``censored`` maps a label to
    the seed positions whose value is censored (counted in each result, not used by the test).
    ``plan_seeds`` computes ``seeds_to_decide`` for undecided pairs (a few ms each).
    """
    labels = list(rows)
    if pairs is None:
        pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]]
    prepared = [_pair(a, b, rows, rule, censored or {}) for a, b in pairs]
    tested = [p for p in prepared if p.x.size >= 2]
    levels = _levels(tested, alpha, alpha_pair)
    out: dict[tuple[str, str], PairedResult] = {}
    for n in sorted({p.x.size for p in tested}):
        group = [p for p in tested if p.x.size == n]
        test = stats.floored_t(np.stack([_diffs(p) for p in group]), np.array([p.floor for p in group]))
        level = np.array([levels[(p.a, p.b)] for p in group])
        half = test.half_width(level)
        for i, p in enumerate(group):
            out[(p.a, p.b)] = _result(p, test, i, float(half[i]), float(level[i]), rule, metric, alpha)
    m = len(tested)
    results = []
    for p in prepared:
        r = out.get((p.a, p.b)) or _untested(p, metric, rule)
        r.family, r.family_size = family or metric, m
        if plan_seeds and r.outcome == "undecided":
            r.seeds_to_decide = _plan(p, alpha / max(m, 1))
        results.append(r)
    return results


def _pair(a: str, b: str, rows: Mapping[str, Sequence[float | None]], rule: MetricRule,
          censored: Mapping[str, set[int]]) -> _Pair:  # fmt: skip
    ra, rb = list(rows[a]), list(rows[b])
    if len(ra) != len(rb):
        raise ValueError(f"paired rows need one value per seed: {a!r} has {len(ra)}, {b!r} has {len(rb)}")
    keep = [i for i, (u, v) in enumerate(zip(ra, rb, strict=True)) if stats.finite(u) and stats.finite(v)]
    x = np.array([float(ra[i]) for i in keep])  # type: ignore[arg-type]
    y = np.array([float(rb[i]) for i in keep])  # type: ignore[arg-type]
    cens = censored.get(a, set()) | censored.get(b, set())
    return _prepare(a, b, x, y, rule, sum(i in cens for i in keep))


Levels = float | Mapping[tuple[str, str], float] | None


def _levels(tested: Sequence[_Pair], alpha: float, alpha_pair: Levels) -> dict[tuple[str, str], float]:
    if isinstance(alpha_pair, Mapping):
        return {(p.a, p.b): float(alpha_pair[(p.a, p.b)]) for p in tested}
    level = float(alpha_pair) if alpha_pair is not None else alpha / max(len(tested), 1)
    return {(p.a, p.b): level for p in tested}


def _result(p: _Pair, test: stats.TTest, i: int, half: float, level: float, rule: MetricRule,
            metric: str, alpha: float) -> PairedResult:  # fmt: skip
    mean, pval = float(test.mean[i]), float(test.p[i])
    lo, hi = mean - half, mean + half
    outcome = outcome_of(lo, hi, p.margin, rule.higher_is_better)
    significant = outcome in ("better", "worse")
    better = None
    if significant:
        better = "a" if outcome == "better" else "b"
    clipped = None
    if p.scale == "ratio":
        estimate, ci = math.exp(mean), [math.exp(lo), math.exp(hi)]
        margin = rule.margin
    else:
        iv = _clip_difference(lo, hi, rule)
        estimate, ci, margin = mean, [iv.lo, iv.hi], p.margin
        clipped = list(iv.clipped) if any(iv.clipped) else None
    return PairedResult(
        metric=metric, a=p.a, b=p.b, n=int(p.x.size), mean_diff=_clean(float((p.x - p.y).mean())),
        ci95=[_clean(ci[0]), _clean(ci[1])], p_value=pval, p_adjusted=min(1.0, pval * alpha / level),
        significant=significant, test="paired-t", wilcoxon_p=_wilcoxon(p), censored=p.censored,
        better=better, outcome=outcome, scale=p.scale, estimate=_clean(estimate), margin=margin,
        ci_level=1.0 - level, identical=bool((p.x == p.y).all()), ci_clipped=clipped,
    )  # fmt: skip


def _clip_difference(lo: float, hi: float, rule: MetricRule) -> stats.Interval:
    """A difference of two values in ``[lower, upper]`` lies in ``[lower - upper, upper - lower]``."""
    if rule.lower is None or rule.upper is None:
        return stats.Interval(lo, hi)
    span = rule.upper - rule.lower
    return stats.clip_interval(lo, hi, -span, span)


def _clean(x: float) -> float:
    """Never a negative zero (``-0.0 + 0.0 == 0.0``)."""
    return x + 0.0


def _wilcoxon(p: _Pair) -> float | None:
    return stats.wilcoxon_exact(_diffs(p).tolist()) if p.x.size >= stats.WILCOXON_MIN_N else None


def _untested(p: _Pair, metric: str, rule: MetricRule) -> PairedResult:
    diff = _clean(float(p.x[0] - p.y[0])) if p.x.size == 1 else None
    return PairedResult(
        metric=metric, a=p.a, b=p.b, n=int(p.x.size), mean_diff=diff, ci95=None, p_value=None,
        p_adjusted=None, significant=False, test="none", censored=p.censored, outcome="untested",
        scale=p.scale, margin=rule.margin if p.scale == "ratio" else p.margin,
    )  # fmt: skip


def _plan(p: _Pair, alpha_pair: float) -> int | None:
    d = _diffs(p)
    sd_eff = math.sqrt(float(d.var(ddof=1)) + p.floor)
    return stats.seeds_to_decide(float(d.mean()), sd_eff, p.margin, alpha_pair)


# --- families ---------------------------------------------------------------------------------------------


def describe_family(
    name: str,
    results: Sequence[PairedResult],
    *,
    role: Literal["primary", "secondary"],
    alpha: float = ALPHA,
    sequential: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``families[]`` record of results.json: which comparisons were adjusted together, and how."""
    metrics = sorted({r.metric for r in results})
    size = max((r.family_size or 0 for r in results), default=0)
    how = "Bonferroni: simultaneous intervals at level 1 - alpha/m, all outcomes read off them"
    if sequential:
        how = "group-sequential (alpha spending) within each pair, Bonferroni across pairs"
    return {
        "name": name,
        "role": role,
        "metrics": metrics,
        "pairs": [[r.a, r.b] for r in results],
        "tested": size,
        "alpha": alpha,
        "method": "bonferroni" if not sequential else "group-sequential+bonferroni",
        "how": how,
        **({"sequential": sequential} if sequential else {}),
    }


def wtl(outcome: Outcome | None) -> str:
    """A suite's win / tie / loss word for a workload's outcome of ``a`` against ``b``."""
    return {"better": "win", "worse": "loss", "equivalent": "tie"}.get(outcome or "", outcome or "untested")


def with_rule(rule: MetricRule, **changes: Any) -> MetricRule:
    """A copy of ``rule`` with some fields changed (a recipe's margin, the data's resolution)."""
    return dataclasses.replace(rule, **changes)
