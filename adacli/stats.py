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
* the differences are constant but not zero (zero variance, e.g. an optimizer that always scores the
  same fixed amount more): the t statistic is infinite and the two-sided p-value is its limit, 0, so the
  difference is significant and the CI is the single point ``[d, d]``. This is the t-test taken at its
  word: with no spread at all, no amount of seed noise explains a consistent difference;
* fewer than two paired seeds: no test is possible, ``test = "none"``, ``p_value = None``, never
  significant (one seed gives values, not a verdict).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from scipy import stats as st

ALPHA = 0.05
CONFIDENCE = 0.95
WILCOXON_MIN_N = 6
TestName = Literal["paired-t", "identical", "none"]


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
    half = float(st.t.ppf(0.5 + confidence / 2.0, n - 1)) * sd / math.sqrt(n)
    return [mean - half, mean + half]


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
    The paired t-test (``scipy.stats.ttest_rel``) assumes independent seeds and normally distributed
    differences; the Wilcoxon test (``scipy.stats.wilcoxon``, zeros discarded, exact or normal
    approximation chosen by scipy) assumes differences symmetric about their median. All-zero and
    constant differences are handled as described in the module docstring.
    """
    pairs = _pairs(a, b)
    n = len(pairs)
    diffs = [x - y for x, y in pairs]
    common = dict(metric=metric, a=labels[0], b=labels[1], n=n, censored=censored)
    if n < 2:
        mean = diffs[0] if diffs else None
        return PairedResult(**common, mean_diff=mean, ci95=None, p_value=None, p_adjusted=None,
                            significant=False, test="none")  # fmt: skip
    if all(d == 0.0 for d in diffs):
        return PairedResult(**common, mean_diff=0.0, ci95=[0.0, 0.0], p_value=1.0, p_adjusted=1.0,
                            significant=False, test="identical",
                            wilcoxon_p=1.0 if n >= WILCOXON_MIN_N else None)  # fmt: skip
    mean = math.fsum(diffs) / n
    if all(d == diffs[0] for d in diffs):
        p_value, ci = 0.0, [mean, mean]  # zero variance, non-zero mean: the limit of the t-test
    else:
        res = st.ttest_rel([x for x, _ in pairs], [y for _, y in pairs])
        low, high = res.confidence_interval(CONFIDENCE)
        p_value, ci = float(res.pvalue), [float(low), float(high)]
    wilcoxon_p = float(st.wilcoxon(diffs).pvalue) if n >= WILCOXON_MIN_N else None
    result = PairedResult(**common, mean_diff=mean, ci95=ci, p_value=p_value, p_adjusted=p_value,
                          significant=False, test="paired-t", wilcoxon_p=wilcoxon_p)  # fmt: skip
    return _judge(result, higher_is_better)


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


def paired_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with ``n`` seeds for a standardized effect
    ``effect = mean_diff / sd_diff`` (Cohen's d of the differences).

    Under the alternative the t statistic follows a noncentral t distribution (``scipy.stats.nct``) with
    ``n - 1`` degrees of freedom and noncentrality ``effect * sqrt(n)``; power is the probability that it
    falls beyond either critical value ``±t(1 - alpha/2, n - 1)``.
    """
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
