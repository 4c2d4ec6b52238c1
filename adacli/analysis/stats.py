"""Paired statistics on plain lists of numbers: confidence intervals, paired tests, Holm, power.

adacli gives every optimizer of a seed the same initial weights and the same batch stream, so two
optimizers' results are **paired by seed**: the difference ``a[i] - b[i]`` of seed ``i`` removes the
seed's own luck (a good initialisation helps both), and a paired test needs far fewer seeds than an
unpaired one. This module holds the numbers-only part of that analysis; it imports nothing from adacli,
so any stage (a run's verdict, a suite's win/tie/loss matrix, the gate) can reuse it on plain lists.
Every distribution comes from :mod:`scipy.stats`.

Assumptions, stated once because every function here relies on them:

* **Pairing.** ``a[i]`` and ``b[i]`` are measured on the same seed. Position ``i`` is the pairing; a seed
  where either value is missing (``None``, NaN, infinite: a failed or interrupted trial, or a diverged
  trial for a metric it has no value for) is dropped from that pair, so ``n`` is the number of seeds
  with both values.
* **Independence.** Seeds are independent replications (different initial weights, data order and
  augmentation), so the paired differences are independent.
* **Normality of the differences** (paired t-test and its confidence interval). The test is robust to
  moderate departures, but with few seeds and skewed differences it can be off; the Wilcoxon signed-rank
  test, which assumes only a distribution of differences symmetric about its median, is reported as a
  cross-check from ``WILCOXON_MIN_N = 6`` seeds up (below that its smallest possible two-sided p-value,
  ``2 / 2**n``, is above 0.05 with 5 seeds, so it could never disagree usefully).
* **Two-sided tests at** ``ALPHA = 0.05``; several pairs of one metric are corrected with Holm's
  step-down method (:func:`holm`), which controls the family-wise error rate without assuming the
  tests are independent.

Degenerate cases, handled deliberately rather than left to produce NaN:

* every difference is exactly zero (two labels for the same optimizer, which are bit-identical per
  seed): ``test = "identical"``, mean difference 0, CI ``[0, 0]``, ``p = 1``; never significant;
* the differences are constant but not zero (zero variance, also when equal but for floating-point
  rounding; common with accuracies on a small test set, where "3 images better on every seed" happens):
  the t statistic is infinite and the t-test has nothing to say (it assumes a spread to estimate), so
  the exact **sign test** takes over (``test = "sign"``, ``scipy.stats.binomtest``): all ``n`` seeds
  agree in sign, two-sided ``p = 2 / 2**n`` (0.25 with 3 seeds, 0.0625 with 5, 0.031 with 6). It
  assumes nothing about the distribution, so a consistent difference needs 6 seeds to count; the CI
  is the single point ``[d, d]``;
* fewer than two paired seeds: no test is possible, ``test = "none"``, ``p_value = None``, never
  significant (one seed gives values, not a verdict).
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
CONSTANT_RTOL = 1e-9  # differences this close (relative) count as constant: a spread of rounding error
TestName = Literal["paired-t", "sign", "identical", "none"]


@dataclass
class PairedResult:
    """One paired comparison of ``a`` against ``b`` (the fields are the ``comparisons`` records of
    ``results.json``).

    ``mean_diff`` is ``mean(a - b)`` over the paired seeds; ``ci95`` its 95% Student-t confidence
    interval. ``p_adjusted`` equals ``p_value`` until :func:`holm_adjust` corrects a family of results;
    ``significant`` is ``p_adjusted < ALPHA``. ``better`` names the side that is significantly better
    (``"a"`` or ``"b"``, following ``higher_is_better``), or None. ``censored`` counts the paired seeds
    where either value was censored (given by the caller, see :func:`paired_test`).
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairedResult:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


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
    half = _t_quantile(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    return [mean - half, mean + half]


@functools.lru_cache(maxsize=1024)
def _t_quantile(q: float, df: int) -> float:
    """``scipy.stats.t.ppf``, cached: a run asks for the same few (q, df) for every metric and label."""
    from scipy import stats as st  # imported on use: `adacli gate` and `report` stay fast
    return float(st.t.ppf(q, df))


def _pairs(a: Sequence[float | None], b: Sequence[float | None]) -> list[tuple[float, float]]:
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths (one value per seed), got {len(a)} and {len(b)}")
    return [(float(x), float(y)) for x, y in zip(a, b, strict=True) if _finite(x) and _finite(y)]


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


def sd(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1) of at least two values."""
    n = len(values)
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def diff_sd(a: Sequence[float | None], b: Sequence[float | None]) -> float | None:
    """Standard deviation of the paired differences ``a - b`` (None with fewer than two pairs)."""
    diffs = [x - y for x, y in _pairs(a, b)]
    return sd(diffs) if len(diffs) >= 2 else None
