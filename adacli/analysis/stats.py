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
  :mod:`adacli.analysis.outcomes`, whose simultaneous intervals agree with the adjusted test;
  :func:`holm` kept for p-value-only uses).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95
WILCOXON_MIN_N = 6
CONSTANT_RTOL = 1e-9  # legacy test: differences this close (relative) count as constant
TestName = Literal["paired-t", "sign", "identical", "none"]
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


_finite = finite


def pairs_of(a: Sequence[float | None], b: Sequence[float | None]) -> list[tuple[float, float]]:
    """The seeds where both values are finite, as (a, b) pairs (position = seed)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths (one value per seed), got {len(a)} and {len(b)}")
    return [(float(x), float(y)) for x, y in zip(a, b, strict=True) if _finite(x) and _finite(y)]


_pairs = pairs_of


def sd(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1) of at least two values."""
    n = len(values)
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def diff_sd(a: Sequence[float | None], b: Sequence[float | None]) -> float | None:
    """Standard deviation of the paired differences ``a - b`` (None with fewer than two pairs)."""
    diffs = [x - y for x, y in _pairs(a, b)]
    return sd(diffs) if len(diffs) >= 2 else None


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
    if n < 2 or not _finite(mean) or not _finite(sd):
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
    vals = [float(v) for v in values if _finite(v)]
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


# --- the legacy fixed-sample test (Student t with a sign-test fallback), used by the verdict until it ----
# --- switches to adacli.outcomes; kept so that every caller keeps working meanwhile -----------------------


def mean_ci(values: Sequence[float | None], confidence: float = CONFIDENCE) -> list[float] | None:
    """Student-t confidence interval of the mean of the finite values: ``mean ± t(n-1) * sd / sqrt(n)``.

    None for fewer than two values (no spread to estimate). Assumes the values are independent draws
    (seeds) from a roughly normal distribution; for a handful of seeds the t quantile (4.30 for n = 3,
    2.78 for n = 5) makes the interval honestly wide.
    """
    vals = [float(v) for v in values if _finite(v)]
    n = len(vals)
    if n < 2:
        return None
    return ci_from_stats(math.fsum(vals) / n, sd(vals), n, confidence)


def ci_from_stats(
    mean: float | None, sd: float | None, n: int, confidence: float = CONFIDENCE
) -> list[float] | None:
    """The same interval from a stored mean, sample standard deviation (ddof=1) and count.

    Lets a saved summary (mean, std, n) gain its interval without the raw values, e.g. when an old run
    folder is re-rendered. None when ``n < 2`` or a figure is missing.
    """
    if n < 2 or not _finite(mean) or not _finite(sd):
        return None
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    return [mean - half, mean + half]


def paired_test(
    a: Sequence[float | None],
    b: Sequence[float | None],
    *,
    metric: str = "",
    labels: tuple[str, str] = ("a", "b"),
    higher_is_better: bool = True,
    censored: int = 0,
) -> PairedResult:
    """Paired comparison of ``a`` and ``b`` (same position = same seed): mean of ``a - b``, its 95% CI,
    the two-sided paired t-test p-value and, from ``WILCOXON_MIN_N`` pairs up, the Wilcoxon signed-rank
    p-value as a cross-check.

    Parameters
    ----------
    a, b : sequences of float or None, equal length
        One value per seed. A position where either value is missing or not finite is dropped.
    metric, labels : str, (str, str)
        Recorded in the result (``labels`` become its ``a`` and ``b``).
    higher_is_better : bool
        Direction of the metric, used only to say which side is ``better`` when significant.
    censored : int
        How many of the paired seeds carry a censored value (e.g. "never reached the target", counted
        as budget + 1 by the caller); recorded, not used by the test.

    Returns
    -------
    PairedResult
        With ``p_adjusted = p_value`` (a single test); correct a family with :func:`holm_adjust`.

    Notes
    -----
    The paired t-test (``scipy.stats.ttest_rel``, its ``confidence_interval``) assumes independent seeds
    and normally distributed differences; the Wilcoxon test (``scipy.stats.wilcoxon``, zero differences
    discarded; exact without ties, else the normal approximation with tie correction) assumes
    differences symmetric about their median. All-zero and constant differences are handled as
    described in the module docstring.
    """
    return paired_tests(
        [(a, b)], metric=metric, labels=[labels], higher_is_better=higher_is_better, censored=[censored]
    )[0]


def paired_tests(
    pairs: Sequence[tuple[Sequence[float | None], Sequence[float | None]]],
    *,
    metric: str = "",
    labels: Sequence[tuple[str, str]] | None = None,
    higher_is_better: bool = True,
    censored: Sequence[int] | None = None,
) -> list[PairedResult]:
    """:func:`paired_test` for many pairs at once, with identical results.

    Why a batch form: scipy's tests cost about half a millisecond per call whatever the size, so the 45
    pairs x several metrics of a ten-optimizer comparison would take a noticeable fraction of a second
    one by one; pairs with the same number of paired seeds are stacked and tested in one vectorised
    ``ttest_rel`` / ``wilcoxon`` call along ``axis=1``.
    """
    labels = list(labels) if labels is not None else [("a", "b")] * len(pairs)
    censored = list(censored) if censored is not None else [0] * len(pairs)
    compact = [_pairs(a, b) for a, b in pairs]
    by_n: dict[int, list[int]] = {}
    for i, p in enumerate(compact):
        by_n.setdefault(len(p), []).append(i)
    out: list[PairedResult | None] = [None] * len(pairs)
    for n, idx in by_n.items():
        for i, (mean, ci, p, test, wp) in zip(idx, _test_group(n, [compact[i] for i in idx]), strict=True):
            result = PairedResult(
                metric=metric, a=labels[i][0], b=labels[i][1], n=n, mean_diff=mean, ci95=ci, p_value=p,
                p_adjusted=p, significant=False, test=test, wilcoxon_p=wp, censored=censored[i],
            )  # fmt: skip
            out[i] = _judge(result, higher_is_better)
    return [r for r in out if r is not None]


_Row = tuple[float | None, list[float] | None, float | None, TestName, float | None]


def _test_group(n: int, groups: Sequence[list[tuple[float, float]]]) -> list[_Row]:
    """(mean, ci95, p, test, wilcoxon_p) for pairs that all have ``n`` paired seeds, tested at once."""
    from scipy import stats as st  # imported on use: `adacli gate` and `report` stay fast
    if n < 2:
        return [(g[0][0] - g[0][1] if g else None, None, None, "none", None) for g in groups]
    x = np.array([[u for u, _ in g] for g in groups])
    y = np.array([[v for _, v in g] for g in groups])
    d = x - y
    identical = (d == 0.0).all(axis=1)
    spread = d.max(axis=1) - d.min(axis=1)
    constant = (spread <= CONSTANT_RTOL * np.maximum(1.0, np.abs(d).max(axis=1))) & ~identical
    regular = ~(identical | constant)
    sign_p = float(st.binomtest(n, n, 0.5).pvalue)  # every seed agrees in sign: 2 / 2**n
    rows: list[_Row] = []
    for i in range(len(groups)):
        if identical[i]:
            rows.append((0.0, [0.0, 0.0], 1.0, "identical", 1.0 if n >= WILCOXON_MIN_N else None))
        else:  # zero variance, non-zero mean: the t-test has no spread to work with; the sign test
            mean = math.fsum(d[i]) / n
            rows.append((mean, [mean, mean], sign_p, "sign", None))
    if regular.any():
        with warnings.catch_warnings():  # spreads near the rounding level
            warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
            res = st.ttest_rel(x[regular], y[regular], axis=1)
            low, high = res.confidence_interval(CONFIDENCE)
        for j, i in enumerate(np.flatnonzero(regular)):
            mean = math.fsum(d[i]) / n
            rows[i] = (mean, [float(low[j]), float(high[j])], float(res.pvalue[j]), "paired-t", None)
    if n >= WILCOXON_MIN_N:
        for i, p in _wilcoxon(d, ~identical).items():
            rows[i] = (*rows[i][:4], p)
    return rows


def _wilcoxon(d: np.ndarray, rows: np.ndarray) -> dict[int, float]:
    """Two-sided Wilcoxon p-values of the selected rows of ``d``: exact where the absolute differences
    have no ties or zeros and n <= 50, else the normal approximation with tie correction.

    The method is chosen here rather than by scipy's ``auto`` because for small samples with ties
    ``auto`` runs a permutation test, which took seconds per call on censored times (many seeds tied at
    budget + 1); the normal approximation is what the literature uses for ties and costs microseconds.
    """
    from scipy import stats as st  # imported on use: `adacli gate` and `report` stay fast
    s = np.sort(np.abs(d), axis=1)
    tied = (s[:, 1:] == s[:, :-1]).any(axis=1) | (s[:, 0] == 0.0) | (d.shape[1] > 50)
    out: dict[int, float] = {}
    for mask, method in ((rows & ~tied, "exact"), (rows & tied, "asymptotic")):
        if mask.any():
            pvalues = st.wilcoxon(d[mask], axis=1, method=method).pvalue
            out.update(zip(np.flatnonzero(mask).tolist(), map(float, pvalues), strict=True))
    return out


def _judge(result: PairedResult, higher_is_better: bool) -> PairedResult:
    """Set ``significant`` and ``better`` from ``p_adjusted`` and the sign of the mean difference."""
    p = result.p_adjusted
    result.significant = p is not None and p < ALPHA and bool(result.mean_diff)
    result.better = None
    if result.significant:
        a_higher = (result.mean_diff or 0.0) > 0.0
        result.better = "a" if a_higher == higher_is_better else "b"
    return result


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the input order (None entries stay None and do not count).

    With ``m`` p-values sorted ascending, ``p_adj(i) = max_{j <= i} min(1, (m - j + 1) * p(j))``;
    rejecting ``p_adj < alpha`` controls the family-wise error rate at ``alpha`` under any dependence
    between the tests (Holm 1979), and is uniformly more powerful than Bonferroni. scipy has no Holm
    adjustment (only Benjamini-Hochberg, which controls a different error rate), hence these few lines.
    """
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(present)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * float(p)))
        out[i] = running
    return out


def holm_adjust(results: Sequence[PairedResult], higher_is_better: bool = True) -> list[PairedResult]:
    """Holm-correct one family (the pairs of one metric) in place: sets ``p_adjusted``, ``significant``
    and ``better`` of each result. Returns the same list for chaining."""
    for r, p in zip(results, holm([r.p_value for r in results]), strict=True):
        r.p_adjusted = p
        _judge(r, higher_is_better)
    return list(results)


def sign_test_seeds(alpha: float = ALPHA) -> int:
    """The fewest seeds for which the exact two-sided sign test can be significant at ``alpha``: the
    smallest ``n`` with ``2 / 2**n < alpha`` (every seed agreeing in sign), 6 at 0.05."""
    return max(1, math.floor(math.log2(2.0 / alpha)) + 1)


def paired_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with ``n`` seeds for a standardized effect
    ``effect = mean_diff / sd_diff`` (Cohen's d of the differences).

    Under the alternative the t statistic follows a noncentral t distribution (``scipy.stats.nct``) with
    ``n - 1`` degrees of freedom and noncentrality ``effect * sqrt(n)``; power is the probability that it
    falls beyond either critical value ``±t(1 - alpha/2, n - 1)``.
    """
    from scipy import stats as st  # imported on use: `adacli gate` and `report` stay fast
    if n < 2:
        return 0.0
    df = n - 1
    crit = float(st.t.ppf(1.0 - alpha / 2.0, df))
    nc = abs(effect) * math.sqrt(n)
    return float(st.nct.sf(crit, df, nc) + st.nct.cdf(-crit, df, nc))


def seeds_needed(
    mean_diff: float, sd_diff: float, power: float = 0.8, alpha: float = ALPHA, max_n: int = 100_000
) -> int | None:
    """The smallest number of seeds at which the paired t-test detects ``mean_diff`` with ``power``,
    assuming the differences keep the observed standard deviation ``sd_diff``.

    A planning figure: the observed difference and spread are themselves estimates from few seeds. 2 for
    a zero-spread, non-zero difference; None when there is no difference to detect (``mean_diff == 0``)
    or it would take more than ``max_n`` seeds. Power grows with ``n``, so a doubling search followed
    by bisection finds the answer in a few dozen evaluations of the noncentral t.
    """
    if not _finite(mean_diff) or not _finite(sd_diff) or mean_diff == 0.0:
        return None
    if sd_diff == 0.0:
        return 2
    effect = mean_diff / sd_diff
    lo, hi = 1, 2  # power(lo) < target <= power(hi) once the loop ends
    while paired_power(effect, hi, alpha) < power:
        lo, hi = hi, hi * 2
        if lo > max_n:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if paired_power(effect, mid, alpha) >= power else (mid, hi)
    return hi if hi <= max_n else None
