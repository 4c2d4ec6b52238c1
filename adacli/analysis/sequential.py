"""Seeds until decided: a group-sequential design with alpha spending for paired comparisons.

Adding seeds until a comparison "becomes significant" and testing each time at 5 % inflates the false
positive rate far above 5 % (Armitage, McPherson & Rowe 1969). A group-sequential design fixes that: the
comparison is looked at after each round of seeds (``n_min``, ``n_min + step``, ..., ``n_max``), and each
look gets only part of the error rate, by an **alpha-spending function** ``alpha(t)`` of the information
fraction ``t = n / n_max`` (Lan & DeMets 1983): the chance of a false decision up to the look at ``t`` is
at most ``alpha(t)``, and ``alpha(1) = alpha``. Because the spending is a function of ``t``, rounds need
not be equal and a round that loses a seed (a failed trial) still gets a valid boundary.

* Unknown variance, few seeds: each look applies the floored paired t-test of :mod:`adacli.analysis.stats` at
  a nominal level ``alpha'_k``, i.e. the **repeated confidence interval** ``mean ± t_{1-alpha'_k/2, n_k-1} *
  se`` (Jennison & Turnbull 2000, ch. 9), and every outcome of :func:`adacli.analysis.outcomes.outcome_codes`
  is read off it: better/worse when it excludes 0, equivalent when it lies inside ± the margin. The levels
  ``alpha'_k`` are chosen so that the chance of a false rejection *first* at look ``k`` is exactly
  ``alpha(t_k) - alpha(t_{k-1})`` for the t statistics themselves (:func:`t_levels`): their joint null
  distribution does not depend on the unknown spread, so it is computed once per design from 200,000 simulated
  normal paths. (The textbook shortcut, normal-theory boundaries (:func:`boundaries`, recursive numerical
  integration of Armitage, McPherson & Rowe; Jennison & Turnbull ch. 19) turned into nominal t levels, gives
  0.055-0.059 instead of 0.05 with 3-20 seeds; tests/analysis/test_sequential.py shows both.) Stopping for
  equivalence only removes chances to reject, so it keeps the error rate of the better/worse decisions; the
  repeated intervals cover the true difference at every look with 95 % confidence, which bounds false
  equivalence too. The simulation in tests/analysis/test_sequential.py checks both rates over 20,000 runs of
  the whole procedure.
* Several pairs: each pair gets ``alpha / m`` (Bonferroni over the family), so the family-wise rate stays
  at ``alpha`` whichever pair stops the run.

Spending functions (two-sided, ``z = Phi^-1(1 - alpha/2)``):

* ``"pocock"`` (default): ``alpha(t) = alpha * ln(1 + (e - 1) t)`` (Lan & DeMets 1983, Pocock-type). It
  spends early, so a clear difference stops at the first rounds (simulated in docs/statistics.md: a
  1-point difference at 0.3 points of noise is decided after 6.1 seeds on average, 8.7 with O'Brien-Fleming)
  at the price of some power at ``n_max`` (0.71 against 0.82 for 1 point at 1 point of noise).
* ``"obrien-fleming"``: ``alpha(t) = 2 - 2 Phi(z / sqrt(t))`` (Lan & DeMets 1983, O'Brien-Fleming-type):
  almost nothing early, nearly the full ``alpha`` at ``n_max``.

Pure numbers: numpy/scipy and :mod:`adacli.analysis.stats` / :mod:`adacli.analysis.outcomes` only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from adacli.analysis import outcomes, stats
from adacli.analysis.stats import ALPHA

Spending = Literal["pocock", "obrien-fleming"]
SPENDING: tuple[str, ...] = ("pocock", "obrien-fleming")
_GRID = 801  # points of the numerical integration per look (odd: Simpson's rule)
_C_MAX = 12.0  # a boundary beyond 12 standard deviations is "never": P < 1e-32


def spent(t: float, alpha: float, spending: str) -> float:
    """Cumulative two-sided error rate spent up to information fraction ``t`` (0..1)."""
    from scipy.stats import norm

    t = min(max(t, 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if spending == "pocock":
        return alpha * math.log1p((math.e - 1.0) * t)
    if spending == "obrien-fleming":
        return float(2.0 - 2.0 * norm.cdf(norm.ppf(1.0 - alpha / 2.0) / math.sqrt(t)))
    raise ValueError(f"unknown spending function {spending!r}; allowed: {', '.join(SPENDING)}")


def _simpson(n: int) -> np.ndarray:
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w / 3.0


@functools.lru_cache(maxsize=256)
def boundaries(fractions: tuple[float, ...], alpha: float, spending: str) -> tuple[float, ...]:
    """Two-sided critical values ``c_k`` (on the Z scale) for looks at the increasing ``fractions``.

    The sub-density of the score ``S = Z sqrt(t)`` of the paths still running is carried from look to
    look on a grid over the continuation region ``|S| < c sqrt(t)`` (Simpson's rule); each new boundary
    solves "probability of stopping here = the error rate this look may spend" with Brent's method.
    """
    from scipy.stats import norm

    cs: list[float] = []
    before = 0.0
    grid = mass = np.empty(0)
    for k, t in enumerate(fractions):
        share = spent(t, alpha, spending) - before
        before += share
        if k == 0:
            c = min(_C_MAX, float(norm.isf(share / 2.0))) if share > 0 else _C_MAX
            new = np.linspace(-c * math.sqrt(t), c * math.sqrt(t), _GRID)
            dens = norm.pdf(new / math.sqrt(t)) / math.sqrt(t)
        else:
            sd = math.sqrt(t - fractions[k - 1])
            c = _boundary(grid, mass, t, sd, share)
            new = np.linspace(-c * math.sqrt(t), c * math.sqrt(t), _GRID)
            dens = mass @ norm.pdf((new[None, :] - grid[:, None]) / sd) / sd
        cs.append(c)
        grid, mass = new, _simpson(_GRID) * (new[1] - new[0]) * dens
    return tuple(cs)


def _boundary(grid: np.ndarray, mass: np.ndarray, t: float, sd: float, share: float) -> float:
    """The ``c`` at which the running paths (``mass`` at scores ``grid``) cross ``±c sqrt(t)`` after an
    increment ``N(0, sd^2)`` with probability ``share``."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    def exit_rate(c: float) -> float:
        edge = c * math.sqrt(t)
        return float(mass @ (norm.cdf((-edge - grid) / sd) + norm.sf((edge - grid) / sd)))

    if share <= 0.0 or exit_rate(_C_MAX) >= share:
        return _C_MAX
    return float(brentq(lambda c: exit_rate(c) - share, 0.0, _C_MAX, xtol=1e-10))


def normal_levels(
    ns: Sequence[int], n_max: int, alpha: float = ALPHA, spending: str = "pocock"
) -> list[float]:
    """Known-variance nominal levels ``2 (1 - Phi(c_k))`` of looks at ``ns`` seeds (:func:`boundaries`).

    The large-sample limit of :func:`t_levels`, and its cross-check. Applied as they stand to t-tests of
    3-20 seeds they are too generous: the whole procedure's error rate reaches 0.055-0.059 instead of
    0.05 (measured in tests/analysis/test_sequential.py), because the t statistics of a few seeds are less
    correlated from look to look than the normal ones the boundaries assume.
    """
    from scipy.stats import norm

    fractions = tuple(min(1.0, n / n_max) for n in ns)
    return [float(2.0 * norm.sf(c)) for c in boundaries(fractions, float(alpha), spending)]


CALIBRATION_PATHS = 200_000
_CALIBRATION_SEED = 14


@functools.lru_cache(maxsize=512)
def t_levels(
    ns: tuple[int, ...], n_max: int, alpha: float = ALPHA, spending: str = "pocock"
) -> tuple[float, ...]:
    """Nominal levels of the paired t-tests at looks with ``ns`` seeds (increasing, each >= 2) such that
    the chance of a false rejection first at look ``k`` is exactly the spending ``alpha(t_k) -
    alpha(t_{k-1})``.

    Under "no difference" the sequence of t statistics does not depend on the unknown spread, so its
    joint distribution is that of standard normal paths: the first level is the spending itself (the
    t-test is exact), each later one is the quantile of the look's p-values among the
    ``CALIBRATION_PATHS`` simulated paths not yet stopped that stops exactly the share this look may
    spend. A fixed random stream makes the levels reproducible. Paths are not stopped for equivalence
    here, which can only overstate the error (stopping for equivalence removes chances to reject); the
    variance floor of a real test likewise only lowers its t statistics.
    """
    from scipy import stats as st

    rng = np.random.default_rng(_CALIBRATION_SEED)
    z = rng.standard_normal((ns[-1], CALIBRATION_PATHS))  # seeds x paths: contiguous running sums
    total, squares = np.cumsum(z, axis=0), np.cumsum(z * z, axis=0)
    alive = np.ones(CALIBRATION_PATHS, dtype=bool)
    levels: list[float] = []
    before = 0.0
    for k, n in enumerate(ns):
        share = spent(n / n_max, alpha, spending) - before
        before += share
        mean = total[n - 1] / n
        var = np.maximum(squares[n - 1] - n * mean * mean, 1e-300) / (n - 1)
        t = np.abs(mean) / np.sqrt(var / n)  # a larger |t| is a smaller p-value: no sf() per path
        if k == 0:
            crit = float(st.t.isf(share / 2.0, n - 1))  # the first look's t-test is exact
        else:
            crit = _stopping_t(t[alive], share * CALIBRATION_PATHS)
        levels.append(float(2.0 * st.t.sf(crit, n - 1)))
        alive &= t <= crit
    return tuple(levels)


def _stopping_t(t_alive: np.ndarray, count: float) -> float:
    """The threshold above which ``count`` of the running paths' ``|t|`` lie (interpolated)."""
    k = int(count)
    if k <= 0 or t_alive.size == 0:
        return math.inf
    k = min(k, t_alive.size - 1)
    top = -np.sort(-np.partition(t_alive, t_alive.size - k - 1)[t_alive.size - k - 1 :])  # k+1 largest
    return float(top[k] + (count - int(count)) * (top[k - 1] - top[k])) if k < top.size else float(top[-1])


@dataclass(frozen=True)
class Design:
    """Seeds in rounds: ``n_min`` first, then ``step`` more per round up to ``n_max``; ``alpha`` is the
    family-wise error rate, shared by ``pairs`` comparisons (Bonferroni)."""

    n_min: int
    n_max: int
    step: int
    alpha: float = ALPHA
    spending: str = "pocock"
    pairs: int = 1

    def looks(self) -> list[int]:
        """The planned numbers of seeds at each look."""
        out = list(range(self.n_min, self.n_max, max(1, self.step)))
        return [*out, self.n_max]

    def level(self, ns: Sequence[int]) -> float:
        """The per-pair nominal level at the last of the looks ``ns`` (the seeds a pair had at each look
        so far; repeats, from rounds where every new trial of the pair failed, are no new look)."""
        distinct = tuple(sorted({n for n in ns if n >= 2}))
        if not distinct:
            return self.alpha / self.pairs
        return t_levels(distinct, self.n_max, self.alpha / self.pairs, self.spending)[-1]

    def describe(self) -> dict[str, Any]:
        return {"min": self.n_min, "max": self.n_max, "step": self.step, "alpha": self.alpha,
                "spending": self.spending, "pairs": self.pairs}  # fmt: skip


def decided(outcome: str | None) -> bool:
    """A comparison stops the rounds when it is better, worse or equivalent."""
    return outcome in ("better", "worse", "equivalent")


# --- the whole procedure, vectorized over simulated runs ------------------------------------------------


def run_rounds(
    values: np.ndarray,
    design: Design,
    rule: outcomes.MetricRule,
    reference: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The decision procedure on ``values`` (runs x labels x n_max seeds), every run at once.

    At each look, every pair of labels is tested with the floored paired t-test at the design's nominal
    level (the same :func:`adacli.analysis.stats.floored_t`, interval and
    :func:`adacli.analysis.outcomes.outcome_codes` that a real run uses); a run stops at the first look
    where every pair with the ``reference`` label is decided, or at ``n_max``. Returns the outcome codes
    (runs x pairs, indices into :data:`adacli.analysis.outcomes.OUTCOMES`, pairs in row order) and the seeds
    each run used.
    """
    runs, labels, _ = values.shape
    pairs = [(i, j) for i in range(labels) for j in range(i + 1, labels)]
    ref_pairs = [k for k, (i, j) in enumerate(pairs) if reference in (i, j)]
    result = np.full((runs, len(pairs)), outcomes.OUTCOMES.index("undecided"))
    used = np.full(runs, design.looks()[-1])
    running = np.ones(runs, dtype=bool)
    looks = design.looks()
    for k, n in enumerate(looks):
        level = design.level(looks[: k + 1])
        codes = np.stack([_codes(values[:, i, :n], values[:, j, :n], rule, level) for i, j in pairs], axis=1)
        stop = running & (np.isin(codes[:, ref_pairs], _DECIDED).all(axis=1) | (k == len(looks) - 1))
        result[stop], used[stop] = codes[stop], n
        running &= ~stop
    return result, used


_DECIDED = [outcomes.OUTCOMES.index(o) for o in ("better", "worse", "equivalent")]


def _codes(x: np.ndarray, y: np.ndarray, rule: outcomes.MetricRule, level: float) -> np.ndarray:
    if rule.scale == "ratio":
        d, floor = np.log(x) - np.log(y), stats.log_ratio_floor(x, y, rule.resolution)
        margin = math.log1p(rule.margin)
    else:
        d, floor, margin = x - y, stats.difference_floor(rule.resolution), rule.margin
    test = stats.floored_t(d, floor)
    half = test.half_width(level)
    return outcomes.outcome_codes(test.mean - half, test.mean + half, margin, rule.higher_is_better)


def simulate(
    design: Design,
    rule: outcomes.MetricRule,
    *,
    effects: Sequence[float],
    sd: float,
    runs: int = 20_000,
    seed: int = 0,
    seed_sd: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated runs of the whole procedure (:func:`run_rounds`) on a difference-scale metric: label
    ``i``'s value on a seed is ``effects[i] + seed effect + noise`` (noise ``N(0, sd^2)`` per trial, the
    seed effect ``N(0, seed_sd^2)`` shared by every label of the seed, as paired seeds are), rounded to
    the rule's resolution. Label 0 is the reference. Returns :func:`run_rounds`' codes and seeds used."""
    if rule.scale != "difference":
        raise ValueError("simulate() draws differences; give it a difference-scale rule")
    rng = np.random.default_rng(seed)
    shape = (runs, len(effects), design.n_max)
    values = np.asarray(effects, dtype=float)[None, :, None] + rng.normal(0.0, sd, shape)
    if seed_sd:
        values = values + rng.normal(0.0, seed_sd, (runs, 1, design.n_max))
    if rule.resolution > 0:
        values = np.round(values / rule.resolution) * rule.resolution
    return run_rounds(values, design, rule)


def false_decisions(codes: np.ndarray, effects: Sequence[float], rule: outcomes.MetricRule) -> np.ndarray:
    """Per simulated run: did any pair get a wrong outcome? ``better`` is wrong unless ``a`` is truly
    better (its true difference in the metric's direction > 0), ``worse`` likewise, ``equivalent`` unless
    the true difference is inside the margin. ``undecided`` is never wrong (it claims nothing)."""
    n = len(effects)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    wrong = np.zeros(codes.shape[0], dtype=bool)
    sign = 1.0 if rule.higher_is_better else -1.0
    for k, (i, j) in enumerate(pairs):
        delta = (effects[i] - effects[j]) * sign
        c = codes[:, k]
        wrong |= (c == outcomes.OUTCOMES.index("better")) & (delta <= 0)
        wrong |= (c == outcomes.OUTCOMES.index("worse")) & (delta >= 0)
        wrong |= (c == outcomes.OUTCOMES.index("equivalent")) & (abs(delta) >= rule.margin)
    return wrong


def rates(codes: np.ndarray) -> dict[str, float]:
    """How often each outcome occurred, over runs and pairs."""
    return {o: float((codes == k).mean()) for k, o in enumerate(outcomes.OUTCOMES)}
