"""Paired statistics on plain lists of numbers: one continuous paired test, intervals that respect a
metric's range, an exact Wilcoxon cross-check, multiplicity, power.

adacli gives every optimizer of a seed the same initial weights and the same batch stream, so two
optimizers' results are **paired by seed**: the difference ``a[i] - b[i]`` of seed ``i`` removes the
seed's own luck (a good initialisation helps both), and a paired test needs far fewer seeds than an
unpaired one. This module holds the numbers-only part of that analysis; it imports nothing from adacli,
so any stage (a run's verdict, a suite's win/tie/loss matrix, the gate) can reuse it on plain lists.
Every distribution comes from :mod:`scipy.stats`.

**The test: a paired t-test whose variance is floored by the metric's resolution.** A measured value is
only known to its resolution ``delta`` (one test image = ``100 / n_test`` accuracy points, one training
step): a difference of two such values carries a rounding error of variance ``delta**2 / 6`` (two
independent rounding errors, uniform on ``±delta/2``: Sheppard's ``delta**2 / 12`` each), which the sample
variance of a handful of discrete values can miss entirely (three seeds that all say "5 images better"
have a sample variance of exactly 0 and a t statistic of infinity). The test therefore uses

    se = sqrt((s**2 + delta**2 / 6) / n),   t = mean / se,   df = n - 1,

and the interval ``mean ± t_{1-alpha/2, n-1} * se`` from the same numbers, so an interval excludes 0 exactly
when the p-value is below its level: they can never disagree. The floor is continuous in the data (no switch
between tests): nudging one seed of a zero-spread sample by one resolution unit always *lowers* ``|t|``
(proved in docs/statistics.md and checked exhaustively in tests/analysis/test_stats.py), so a tie never
becomes a win that way. It only adds variance, so it can only make the test more conservative; with a
realistic spread (``s`` several ``delta``) it changes nothing visible. ``delta = 0`` (a continuous metric)
gives the plain paired t-test.

Assumptions, stated once because every function here relies on them:

* **Pairing.** ``a[i]`` and ``b[i]`` are measured on the same seed. Position ``i`` is the pairing; a seed
  where either value is missing (``None``, NaN, infinite) is dropped from that pair, so ``n`` is the
  number of seeds with both values.
* **Independence.** Seeds are independent replications, so the paired differences are independent.
* **Normality of the differences** (the t-test and its interval), robust to moderate departures. The exact
  Wilcoxon signed-rank test (:func:`wilcoxon_exact`, the permutation distribution with ties) is reported
  as a cross-check from ``WILCOXON_MIN_N = 6`` seeds up.
* **Two-sided tests at** ``ALPHA = 0.05``; a family of comparisons is corrected together (Bonferroni in
  :mod:`adacli.analysis.outcomes`, whose simultaneous intervals agree with the adjusted test).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95
WILCOXON_MIN_N = 6
TestName = Literal["paired-t", "none"]
Outcome = Literal["better", "worse", "equivalent", "undecided", "untested"]


@dataclass
class PairedResult:
    """One paired comparison of ``a`` against ``b`` (the ``comparisons`` records of ``results.json``).

    ``mean_diff`` is ``mean(a - b)`` over the paired seeds. ``estimate`` and ``ci95`` are on the
    comparison's ``scale``: the difference ``a - b`` or, for times and losses, the ratio ``a / b``
    (geometric mean of the per-seed ratios). ``ci95`` is simultaneous over the comparison's family: each
    interval has level ``ci_level = 1 - 0.05 / family_size``, so all intervals of a family hold together
    with 95% confidence; ``p_adjusted`` is the matching Bonferroni p-value and ``significant`` means
    ``ci95`` excludes "no difference". ``outcome`` is ``better`` / ``worse`` (of ``a`` against ``b``),
    ``equivalent`` (``ci95`` inside ``± margin``), ``undecided`` (with ``seeds_to_decide``) or ``untested``
    (fewer than two paired seeds). ``better`` names the side that is significantly better (``"a"`` /
    ``"b"``), or None. ``censored`` counts the paired seeds where either value was censored.
    """

    metric: str
    a: str
    b: str
    n: int
    mean_diff: float | None
    ci95: list[float] | None
    p_value: float | None
    p_adjusted: float | None
    significant: bool
    test: TestName
    wilcoxon_p: float | None = None
    censored: int = 0
    better: Literal["a", "b"] | None = None
    outcome: Outcome | None = None
    scale: Literal["difference", "ratio"] = "difference"
    estimate: float | None = None
    margin: float | None = None
    ci_level: float | None = None
    family: str | None = None
    family_size: int | None = None
    seeds_to_decide: int | None = None
    identical: bool = False
    ci_clipped: list[bool] | None = None  # [low, high] ends of ci95 cut at the range of a difference

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairedResult:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# --- helpers ----------------------------------------------------------------------------------------------


def finite(x: float | None) -> bool:
    """A value a test can use: not None, not NaN, not infinite."""
    return x is not None and math.isfinite(x)




def sd(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1) of at least two values."""
    n = len(values)
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


# --- the floored paired t-test ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def t_quantile(q: float, df: int) -> float:
    """``scipy.stats.t.ppf``, cached: a run asks for the same few (q, df) for every metric and label."""
    from scipy import stats as st  # imported on use: `adacli gate` and `report` stay fast

    return float(st.t.ppf(q, df))


@dataclass(frozen=True)
class TTest:
    """Floored paired t-tests of several rows of differences with the same ``n`` (numpy arrays, one entry
    per row). ``se`` is the floored standard error, ``p`` the two-sided p-value."""

    n: int
    mean: np.ndarray
    sd: np.ndarray
    se: np.ndarray
    p: np.ndarray

    def half_width(self, alpha: float | np.ndarray) -> np.ndarray:
        """Half-width of the two-sided ``1 - alpha`` interval: ``t_{1-alpha/2, n-1} * se`` (per row)."""
        from scipy import stats as st

        return np.asarray(st.t.ppf(1.0 - np.asarray(alpha) / 2.0, self.n - 1)) * self.se


def floored_t(d: np.ndarray, floor_var: float | np.ndarray = 0.0) -> TTest:
    """The paired t-test of each row of ``d`` (rows x n, finite, n >= 2) with the variance floor.

    ``floor_var`` is the rounding variance of one difference (``delta**2 / 6`` on the difference scale;
    see the module docstring), a scalar or one value per row. With no spread to estimate at all
    (``se == 0``: a continuous metric with constant differences) the p-value is 1 for a zero mean and 0
    otherwise, the limit of the test.
    """
    from scipy import stats as st

    d = np.asarray(d, dtype=float)
    n = d.shape[-1]
    mean = d.mean(axis=-1)
    sd = d.std(axis=-1, ddof=1)
    se = np.sqrt((sd**2 + np.asarray(floor_var, dtype=float)) / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, np.abs(mean) / np.where(se > 0, se, 1.0), np.where(mean == 0, 0.0, np.inf))
    p = np.minimum(1.0, 2.0 * st.t.sf(t, n - 1))
    return TTest(n=n, mean=mean, sd=sd, se=np.broadcast_to(se, mean.shape).copy(), p=p)


def difference_floor(resolution: float) -> float:
    """Rounding variance of the difference of two values known to ``resolution``: ``delta**2 / 6``."""
    return float(resolution) ** 2 / 6.0


def log_ratio_floor(a: np.ndarray, b: np.ndarray, resolution: float) -> np.ndarray:
    """Rounding variance of ``log(a) - log(b)`` per row (delta method: ``delta**2/12 * (1/a**2 + 1/b**2)``,
    averaged over the row's seeds), the floor of a comparison on the ratio scale."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return (float(resolution) ** 2 / 12.0) * (1.0 / a**2 + 1.0 / b**2).mean(axis=-1)


# --- intervals of a mean that respect the metric's range --------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A confidence interval ``[lo, hi]``; ``clipped`` says which ends were cut at the metric's range."""

    lo: float
    hi: float
    clipped: tuple[bool, bool] = (False, False)

    def to_list(self) -> list[float]:
        return [self.lo + 0.0, self.hi + 0.0]  # + 0.0: never a negative zero in JSON


def clip_interval(
    lo: float, hi: float, lower: float | None = None, upper: float | None = None
) -> Interval:
    """Cut ``[lo, hi]`` to the metric's range ``[lower, upper]`` and say so.

    Clipping never lowers coverage (the true mean lies in the range, so the part cut away never held
    it); the mark tells the reader the normal approximation reached past a bound (few seeds near 100 %).
    """
    cut_lo = lower is not None and lo < lower
    cut_hi = upper is not None and hi > upper
    lo2 = float(lower) if cut_lo else lo
    hi2 = float(upper) if cut_hi else hi
    return Interval(min(lo2, hi2), max(lo2, hi2), (cut_lo, cut_hi))


def interval_from_stats(
    mean: float | None,
    sd: float | None,
    n: int,
    *,
    confidence: float = CONFIDENCE,
    resolution: float = 0.0,
    lower: float | None = None,
    upper: float | None = None,
) -> Interval | None:
    """Student-t interval of a mean from its mean, sample sd (ddof=1) and count, floored and clipped.

    The variance floor of one value is ``delta**2 / 12`` (its own rounding error, see the module
    docstring), so three seeds at exactly 100 % get an interval below 100, not the point [100, 100].
    None when ``n < 2`` or a figure is missing.
    """
    if n < 2 or not finite(mean) or not finite(sd):
        return None
    se = math.sqrt((float(sd) ** 2 + float(resolution) ** 2 / 12.0) / n)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * se
    return clip_interval(float(mean) - half, float(mean) + half, lower, upper)


def mean_interval(
    values: Sequence[float | None],
    *,
    confidence: float = CONFIDENCE,
    resolution: float = 0.0,
    lower: float | None = None,
    upper: float | None = None,
) -> Interval | None:
    """:func:`interval_from_stats` of the finite values (None for fewer than two)."""
    vals = [float(v) for v in values if finite(v)]
    if len(vals) < 2:
        return None
    m = math.fsum(vals) / len(vals)
    return interval_from_stats(
        m, sd(vals), len(vals), confidence=confidence, resolution=resolution, lower=lower, upper=upper
    )


# --- the exact Wilcoxon signed-rank test ------------------------------------------------------------------


def wilcoxon_exact(d: Sequence[float]) -> float | None:
    """Two-sided exact p-value of the Wilcoxon signed-rank test, ties and zeros included.

    Zero differences are dropped (Wilcoxon's rule, scipy's default ``zero_method="wilcox"``); tied
    absolute differences share their mid-rank. Under the null each remaining difference is positive or
    negative with probability 1/2 independently, so the distribution of ``W+`` (the sum of the positive
    ranks) is that of a sum of independent ``{0, r_i}`` terms: built exactly by convolution on doubled
    ranks (integers), in microseconds for any n. ``p = min(1, 2 * min(P(W+ <= w), P(W+ >= w)))``. This is
    the permutation distribution scipy enumerates with ``method=PermutationMethod()``; scipy's
    ``method="exact"`` is exact only without ties. None when every difference is zero.
    """
    from scipy.stats import rankdata

    x = np.asarray([v for v in d if v != 0.0], dtype=float)
    if x.size == 0:
        return None
    ranks2 = np.rint(2.0 * rankdata(np.abs(x))).astype(int)  # mid-ranks are multiples of 1/2
    dist = np.zeros(int(ranks2.sum()) + 1)
    dist[0] = 1.0
    for r in ranks2:  # each rank (>= 2 once doubled) enters W+ with probability 1/2
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[:-r]
        dist = 0.5 * (dist + shifted)
    w = int(ranks2[x > 0].sum())
    cdf = np.cumsum(dist)
    p_low, p_high = cdf[w], 1.0 - (cdf[w - 1] if w > 0 else 0.0)
    return float(min(1.0, 2.0 * min(p_low, p_high)))


# --- multiplicity -----------------------------------------------------------------------------------------


def bonferroni(pvalues: Sequence[float | None]) -> list[float | None]:
    """Bonferroni-adjusted p-values ``min(1, m * p)`` (None entries stay None and do not count).

    The adjustment that has simultaneous intervals agreeing with it: ``p * m < alpha`` exactly when the
    ``1 - alpha / m`` interval excludes the null, so a family's intervals and its verdicts never disagree.
    """
    m = sum(p is not None for p in pvalues)
    return [None if p is None else min(1.0, m * float(p)) for p in pvalues]


# --- power and seeds to decide ----------------------------------------------------------------------------


def decision_power(mean: float, sd: float, margin: float, n: int, alpha: float = ALPHA) -> float:
    """The chance that ``n`` seeds decide a comparison whose true mean difference is ``mean`` and whose
    differences have standard deviation ``sd`` (floor included), with two-sided ``1 - alpha`` intervals.

    Decided = the interval excludes 0 (better/worse) or lies inside ``± margin`` (equivalent). The
    first is the two-sided t-test's power (noncentral t with noncentrality ``mean * sqrt(n) / sd``); the
    second the usual lower bound of the equivalence (TOST) power, ``1 - P(lower test fails) - P(upper
    fails)``, each side at ``alpha / 2``. Returns the larger of the two, a slight underestimate.
    """
    from scipy import stats as st

    if n < 2:
        return 0.0
    if sd <= 0.0:
        return 1.0 if (mean != 0.0 or margin > 0.0) else 0.0
    df, se = n - 1, sd / math.sqrt(n)
    crit = t_quantile(1.0 - alpha / 2.0, df)
    nc = mean / se
    superiority = float(st.nct.sf(crit, df, abs(nc)) + st.nct.cdf(-crit, df, abs(nc)))
    equivalence = 0.0
    if margin > 0.0:
        low_fails = st.nct.cdf(crit, df, (mean + margin) / se)
        high_fails = st.nct.sf(-crit, df, (mean - margin) / se)
        equivalence = max(0.0, 1.0 - float(low_fails) - float(high_fails))
    return max(superiority, equivalence)


def seeds_to_decide(
    mean: float | None,
    sd: float | None,
    margin: float,
    alpha: float = ALPHA,
    power: float = 0.8,
    max_n: int = 10_000,
) -> int | None:
    """The fewest seeds at which an undecided comparison would be decided with ``power`` (80 %), if the
    true mean difference and the spread were the observed ones (:func:`decision_power`, at the family's
    per-comparison level ``alpha``). A planning figure: both are estimates from few seeds. None when even
    ``max_n`` seeds would not do (a difference of about the margin, which no number of seeds resolves).
    Power grows with ``n`` except for small wiggles of the noncentral t, so a doubling search then a
    bisection finds it in a few dozen evaluations.
    """
    if mean is None or sd is None or not math.isfinite(mean) or not math.isfinite(sd):
        return None
    if decision_power(mean, sd, margin, 2, alpha) >= power:
        return 2
    lo, hi = 2, 4
    while decision_power(mean, sd, margin, hi, alpha) < power:
        lo, hi = hi, hi * 2
        if lo > max_n:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if decision_power(mean, sd, margin, mid, alpha) >= power else (mid, hi)
    return hi if hi <= max_n else None
